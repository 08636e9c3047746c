import { scopedTag } from '@cachefleet/redis';
import type { ResolvedCacheOptions } from '../config.js';
import { type EntryTimes, entryTimes, isTombstone } from '../drivers/codec.js';
import type { MemoryStore } from '../drivers/memory.js';
import type { InlineEvent } from '../drivers/redis/fencing.js';
import type { RedisStore } from '../drivers/redis/store.js';
import { CacheError } from '../errors.js';
import type { Namespace } from '../namespace.js';
import { err, OK_UNDEFINED, type Ok, ok, type Result } from '../result.js';
import type { CacheTracing } from '../tracing.js';
import { getMany } from './batch.js';
import { spread, timesOf, withTimes } from './entry-times.js';
import { type Candidate, FailSafe, type ReadOptions } from './fail-safe.js';
import { loadAndStore, store } from './fill.js';
import { deepFreeze } from './freeze.js';
import { loadLocked } from './locked-load.js';
import { applyFactors, keyBaseAt, type NamespaceState, newState } from './state.js';
import type { TimingSink } from './timing.js';

/** Distinct ids counted per namespace between two hot-key flushes (bounds the map). */
const HOT_IDS_PER_FLUSH = 50_000;

export interface Tiers {
  readonly l1: MemoryStore | undefined;
  readonly l2: RedisStore | undefined;
}

/**
 * The read and write paths over whichever tiers the active store has: L1 → L2 → one loader
 * call per key across the fleet (in-process single-flight, then a Redis lock whose waiters poll
 * L2 instead of calling the loader). Fills are fenced against concurrent invalidations
 * (DESIGN invariant 2): see fill.ts.
 */
export class ReadThrough {
  #l1: MemoryStore | undefined;
  #l2: RedisStore | undefined;
  readonly #states: (NamespaceState | undefined)[] = [];
  /** Factors the tuner set per namespace name (docs/tuning.md). */
  readonly #tuning = new Map<string, { l1: number; l2: number }>();
  readonly #generations = new Map<string, number>();
  readonly inflight = new Map<string, Promise<Result<unknown>>>();
  readonly lock: ResolvedCacheOptions['lock'];
  /** A fill older than a tombstone's life could have missed it: it is cached nowhere. */
  readonly tombstoneTtlMs: number;
  readonly #timing: TimingSink;
  readonly #sampleMask: number;
  readonly #countHot: boolean;
  #tick = 0;
  /** Bumped by every invalidation applied to L1; a fill that saw another value skips L1. */
  #epoch = 0;
  /** Upper bound on L1 lifetimes while the bus is cut off (Infinity when connected). */
  #l1TtlCapMs = Number.POSITIVE_INFINITY;
  /** Told when a fill retracted its own L2 entry (Cluster only), so that pods drop it from L1. */
  readonly onRetract: ((namespace: string, id: string) => void) | undefined;
  /** Grace, timeouts and early refresh (fail-safe.ts). */
  readonly failSafe: FailSafe;
  /** Told which tier answered, on the slow paths only; undefined unless traced (tracing.ts). */
  readonly trace: CacheTracing | undefined;

  constructor(
    options: ResolvedCacheOptions,
    timing: TimingSink,
    onRetract?: (namespace: string, id: string) => void,
    trace?: CacheTracing,
  ) {
    this.trace = trace;
    this.lock = options.lock;
    this.tombstoneTtlMs = options.bus.tombstoneTtlMs;
    this.onRetract = onRetract;
    this.#timing = timing;
    this.#sampleMask = options.l1TimingSampleRate - 1;
    this.#countHot = options.hotKeys.enabled;
    this.failSafe = new FailSafe(this);
  }

  /** Points the paths at a new store's tiers (registry swap). */
  useTiers(tiers: Tiers): void {
    this.#l1 = tiers.l1;
    this.#l2 = tiers.l2;
  }

  get l1(): MemoryStore | undefined {
    return this.#l1;
  }

  get l2(): RedisStore | undefined {
    return this.#l2;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get states(): readonly (NamespaceState | undefined)[] {
    return this.#states;
  }

  state(ns: Namespace<unknown>): NamespaceState {
    let st = this.#states[ns.index];
    if (st === undefined) {
      st = newState(ns, this.#timing(ns.name), this.#generations.get(ns.name) ?? 0);
      const tuned = this.#tuning.get(ns.name);
      if (tuned !== undefined) applyFactors(st, tuned.l1, tuned.l2);
      this.#states[ns.index] = st;
    }
    return st;
  }

  /** The tuner's factors for a namespace name: applied now, and to its states made later. */
  tune(name: string, l1: number, l2: number): void {
    this.#tuning.set(name, { l1, l2 });
    for (const st of this.statesNamed(name)) applyFactors(st, l1, l2);
  }

  /** Every state of a namespace name (several definitions may share one, e.g. v1 and v2). */
  statesNamed(name: string): NamespaceState[] {
    return this.#states.filter((s): s is NamespaceState => s !== undefined && s.ns.name === name);
  }

  /** An invalidation reached L1: fills that started before it must not write L1. */
  invalidated(): void {
    this.#epoch++;
  }

  /** While the bus is cut off, nothing enters L1 for longer than `capMs`. */
  capL1Ttl(capMs: number): void {
    this.#l1TtlCapMs = capMs;
  }

  /** The L1 lifetime of a namespace's entries now (capped while the bus is cut off). */
  l1Ttl(st: NamespaceState): number {
    return Math.min(st.l1TtlMs, this.#l1TtlCapMs);
  }

  generation(name: string): number {
    return this.#generations.get(name) ?? 0;
  }

  /** Moves a namespace to a generation (never backwards) and drops its old keys from L1. */
  setGeneration(name: string, generation: number): void {
    if ((this.#generations.get(name) ?? 0) >= generation) return;
    this.#generations.set(name, generation);
    for (const st of this.statesNamed(name)) {
      this.#l1?.removeByPrefix(st.keyBase);
      st.keyBase = keyBaseAt(st.ns, generation);
    }
    this.#epoch++;
  }

  get<T>(ns: Namespace<T>, id: string, options?: ReadOptions): Promise<Result<T | undefined>> {
    const st = this.#states[ns.index] ?? this.state(ns as Namespace<unknown>);
    const key = st.keyBase + id;
    // Namespaces with grace, timeouts or early refresh (and calls with options) take the longer path.
    if (st.timed || st.guarded || options !== undefined)
      return this.#policyGet(st, id, key, options) as Promise<Result<T | undefined>>;
    // One read in 64 is timed and counted for the hot warm: no clock read or map update per hit.
    if ((++this.#tick & this.#sampleMask) === 0)
      return this.#sampled(st, id, key) as Promise<Result<T | undefined>>;
    const l1 = this.#l1;
    if (l1 !== undefined) {
      const hit = l1.peek(key);
      if (hit !== undefined) {
        st.l1Hits++;
        return Promise.resolve(hit as Ok<T>);
      }
    }
    return this.miss(st, id, key) as Promise<Result<T | undefined>>;
  }

  /**
   * The read of a timed or guarded namespace: an L1 copy past its freshness is not a hit but a
   * stale candidate (served only if the loader fails or is slow), and a fresh hit in the last part
   * of its TTL starts an early refresh.
   */
  #policyGet(
    st: NamespaceState,
    id: string,
    key: string,
    options: ReadOptions | undefined,
  ): Promise<Result<unknown>> {
    // Sampled as on the plain path: one read in 64 is timed and counted for the hot warm.
    const sampled = (++this.#tick & this.#sampleMask) === 0;
    if (sampled && this.#countHot && st.hot.size < HOT_IDS_PER_FLUSH && st.ns.isValidId(id))
      st.hot.set(id, (st.hot.get(id) ?? 0) + 1);
    const t0 = sampled ? performance.now() : 0;
    const hit = this.#l1?.peek(key);
    if (sampled && this.#l1 !== undefined) st.timers.l1.observe((performance.now() - t0) / 1000);
    let candidate: Candidate | undefined;
    if (hit !== undefined) {
      const times = timesOf(hit);
      if (times === undefined) {
        st.l1Hits++;
        return Promise.resolve(hit);
      }
      const now = performance.now();
      if (now < times.freshUntil) {
        st.l1Hits++;
        if (now >= times.refreshAt) {
          times.refreshAt = Number.POSITIVE_INFINITY;
          this.failSafe.refresh(st, id, key);
        }
        return Promise.resolve(hit);
      }
      candidate = {
        entry: hit,
        loadedAt: times.loadedAt,
        expiresAt: times.expiresAt,
        source: 'l1',
        epoch: this.#epoch,
      };
    }
    if (!st.guarded && options === undefined) return this.miss(st, id, key);
    return this.failSafe.read(st, id, key, candidate, options);
  }
  async #sampled(st: NamespaceState, id: string, key: string): Promise<Result<unknown>> {
    if (this.#countHot && st.hot.size < HOT_IDS_PER_FLUSH && st.ns.isValidId(id))
      st.hot.set(id, (st.hot.get(id) ?? 0) + 1);
    const l1 = this.#l1;
    if (l1 === undefined) return this.miss(st, id, key);
    const t0 = performance.now();
    const hit = l1.peek(key);
    st.timers.l1.observe((performance.now() - t0) / 1000);
    if (hit !== undefined) {
      st.l1Hits++;
      return hit;
    }
    return this.miss(st, id, key);
  }

  miss(st: NamespaceState, id: string, key: string): Promise<Result<unknown>> {
    // Ids are checked only here: an id found in L1 was checked when it was filled.
    if (!st.ns.isValidId(id)) return Promise.resolve(this.invalidId(st, id));
    const pending = this.inflight.get(key);
    if (pending !== undefined) {
      st.misses++;
      this.trace?.answered('coalesced');
      return pending;
    }
    const p = this.#leader(st, id, key);
    this.inflight.set(key, p);
    return p;
  }

  invalidId(st: NamespaceState, id: string): Result<never> {
    st.invalidInputs++;
    return err(new CacheError('E_CACHE_INVALID_ID', `invalid id for ${st.ns.name}: ${JSON.stringify(id)}`));
  }

  /**
   * The one read per key in this process. Its first statement awaits (L2 or the loader), so the
   * `finally` always runs after `miss` registered it; a try/finally here instead of `.finally()`
   * saves a promise and a closure per miss. If a `set` replaced the entry meanwhile, deleting it
   * only costs a later joiner its own read, never a stale value.
   */
  async #leader(st: NamespaceState, id: string, key: string): Promise<Result<unknown>> {
    const epoch = this.#epoch;
    const startedAt = performance.now();
    let refresh = false;
    try {
      const l2 = this.#l2;
      if (l2 === undefined) {
        st.misses++;
        return await loadAndStore(this, st, id, key, { kind: 'fill', expected: '', epoch, startedAt });
      }
      const wire = await l2.readWire(key);
      st.timers.l2.observe((performance.now() - startedAt) / 1000);
      if (typeof wire === 'string' && !isTombstone(wire)) {
        const decoded = this.decode(st, l2, key, wire);
        if (decoded.ok) {
          const times = st.timed ? entryTimes(wire) : undefined;
          if (times === undefined || Date.now() < times.expiresAt) {
            st.l2Hits++;
            this.trace?.answered('l2');
            this.putL1(st, key, decoded, wire.length, epoch, times);
            // Started once this read left `inflight` (a refresh does not start beside a load).
            refresh = times !== undefined && this.failSafe.dueForRefresh(st, times);
            return decoded;
          }
          // Past its TTL, within its grace: a stale candidate; the fill must replace exactly it.
          if (st.graceMs > 0) this.failSafe.saw(key, { entry: decoded, ...times, source: 'l2', wire, epoch });
          return await loadLocked(this, st, l2, id, key, { kind: 'fill', expected: wire, epoch, startedAt });
        }
      }
      if (wire === undefined) {
        // Redis is failing: load, keep it in L1 only, and do not fight for a lock we cannot take.
        st.l2Errors++;
        st.misses++;
        return await loadAndStore(this, st, id, key, { kind: 'fill', expected: '', epoch, startedAt });
      }
      const expected = wire === null || !isTombstone(wire) ? '' : wire;
      return await loadLocked(this, st, l2, id, key, { kind: 'fill', expected, epoch, startedAt });
    } finally {
      this.inflight.delete(key);
      if (refresh) this.failSafe.refresh(st, id, key);
    }
  }

  /** Decodes an L2 value for this namespace (deep-frozen when it is immutable: paid once, here). */
  decode(st: NamespaceState, l2: RedisStore, key: string, wire: string): Result<unknown> {
    const r = l2.decode(key, wire);
    if (r.ok && st.ns.immutable) deepFreeze(r.value);
    return r;
  }

  /** A value about to be handed out or kept in L1, frozen when the namespace is immutable. */
  frozen(st: NamespaceState, value: unknown): unknown {
    return st.ns.immutable ? deepFreeze(value) : value;
  }

  /** Fills L1 unless an invalidation was applied since the read began (then the value may be old). */
  putL1(
    st: NamespaceState,
    key: string,
    entry: Ok<unknown>,
    size: number | undefined,
    epoch: number,
    times?: EntryTimes,
    l1TtlMs?: number,
    tags?: readonly string[],
  ): void {
    if (this.#l1 === undefined || this.#epoch !== epoch) return;
    this.storeL1(st, key, entry, size, tags ?? this.tagsOf(st, entry.value), times, l1TtlMs);
  }

  /**
   * Writes L1 unconditionally. An entry with times (grace, early refresh) is stored as a new `Ok`
   * carrying them, fresh for its L1 TTL but never past its logical expiry, and kept `grace` longer
   * as a stale candidate; everything is capped while the bus is cut off.
   */
  storeL1(
    st: NamespaceState,
    key: string,
    entry: Ok<unknown>,
    size: number | undefined,
    tags: readonly string[] | undefined,
    times: EntryTimes | undefined,
    l1TtlMs = spread(st.l1TtlMs, st.ttlSpread),
  ): void {
    const l1 = this.#l1;
    if (l1 === undefined) return;
    // Timed one write in l1TimingSampleRate, like the L1 lookups (an LRU put costs ~1 µs).
    const sampled = (++this.#tick & this.#sampleMask) === 0;
    const t0 = sampled ? performance.now() : 0;
    if (times === undefined || !st.timed) {
      l1.put(key, entry, Math.min(l1TtlMs, this.#l1TtlCapMs), size, tags);
      if (sampled) st.timers.writeL1.observe((performance.now() - t0) / 1000);
      return;
    }
    const left = times.expiresAt - Date.now();
    const fresh = Math.max(0, Math.min(l1TtlMs, left));
    const life = Math.min(fresh + st.graceMs, this.#l1TtlCapMs);
    if (life <= 0) return;
    const now = performance.now();
    const refreshIn =
      st.earlyRefresh > 0
        ? left - st.earlyRefresh * (times.expiresAt - times.loadedAt)
        : Number.POSITIVE_INFINITY;
    l1.put(
      key,
      withTimes(entry, {
        loadedAt: times.loadedAt,
        expiresAt: times.expiresAt,
        freshUntil: now + fresh,
        refreshAt: now + refreshIn,
      }),
      life,
      size,
      tags,
    );
    if (sampled) st.timers.writeL1.observe((performance.now() - t0) / 1000);
  }

  /** Forgets loads in flight under `keyBase` (matching `match`): readers from now on start afresh. */
  dropInflight(keyBase: string, match?: (id: string) => boolean): void {
    for (const key of this.inflight.keys()) {
      if (key.startsWith(keyBase) && (match === undefined || match(key.slice(keyBase.length))))
        this.inflight.delete(key);
    }
  }

  /** A loader's own tags (ctx.setTags), scoped to the namespace like `tagsOf`. */
  scopeTags(st: NamespaceState, tags: readonly string[]): readonly string[] {
    return tags.map((t) => scopedTag(st.ns.name, t));
  }

  tagsOf(st: NamespaceState, value: unknown): readonly string[] | undefined {
    const tags = st.ns.tags;
    if (tags === undefined) return undefined;
    try {
      return tags(value).map((t) => scopedTag(st.ns.name, t));
    } catch {
      return undefined;
    }
  }

  /** Batched read-through: L1, then one L2 round trip, then one `loadMany` (batch.ts). */
  getMany<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<(T | undefined)[]>> {
    return getMany(this, ns, ids);
  }

  async set<T>(ns: Namespace<T>, id: string, value: T): Promise<Result<void>> {
    const st = this.state(ns as Namespace<unknown>);
    if (!ns.isValidId(id)) return this.invalidId(st, id);
    const key = st.keyBase + id;
    // A write supersedes any load in flight for this key in this process.
    this.inflight.delete(key);
    this.#epoch++;
    const r = await store(this, st, key, value, { kind: 'set' });
    return r.ok ? OK_UNDEFINED : r;
  }

  /**
   * Drops ids from L1 and tombstones them in L2 (fills racing this call will not write); `inline`:
   * the invalidation's event, published by the same script where the store can (Fencing.invalidate).
   */
  async delete(
    ns: Namespace<unknown>,
    ids: readonly string[],
    inline?: InlineEvent,
  ): Promise<Result<number>> {
    const st = this.state(ns);
    for (const id of ids) if (!ns.isValidId(id)) return this.invalidId(st, id);
    const keys = ids.map((id) => st.keyBase + id);
    let removed = 0;
    for (const key of keys) {
      this.inflight.delete(key);
      if (this.#l1?.remove(key)) removed++;
    }
    this.#epoch++;
    st.dels += keys.length;
    const l2 = this.#l2;
    if (l2 === undefined) return ok(removed);
    const r = await l2.fence.invalidate(keys, inline);
    // A read in this pod that fetched the old value during that round trip must not keep it.
    this.#epoch++;
    for (const key of keys) {
      this.inflight.delete(key);
      this.#l1?.remove(key);
    }
    if (!r.ok) {
      st.l2Errors++;
      return r;
    }
    return ok(Math.max(removed, r.value));
  }
}
