import type { Tiers } from './stack/read-through.js';
import type { NamespaceState } from './stack/state.js';

export interface TierStats {
  readonly l1:
    | {
        readonly entries: number;
        readonly bytes: number;
        readonly maxEntries: number;
        readonly maxBytes: number;
        readonly evictions: number;
      }
    | undefined;
  readonly l2:
    | {
        readonly available: boolean;
        readonly breaker: string;
        /** How long the connection has been down (0 while it is ready), ms. */
        readonly downMs: number;
        /** Invalidations waiting for Redis in this process, and those written after an outage. */
        readonly pendingDeletes: number;
        readonly replayedDeletes: number;
      }
    | undefined;
}

/** Per-namespace, per-tier counters for `GET /cache/stats` (G1). */
export interface NamespaceStats {
  readonly namespace: string;
  readonly l1: { readonly hits: number; readonly misses: number; readonly hitRate: number };
  readonly l2: { readonly hits: number; readonly misses: number; readonly hitRate: number };
  readonly loads: number;
  readonly combinedHitRate: number;
  /** Fills not cached because an invalidation overtook them. */
  readonly fencedFills: number;
  /** Reads answered with a value past its TTL (grace), and loader timeouts (soft: stale served). */
  readonly staleServed: number;
  readonly softTimeouts: number;
  readonly hardTimeouts: number;
  /** Background refreshes started by hits near the end of an entry's TTL (this pod took the lock). */
  readonly earlyRefreshes: number;
  /** The tuner's settings in force here, and the TTLs new writes get from them (docs/tuning.md). */
  readonly tuning: {
    readonly l1TtlFactor: number;
    readonly l2TtlFactor: number;
    readonly l1TtlMs: number;
    readonly l2TtlMs: number;
  };
}

/** Size and state of each tier of the active store (G1). */
export function tierStats({ l1, l2 }: Tiers): TierStats {
  return {
    l1: l1
      ? {
          entries: l1.entries,
          bytes: l1.bytes,
          maxEntries: l1.maxEntries,
          maxBytes: l1.maxBytes,
          evictions: l1.stats.evictions,
        }
      : undefined,
    l2: l2
      ? {
          available: l2.available,
          breaker: l2.breakerState,
          downMs: Math.round(l2.downMs),
          pendingDeletes: l2.pendingDeletes,
          replayedDeletes: l2.stats.replayedDeletes,
        }
      : undefined,
  };
}

export function namespaceStats(states: readonly (NamespaceState | undefined)[]): NamespaceStats[] {
  return states.filter((s): s is NamespaceState => s !== undefined).map(statsOf);
}

function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses);
}

function statsOf(s: NamespaceState): NamespaceStats {
  const l1Misses = s.l2Hits + s.misses;
  return {
    namespace: s.ns.name,
    l1: { hits: s.l1Hits, misses: l1Misses, hitRate: rate(s.l1Hits, l1Misses) },
    l2: { hits: s.l2Hits, misses: s.misses, hitRate: rate(s.l2Hits, s.misses) },
    loads: s.loads,
    combinedHitRate: rate(s.l1Hits + s.l2Hits, s.misses),
    fencedFills: s.fencedFills,
    staleServed: s.staleServed,
    softTimeouts: s.softTimeouts,
    hardTimeouts: s.hardTimeouts,
    earlyRefreshes: s.earlyRefreshes,
    tuning: {
      l1TtlFactor: s.l1TtlFactor,
      l2TtlFactor: s.l2TtlFactor,
      l1TtlMs: s.l1TtlMs,
      l2TtlMs: s.l2TtlMs,
    },
  };
}
