import { entryTimes, isTombstone } from '../drivers/codec.js';
import type { RedisStore } from '../drivers/redis/store.js';
import type { Result } from '../result.js';
import { loadAndStore, type WriteMode } from './fill.js';
import type { ReadThrough } from './read-through.js';
import type { NamespaceState } from './state.js';
import { jitter, sleep } from './timing.js';

/**
 * A miss in L2: one loader call across the fleet. Takes the Redis lock and loads (after checking
 * that the previous holder did not fill L2 meanwhile); a waiter polls L2 with a jittered back-off
 * until the holder's value appears, and loads itself past lock.maxWaitMs (or half the namespace's
 * hard time-out, if that is sooner). An expired value (grace)
 * is remembered as a stale candidate, not served as fresh.
 */
export async function loadLocked(
  rt: ReadThrough,
  st: NamespaceState,
  l2: RedisStore,
  id: string,
  key: string,
  mode: Extract<WriteMode, { kind: 'fill' }>,
): Promise<Result<unknown>> {
  st.misses++;
  // Never wait for another holder past half the namespace's hard time-out: a lock whose holder's
  // fill or release was lost (a failover takes both) stays until its TTL, and a waiter that waited
  // lock.maxWaitMs for it would answer E_CACHE_LOADER_TIMEOUT (the chaos runs' 503s). Half leaves
  // the other half for this caller's own load.
  const waitMs = st.hardMs === undefined ? rt.lock.maxWaitMs : Math.min(rt.lock.maxWaitMs, st.hardMs / 2);
  const deadline = performance.now() + waitMs;
  let backoff = rt.lock.retryMs;
  for (;;) {
    const lock = await l2.locks.acquire(key, rt.lock.ttlMs);
    if (!lock.ok) return loadAndStore(rt, st, id, key, mode);
    const token = lock.value;
    if (token !== null) {
      try {
        // The previous holder may have filled L2 between our miss and our lock.
        const [again, inv] = await Promise.all([l2.readWire(key), l2.fence.invalidations(st.ns.name)]);
        if (again === undefined) return await loadAndStore(rt, st, id, key, mode);
        let expected = again === null || !isTombstone(again) ? '' : again;
        if (again !== null && !isTombstone(again)) {
          const decoded = rt.decode(st, l2, key, again);
          if (decoded.ok) {
            const times = st.timed ? entryTimes(again) : undefined;
            if (times === undefined || Date.now() < times.expiresAt) {
              rt.trace?.answered('l2');
              rt.putL1(st, key, decoded, again.length, mode.epoch, times);
              return decoded;
            }
            rt.failSafe.saw(key, {
              entry: decoded,
              ...times,
              source: 'l2',
              wire: again,
              epoch: mode.epoch,
            });
            expected = again;
          }
        }
        return await loadAndStore(rt, st, id, key, {
          ...mode,
          expected,
          ...(inv.ok ? { inv: inv.value } : {}),
        });
      } finally {
        await l2.locks.release(key, token);
      }
    }
    st.lockWaits++;
    rt.trace?.lockWait();
    if (performance.now() >= deadline) {
      st.lockTimeouts++;
      const inv = await l2.fence.invalidations(st.ns.name);
      return loadAndStore(rt, st, id, key, inv.ok ? { ...mode, inv: inv.value } : mode);
    }
    await sleep(jitter(backoff));
    backoff = Math.min(backoff * 2, 200);
    const polled = await l2.readWire(key);
    if (polled === undefined) return loadAndStore(rt, st, id, key, mode);
    if (polled !== null && !isTombstone(polled)) {
      const times = st.timed ? entryTimes(polled) : undefined;
      // An expired value is what the holder is replacing: keep waiting for its fill.
      if (times === undefined || Date.now() < times.expiresAt) {
        const decoded = rt.decode(st, l2, key, polled);
        if (decoded.ok) {
          rt.trace?.answered('l2');
          rt.putL1(st, key, decoded, polled.length, mode.epoch, times);
          return decoded;
        }
      }
    }
  }
}
