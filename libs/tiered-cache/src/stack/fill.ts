import { type EntryTimes, envelope } from '../drivers/codec.js';
import type { RedisStore } from '../drivers/redis/store.js';
import { CacheError } from '../errors.js';
import type { LoadContext } from '../namespace.js';
import { err, OK_UNDEFINED, ok, type Result } from '../result.js';
import { spread } from './entry-times.js';
import type { ReadThrough } from './read-through.js';
import type { NamespaceState } from './state.js';

/**
 * How a value reaches the tiers. A fill came from a miss: it is written to L2 only if the entry is
 * still what the miss saw (`expected`), and to L1 only if no invalidation was applied in this pod
 * since the read began (`epoch`). An explicit set is authoritative and writes unconditionally.
 */
export type WriteMode =
  | { readonly kind: 'set' }
  | {
      readonly kind: 'fill';
      readonly expected: string;
      readonly epoch: number;
      readonly startedAt: number;
      /**
       * The namespace's walk counter read before loading (see Fencing.bumpInvalidations). A fill
       * without it writes L1 only: it cannot tell whether a pattern or tag walk missed its key.
       */
      readonly inv?: number;
    };

/** Calls the namespace's loader for one id and stores what it returns (`undefined`: not found, not cached). */
export async function loadAndStore(
  rt: ReadThrough,
  st: NamespaceState,
  id: string,
  key: string,
  mode: WriteMode,
): Promise<Result<unknown>> {
  st.loads++;
  const t0 = performance.now();
  let loaded: unknown;
  const ctx = new Adaptive(st);
  try {
    loaded = await (rt.trace === undefined
      ? st.ns.load(id, ctx)
      : rt.trace.load(st.ns.name, id, () => st.ns.load(id, ctx)));
  } catch (cause) {
    st.loaderErrors++;
    return err(
      new CacheError('E_CACHE_LOADER_FAILED', `loader of ${st.ns.name} failed for ${id}`, { cause }),
    );
  } finally {
    st.timers.l3.observe((performance.now() - t0) / 1000);
  }
  if (loaded === undefined) return OK_UNDEFINED;
  return store(rt, st, key, loaded, mode, ctx);
}

/** What a loader said about the entry it loaded (adaptive TTL and tags); checked when it says it. */
export class Adaptive implements LoadContext {
  l1Ms: number | undefined;
  l2Ms: number | undefined;
  tags: readonly string[] | undefined;
  readonly #st: NamespaceState;

  constructor(st: NamespaceState) {
    this.#st = st;
  }

  setTtl(ttl: { readonly l1?: number; readonly l2?: number }): void {
    for (const s of [ttl.l1, ttl.l2]) {
      if (s !== undefined && !(Number.isFinite(s) && s > 0))
        throw new CacheError(
          'E_CACHE_INVALID_VALUE',
          `ctx.setTtl of ${this.#st.ns.name}: TTLs are positive seconds`,
        );
    }
    if (ttl.l1 !== undefined) this.l1Ms = ttl.l1 * 1000;
    if (ttl.l2 !== undefined) this.l2Ms = ttl.l2 * 1000;
  }

  setTags(tags: readonly string[]): void {
    if (!tags.every((t) => typeof t === 'string' && t.length > 0))
      throw new CacheError(
        'E_CACHE_INVALID_VALUE',
        `ctx.setTags of ${this.#st.ns.name}: tags are non-empty strings`,
      );
    this.tags = [...tags];
  }
}

/**
 * Validates, then writes L2 (awaited: lock waiters read it) and L1. Never throws. A fill that an
 * invalidation overtook is returned to its reader (it began before the invalidation) but cached
 * nowhere. An explicit `set` returns an L2 failure, and queues an invalidation of the key for
 * replay, so the value it meant to replace cannot outlive the outage in L2.
 */
export async function store(
  rt: ReadThrough,
  st: NamespaceState,
  key: string,
  value: unknown,
  mode: WriteMode,
  adaptive?: Adaptive,
): Promise<Result<unknown>> {
  const parsed = st.ns.schema.safeParse(value);
  if (!parsed.success) {
    st.invalidInputs++;
    return err(
      new CacheError('E_CACHE_INVALID_VALUE', `invalid value for ${st.ns.name}: ${parsed.error.message}`, {
        cause: parsed.error,
      }),
    );
  }
  // Frozen before anything keeps or returns it: the first reader cannot change the next one's value.
  const result = ok(rt.frozen(st, parsed.data));
  const tags = adaptive?.tags !== undefined ? rt.scopeTags(st, adaptive.tags) : rt.tagsOf(st, parsed.data);
  // This entry's TTLs (the loader's, or the namespace's), spread; with grace or early refresh the
  // L2 value carries its times and Redis keeps it `grace` longer.
  const l1Ms = spread(adaptive?.l1Ms ?? st.l1TtlMs, st.ttlSpread);
  const l2Ms = spread(adaptive?.l2Ms ?? st.l2TtlMs, st.ttlSpread);
  const now = Date.now();
  const times: EntryTimes | undefined = st.timed ? { loadedAt: now, expiresAt: now + l2Ms } : undefined;
  const keepMs = l2Ms + st.graceMs;
  let size: number | undefined;
  const l2 = rt.l2;
  if (l2 !== undefined) {
    let encoded: { wire: string; size: number };
    try {
      encoded = l2.encode(parsed.data);
    } catch (cause) {
      st.invalidInputs++;
      return err(
        new CacheError('E_CACHE_INVALID_VALUE', `value of ${st.ns.name} is not JSON-serialisable`, {
          cause,
        }),
      );
    }
    size = encoded.size;
    const wire = times ? envelope(encoded.wire, times) : encoded.wire;
    const t0 = performance.now();
    if (mode.kind === 'set') {
      const w = await l2.write(key, wire, keepMs, tags);
      st.timers.writeL2.observe((performance.now() - t0) / 1000);
      if (!w.ok) {
        st.l2Errors++;
        rt.l1?.remove(key);
        await l2.fence.invalidate([key]);
        return w;
      }
    } else {
      // A fill that never read the walk counter (Redis was failing) could be missed by a walk:
      // it stays in this pod's L1. One older than a tombstone's life could miss the tombstone
      // that fences it: it is cached nowhere.
      if (mode.inv === undefined) {
        rt.putL1(st, key, result, size, mode.epoch, times, l1Ms, tags);
        return result;
      }
      if (performance.now() - mode.startedAt >= rt.tombstoneTtlMs) {
        st.fencedFills++;
        return result;
      }
      const fence = { namespace: st.ns.name, inv: mode.inv };
      const w = await l2.fence.fill(key, mode.expected, wire, keepMs, tags, fence);
      st.timers.writeL2.observe((performance.now() - t0) / 1000);
      if (!w.ok) st.l2Errors++;
      else if (!w.value || (!l2.fence.fencesWalks && !(await noWalkSince(rt, st, l2, key, mode.inv)))) {
        st.fencedFills++;
        return result;
      }
    }
  }
  if (mode.kind === 'set') {
    // A namespace invalidation applied during the L2 write moved the generation on and cleared the
    // old one from L1: the entry would sit there under a key nobody reads until its TTL.
    if (key.startsWith(st.keyBase)) rt.storeL1(st, key, result, size, tags, times, l1Ms);
  } else rt.putL1(st, key, result, size, mode.epoch, times, l1Ms, tags);
  st.sets++;
  return result;
}

/**
 * Cluster only (elsewhere the fill script checks this atomically): after a fill wrote, did a
 * pattern or tag invalidation of the namespace start since the fill began loading? Its walk may
 * have missed our key, so we retract the entry ourselves and announce it: another pod may have
 * read it in the instant between.
 */
async function noWalkSince(
  rt: ReadThrough,
  st: NamespaceState,
  l2: RedisStore,
  key: string,
  inv: number,
): Promise<boolean> {
  const now = await l2.fence.invalidations(st.ns.name);
  if (now.ok && now.value === inv) return true;
  await l2.fence.invalidate([key]);
  if (key.startsWith(st.keyBase)) rt.onRetract?.(st.ns.name, key.slice(st.keyBase.length));
  return false;
}
