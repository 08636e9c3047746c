import { entryBase } from '@cachefleet/redis';
import type { Namespace } from '../namespace.js';
import type { NamespaceTimers } from './timing.js';

/**
 * Per-namespace counters of one cache, plain numbers bumped on the hot path and read by the
 * metrics collector at scrape time (no prom-client call per lookup).
 */
export interface NamespaceState {
  readonly ns: Namespace<unknown>;
  /** The namespace's entry base at its current generation (`entryBase` of @cachefleet/redis). */
  keyBase: string;
  /**
   * TTLs of new writes: the definition's times the tuner's factors (docs/tuning.md). Set by
   * `applyTuning` when a decision arrives, so the hot path reads one field as before.
   */
  l1TtlMs: number;
  l2TtlMs: number;
  /** The tuner's factors in force (1: the definition's TTL). */
  l1TtlFactor: number;
  l2TtlFactor: number;
  /** How long entries are kept past their TTL (0: no grace), and the loader back-off after a failure. */
  readonly graceMs: number;
  readonly backoffMs: number;
  readonly softMs: number | undefined;
  readonly hardMs: number | undefined;
  /** Fraction of the L2 TTL at its end where a hit refreshes in the background (0: off). */
  readonly earlyRefresh: number;
  readonly ttlSpread: number;
  /** Entries carry their load and expiry times (grace or early refresh): L1 hits check them. */
  readonly timed: boolean;
  /** Reads go through the fail-safe and timeout path (grace or timeouts). */
  readonly guarded: boolean;
  /** Reads answered with a stale value (grace). */
  staleServed: number;
  softTimeouts: number;
  hardTimeouts: number;
  earlyRefreshes: number;
  readonly timers: NamespaceTimers;
  l1Hits: number;
  l2Hits: number;
  /** Reads served by neither tier (single-flight joiners included). */
  misses: number;
  /** Calls of load/loadMany, i.e. L3 queries. */
  loads: number;
  loaderErrors: number;
  l2Errors: number;
  sets: number;
  dels: number;
  invalidations: number;
  /** Reads that found the fleet lock taken and waited for its holder. */
  lockWaits: number;
  /** Waits that hit lock.maxWaitMs and loaded anyway. */
  lockTimeouts: number;
  invalidInputs: number;
  /** Fills not written because an invalidation came first (the fence at work). */
  fencedFills: number;
  /** Sampled reads per id since the last hot-key flush. */
  hot: Map<string, number>;
}

export function keyBaseAt(ns: Namespace<unknown>, generation: number): string {
  return generation === 0 ? ns.keyBase : entryBase(ns.name, ns.version, generation);
}

export function newState(
  ns: Namespace<unknown>,
  timers: NamespaceTimers,
  generation: number,
): NamespaceState {
  const graceMs = (ns.grace?.seconds ?? 0) * 1000;
  const earlyRefresh = ns.earlyRefresh ?? 0;
  const softMs = ns.timeouts?.softMs;
  const hardMs = ns.timeouts?.hardMs;
  return {
    ns,
    timers,
    keyBase: keyBaseAt(ns, generation),
    l1TtlMs: ns.ttl.l1 * 1000,
    l2TtlMs: ns.ttl.l2 * 1000,
    l1TtlFactor: 1,
    l2TtlFactor: 1,
    graceMs,
    backoffMs: (ns.grace?.backoffSeconds ?? 10) * 1000,
    softMs,
    hardMs,
    earlyRefresh,
    ttlSpread: ns.ttlSpread ?? 0,
    timed: graceMs > 0 || earlyRefresh > 0,
    guarded: graceMs > 0 || softMs !== undefined || hardMs !== undefined,
    staleServed: 0,
    softTimeouts: 0,
    hardTimeouts: 0,
    earlyRefreshes: 0,
    l1Hits: 0,
    l2Hits: 0,
    misses: 0,
    loads: 0,
    loaderErrors: 0,
    l2Errors: 0,
    sets: 0,
    dels: 0,
    invalidations: 0,
    lockWaits: 0,
    lockTimeouts: 0,
    invalidInputs: 0,
    fencedFills: 0,
    hot: new Map(),
  };
}

/** Longest L1 TTL a tuning factor may give (REQUIREMENTS E3: up to 10 min), unless the definition's is longer. */
export const MAX_TUNED_L1_TTL_MS = 10 * 60_000;

/** Applies the tuner's factors to a namespace's TTLs for new writes (entries already cached keep theirs). */
export function applyFactors(st: NamespaceState, l1TtlFactor: number, l2TtlFactor: number): void {
  const l1 = st.ns.ttl.l1 * 1000;
  st.l1TtlFactor = l1TtlFactor;
  st.l2TtlFactor = l2TtlFactor;
  st.l1TtlMs = Math.max(1, Math.round(Math.min(l1 * l1TtlFactor, Math.max(l1, MAX_TUNED_L1_TTL_MS))));
  st.l2TtlMs = Math.max(1, Math.round(st.ns.ttl.l2 * 1000 * l2TtlFactor));
}

export interface Totals {
  hits: number;
  misses: number;
  errors: number;
}

export function totals(states: Iterable<NamespaceState | undefined>): Totals {
  const t: Totals = { hits: 0, misses: 0, errors: 0 };
  for (const s of states) {
    if (!s) continue;
    t.hits += s.l1Hits + s.l2Hits;
    t.misses += s.misses;
    t.errors += s.l2Errors + s.loaderErrors;
  }
  return t;
}
