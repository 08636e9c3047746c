import { type EntryTimes, entryTimes, isTombstone } from '../drivers/codec.js';
import { CacheError } from '../errors.js';
import { err, type Ok, type Result } from '../result.js';
import { loadAndStore } from './fill.js';
import type { ReadThrough } from './read-through.js';
import type { NamespaceState } from './state.js';

/** Per-call overrides of a namespace's read-path options (docs/design-read-path.md). */
export interface ReadOptions {
  /**
   * `false`: no stale value for this call, whatever the namespace's grace; a number: at most this
   * many seconds past the TTL. Default: the namespace's `grace.seconds`.
   */
  readonly grace?: boolean | number;
  /** Replace the namespace's `timeouts.softMs` / `timeouts.hardMs` for this call. */
  readonly softTimeoutMs?: number;
  readonly hardTimeoutMs?: number;
}

/** A value past its TTL that a read may fall back on: an L1 copy, or the L2 value a load is replacing. */
export interface Candidate {
  readonly entry: Ok<unknown>;
  readonly loadedAt: number;
  readonly expiresAt: number;
  readonly source: 'l1' | 'l2';
  /** The L2 wire it was decoded from (source l2): it must still be there to be served. */
  readonly wire?: string;
  /** The pod's invalidation epoch when it was read. */
  readonly epoch: number;
}

/** Bound on the keys remembered for back-off and stale candidates (oldest dropped first). */
const MAX_TRACKED = 10_000;
const TIMED_OUT: unique symbol = Symbol('timed out');

/**
 * Grace (fail-safe), loader timeouts and early refresh, over the read-through's single-flight and
 * fleet lock. The load of a key stays one shared promise; timeouts and the stale fallback belong to
 * each caller. An invalidated value is never served: a candidate is served only if it is still the
 * current copy (the same L1 object, the same L2 bytes) when the fallback happens.
 */
export class FailSafe {
  readonly #rt: ReadThrough;
  /** The expired L2 value each recent load of a key set out to replace. */
  readonly #seen = new Map<string, Candidate>();
  /** Keys whose loader failed while a stale value was served: the loader is left alone until `until`. */
  readonly #backoff = new Map<string, { readonly until: number; readonly candidate: Candidate }>();
  readonly #refreshing = new Set<string>();

  constructor(rt: ReadThrough) {
    this.#rt = rt;
  }

  /** A load found this expired value in L2 (a leader, after its read or its lock). */
  saw(key: string, candidate: Candidate): void {
    remember(this.#seen, key, candidate);
  }

  /** A read of a guarded namespace that missed (or found only a stale L1 copy). */
  async read(
    st: NamespaceState,
    id: string,
    key: string,
    l1: Candidate | undefined,
    options: ReadOptions | undefined,
  ): Promise<Result<unknown>> {
    const started = performance.now();
    const maxStaleMs = maxStale(st, options);
    if (maxStaleMs > 0 && this.#backoff.size > 0) {
      const b = this.#backoff.get(key);
      if (b !== undefined) {
        if (started < b.until) {
          const served = await this.#serve(st, key, newest(l1, b.candidate), maxStaleMs);
          if (served !== undefined) return served;
        } else this.#backoff.delete(key);
      }
    }
    const load = this.#rt.miss(st, id, key);
    const softMs = options?.softTimeoutMs ?? st.softMs;
    const hardMs = options?.hardTimeoutMs ?? st.hardMs;
    let r: Result<unknown> | typeof TIMED_OUT = TIMED_OUT;
    if (softMs !== undefined && maxStaleMs > 0 && (hardMs === undefined || softMs < hardMs)) {
      r = await within(load, softMs);
      if (r === TIMED_OUT) {
        // The load goes on (and fills the cache); this caller takes the stale copy if there is one.
        const served = await this.#serve(st, key, this.#candidate(key, l1), maxStaleMs);
        if (served !== undefined) {
          st.softTimeouts++;
          return served;
        }
      }
    }
    if (r === TIMED_OUT)
      r = hardMs === undefined ? await load : await within(load, hardMs - (performance.now() - started));
    if (r === TIMED_OUT) {
      st.hardTimeouts++;
      const served =
        maxStaleMs > 0 ? await this.#serve(st, key, this.#candidate(key, l1), maxStaleMs) : undefined;
      return (
        served ??
        err(
          new CacheError(
            'E_CACHE_LOADER_TIMEOUT',
            `loader of ${st.ns.name} did not answer for ${id} within ${hardMs} ms`,
          ),
        )
      );
    }
    if (r.ok) {
      if (this.#backoff.size > 0) this.#backoff.delete(key);
      this.#seen.delete(key);
      return r;
    }
    if (maxStaleMs > 0 && r.error.code === 'E_CACHE_LOADER_FAILED') {
      const candidate = this.#candidate(key, l1);
      const served = await this.#serve(st, key, candidate, maxStaleMs);
      if (served !== undefined && candidate !== undefined) {
        remember(this.#backoff, key, { until: performance.now() + st.backoffMs, candidate });
        return served;
      }
    }
    return r;
  }

  /** For getMany: the stale result of one id whose batch load failed, if it may be served. */
  fallback(st: NamespaceState, key: string, c: Candidate | undefined): Promise<Ok<unknown> | undefined> {
    return this.#serve(st, key, c, st.graceMs);
  }

  #candidate(key: string, l1: Candidate | undefined): Candidate | undefined {
    return newest(l1, this.#seen.get(key));
  }

  /** The stale result, if the candidate is within the window and still the current copy. */
  async #serve(
    st: NamespaceState,
    key: string,
    c: Candidate | undefined,
    maxStaleMs: number,
  ): Promise<Ok<unknown> | undefined> {
    if (c === undefined) return undefined;
    if (Date.now() >= c.expiresAt + maxStaleMs) return undefined;
    if (!(await this.#current(st, key, c))) return undefined;
    const now = Date.now();
    st.staleServed++;
    // Kept in L1 as a stale copy: the next reads during the back-off need no L2 decode.
    if (c.source === 'l2' && c.wire !== undefined)
      this.#rt.putL1(st, key, c.entry, c.wire.length, c.epoch, {
        loadedAt: c.loadedAt,
        expiresAt: c.expiresAt,
      });
    return {
      ok: true,
      value: c.entry.value,
      stale: {
        ageSeconds: Math.max(0, Math.floor((now - c.loadedAt) / 1000)),
        expiredMs: Math.max(0, now - c.expiresAt),
      },
    };
  }

  /**
   * Whether nothing replaced or invalidated the candidate since it was read: it is still this pod's
   * L1 object (invalidations remove it) and L2 still holds it (invalidations tombstone it). With
   * Redis unreachable, an L1 copy stands as an L1 hit would; an L2 one only if this pod applied no
   * invalidation since.
   */
  async #current(st: NamespaceState, key: string, c: Candidate): Promise<boolean> {
    const rt = this.#rt;
    if (!key.startsWith(st.keyBase)) return false;
    if (c.source === 'l1' && rt.l1?.peek(key) !== c.entry) return false;
    const l2 = rt.l2;
    const wire = l2 === undefined ? undefined : await l2.readWire(key);
    if (wire === undefined) return c.source === 'l1' || rt.epoch === c.epoch;
    if (wire === null || isTombstone(wire)) return false;
    if (c.wire !== undefined) return wire === c.wire;
    return entryTimes(wire)?.loadedAt === c.loadedAt;
  }

  /** Whether an entry is in the last `earlyRefresh` fraction of its TTL. */
  dueForRefresh(st: NamespaceState, t: EntryTimes): boolean {
    return st.earlyRefresh > 0 && Date.now() >= t.expiresAt - st.earlyRefresh * (t.expiresAt - t.loadedAt);
  }

  /** Starts one background refresh of a key in this process, and through the lock one in the fleet. */
  refresh(st: NamespaceState, id: string, key: string): void {
    if (this.#rt.inflight.has(key) || this.#refreshing.has(key)) return;
    this.#refreshing.add(key);
    void this.#refreshNow(st, id, key).finally(() => this.#refreshing.delete(key));
  }

  async #refreshNow(st: NamespaceState, id: string, key: string): Promise<void> {
    const rt = this.#rt;
    const epoch = rt.epoch;
    const startedAt = performance.now();
    const l2 = rt.l2;
    if (l2 === undefined) {
      st.earlyRefreshes++;
      await loadAndStore(rt, st, id, key, { kind: 'fill', expected: '', epoch, startedAt });
      return;
    }
    // Not waited for: a pod that finds the lock taken leaves the refresh to its holder.
    const lock = await l2.locks.acquire(key, rt.lock.ttlMs);
    if (!lock.ok || lock.value === null) return;
    const token = lock.value;
    try {
      const [wire, inv] = await Promise.all([l2.readWire(key), l2.fence.invalidations(st.ns.name)]);
      // Gone or invalidated meanwhile: the next read loads it the ordinary way.
      if (typeof wire !== 'string' || isTombstone(wire) || !inv.ok) return;
      const times = entryTimes(wire);
      if (times !== undefined && !this.dueForRefresh(st, times)) return;
      st.earlyRefreshes++;
      // Compare-and-set against the value read: an invalidation in between wins.
      await loadAndStore(rt, st, id, key, { kind: 'fill', expected: wire, epoch, startedAt, inv: inv.value });
    } finally {
      await l2.locks.release(key, token);
    }
  }
}

function maxStale(st: NamespaceState, options: ReadOptions | undefined): number {
  const g = options?.grace;
  if (g === false || st.graceMs === 0) return 0;
  return typeof g === 'number' ? Math.min(g * 1000, st.graceMs) : st.graceMs;
}

function newest(a: Candidate | undefined, b: Candidate | undefined): Candidate | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.loadedAt > a.loadedAt ? b : a;
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_TRACKED) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}

function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  if (ms <= 0) return Promise.resolve(TIMED_OUT);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
