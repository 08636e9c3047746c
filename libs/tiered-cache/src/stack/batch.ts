import { isTombstone } from '../drivers/redis.js';
import { CacheError } from '../errors.js';
import { err, OK_UNDEFINED, ok, type Result } from '../result.js';
import type { ReadThrough, WriteMode } from './read-through.js';
import type { NamespaceState } from './state.js';

/**
 * The misses of a `getMany`: ids already loading in this process join that load; ids whose fleet
 * lock this process wins are re-read from L2 (a previous holder may just have filled them) and the
 * rest loaded with one `loadMany`; ids locked elsewhere wait for their holders like a single get.
 */
export async function loadBatch(
  rt: ReadThrough,
  st: NamespaceState,
  ids: readonly string[],
  epoch: number,
  startedAt: number,
): Promise<Result<unknown[]>> {
  const keys = ids.map((id) => st.keyBase + id);
  const results: Promise<Result<unknown>>[] = new Array(ids.length);
  const mine: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const pending = rt.inflight.get(keys[i] as string);
    if (pending !== undefined) {
      st.misses++;
      results[i] = pending;
    } else mine.push(i);
  }
  if (mine.length > 0) await loadMine(rt, st, ids, keys, mine, results, epoch, startedAt);
  const settled = await Promise.all(results);
  const values: unknown[] = [];
  for (const r of settled) {
    if (!r.ok) return r;
    values.push(r.value);
  }
  return ok(values);
}

async function loadMine(
  rt: ReadThrough,
  st: NamespaceState,
  ids: readonly string[],
  keys: readonly string[],
  mine: readonly number[],
  results: Promise<Result<unknown>>[],
  epoch: number,
  startedAt: number,
): Promise<void> {
  const l2 = rt.l2;
  const tokens = l2
    ? await Promise.all(mine.map((i) => l2.acquireLock(keys[i] as string, rt.lock.ttlMs)))
    : undefined;
  const tokenOf = new Map<number, string>();
  let owned: number[] = [];
  mine.forEach((i, j) => {
    const t = tokens?.[j];
    if (t?.ok && t.value !== null) tokenOf.set(i, t.value);
    if (t === undefined || !t.ok || t.value !== null) owned.push(i);
    else results[i] = rt.miss(st, ids[i] as string, keys[i] as string);
  });
  const release = (i: number) => {
    const token = tokenOf.get(i);
    if (l2 && token !== undefined) void l2.releaseLock(keys[i] as string, token);
  };
  const expected = new Map<number, string>();
  let inv: number | undefined;
  if (l2 && owned.length > 0) {
    const [again, counter] = await Promise.all([
      Promise.all(owned.map((i) => l2.readWire(keys[i] as string))),
      l2.invalidations(st.ns.name),
    ]);
    if (counter.ok) inv = counter.value;
    const still: number[] = [];
    owned.forEach((i, j) => {
      const wire = again[j];
      if (typeof wire === 'string' && !isTombstone(wire)) {
        const decoded = l2.decode(keys[i] as string, wire);
        if (decoded.ok) {
          rt.putL1(st, keys[i] as string, decoded, wire.length, epoch);
          results[i] = Promise.resolve(decoded);
          release(i);
          return;
        }
      }
      if (typeof wire === 'string' && isTombstone(wire)) expected.set(i, wire);
      still.push(i);
    });
    owned = still;
  }
  if (owned.length === 0) return;
  const modeOf = (i: number): WriteMode => ({
    kind: 'fill',
    expected: expected.get(i) ?? '',
    epoch,
    startedAt,
    ...(inv !== undefined ? { inv } : {}),
  });
  const batch = loadOwned(rt, st, owned, ids, keys, modeOf).finally(() => {
    for (const i of owned) {
      rt.inflight.delete(keys[i] as string);
      release(i);
    }
  });
  owned.forEach((i, j) => {
    const one = batch.then((r): Result<unknown> => (r.ok ? ok(r.value[j]) : r));
    rt.inflight.set(keys[i] as string, one);
    results[i] = one;
  });
}

async function loadOwned(
  rt: ReadThrough,
  st: NamespaceState,
  owned: readonly number[],
  ids: readonly string[],
  keys: readonly string[],
  modeOf: (i: number) => WriteMode,
): Promise<Result<unknown[]>> {
  st.misses += owned.length;
  const loadMany = st.ns.loadMany;
  const all = (rs: readonly Result<unknown>[]): Result<unknown[]> => {
    const values: unknown[] = [];
    for (const r of rs) {
      if (!r.ok) return r;
      values.push(r.value);
    }
    return ok(values);
  };
  if (loadMany === undefined) {
    return all(
      await Promise.all(
        owned.map((i) => rt.loadAndStore(st, ids[i] as string, keys[i] as string, modeOf(i))),
      ),
    );
  }
  st.loads++;
  const t0 = performance.now();
  let found: ReadonlyMap<string, unknown>;
  try {
    found = await loadMany(owned.map((i) => ids[i] as string));
  } catch (cause) {
    st.loaderErrors++;
    return err(new CacheError('E_CACHE_LOADER_FAILED', `loadMany of ${st.ns.name} failed`, { cause }));
  } finally {
    st.timers.l3.observe((performance.now() - t0) / 1000);
  }
  return all(
    await Promise.all(
      owned.map((i) => {
        const v = found.get(ids[i] as string);
        return v === undefined ? OK_UNDEFINED : rt.store(st, keys[i] as string, v, modeOf(i));
      }),
    ),
  );
}
