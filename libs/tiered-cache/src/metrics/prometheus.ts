import { Counter, Gauge, type Registry } from 'prom-client';
import type { EventBus } from '../bus/event-bus.js';
import type { MemoryStore } from '../drivers/memory.js';
import type { RedisStore } from '../drivers/redis/store.js';
import type { NamespaceState } from '../stack/state.js';
import type { TimingSink } from '../stack/timing.js';
import type { CacheImplName } from '../types.js';
import { FastHistogram, type Observer } from './histogram.js';

/** What the collector reads at scrape time. */
interface MetricsSource {
  impl(): CacheImplName;
  states(): readonly (NamespaceState | undefined)[];
  l1(): MemoryStore | undefined;
  l2(): RedisStore | undefined;
  breakerTransitions(): Readonly<Record<string, number>>;
  bus(): EventBus | undefined;
}

const LATENCY_BUCKETS = [
  0.000001, 0.000005, 0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
  0.5, 1,
];

const BUS_LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Counters are plain numbers on the hot path; prom-client sees them only at scrape time, when
 * each counter is advanced by what changed since the previous scrape. Durations go straight to
 * histograms, L1 ones sampled (see l1TimingSampleRate).
 */
export function registerCacheMetrics(
  registry: Registry,
  source: MetricsSource,
): { timing: TimingSink; busLag: Observer } {
  type Advance = (labels: Record<string, string>, value: number) => void;
  /** A counter whose series are advanced to the current totals at scrape time (monotonic). */
  const counter = (name: string, help: string, labelNames: string[], collect: (advance: Advance) => void) => {
    const last = new Map<string, number>();
    return new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        collect((labels, value) => {
          const id = Object.values(labels).join('|');
          const seen = last.get(id);
          const delta = value - (seen ?? 0);
          if (delta > 0) {
            this.inc(labels, delta);
            last.set(id, value);
          } else if (seen === undefined) {
            // Exported at 0 from the first scrape: rate() and increase() take a series' first
            // sample as its start, so a series born at 1 would hide its first event.
            this.inc(labels, 0);
            last.set(id, value);
          }
        });
      },
    });
  };

  const perNs = (fn: (c: Advance, impl: string, s: NamespaceState) => void) => (c: Advance) => {
    const impl = source.impl();
    for (const s of source.states()) if (s) fn(c, impl, s);
  };

  counter(
    'cachefleet_cache_requests_total',
    'Reads that reached a tier, by result: hit (served by it) or miss (counted once the tier said so).',
    ['impl', 'tier', 'namespace', 'result'],
    perNs((c, impl, s) => {
      const namespace = s.ns.name;
      if (source.l1()) {
        c({ impl, tier: 'l1', namespace, result: 'hit' }, s.l1Hits);
        c({ impl, tier: 'l1', namespace, result: 'miss' }, s.l2Hits + s.misses);
      }
      if (source.l2()) {
        c({ impl, tier: 'l2', namespace, result: 'hit' }, s.l2Hits);
        c({ impl, tier: 'l2', namespace, result: 'miss' }, s.misses);
      }
      if (!source.l1() && !source.l2()) c({ impl, tier: 'none', namespace, result: 'miss' }, s.misses);
    }),
  );
  counter(
    'cachefleet_cache_loader_calls_total',
    'Calls of a namespace loader (L3 queries).',
    ['impl', 'namespace'],
    perNs((c, impl, s) => c({ impl, namespace: s.ns.name }, s.loads)),
  );
  counter(
    'cachefleet_cache_sets_total',
    'Entries written by the read-through fill or set().',
    ['impl', 'namespace'],
    perNs((c, impl, s) => c({ impl, namespace: s.ns.name }, s.sets)),
  );
  counter(
    'cachefleet_cache_deletes_total',
    'Entries deleted by key.',
    ['impl', 'namespace'],
    perNs((c, impl, s) => c({ impl, namespace: s.ns.name }, s.dels)),
  );
  counter(
    'cachefleet_cache_invalidations_total',
    'Namespace-wide invalidations (tags are not a label: their number is unbounded).',
    ['impl', 'namespace'],
    perNs((c, impl, s) => c({ impl, namespace: s.ns.name }, s.invalidations)),
  );
  counter(
    'cachefleet_cache_lock_waits_total',
    'Reads that found the fleet load lock taken and waited for its holder.',
    ['namespace'],
    perNs((c, _impl, s) => {
      c({ namespace: s.ns.name }, s.lockWaits);
    }),
  );
  counter(
    'cachefleet_cache_lock_timeouts_total',
    'Lock waits that reached lock.maxWaitMs and loaded anyway.',
    ['namespace'],
    perNs((c, _impl, s) => c({ namespace: s.ns.name }, s.lockTimeouts)),
  );
  counter(
    'cachefleet_cache_errors_total',
    'Cache faults by type (none reaches the caller as an exception).',
    ['impl', 'error_type'],
    (c) => {
      const impl = source.impl();
      let loader = 0;
      let invalid = 0;
      for (const s of source.states()) {
        if (!s) continue;
        loader += s.loaderErrors;
        invalid += s.invalidInputs;
      }
      c({ impl, error_type: 'loader' }, loader);
      c({ impl, error_type: 'invalid_input' }, invalid);
      const l2 = source.l2();
      if (l2) for (const [type, n] of Object.entries(l2.stats.errors)) c({ impl, error_type: type }, n);
    },
  );
  counter('cachefleet_cache_l1_evictions_total', 'L1 entries evicted by the LRU for room.', [], (c) => {
    const l1 = source.l1();
    if (l1) c({}, l1.stats.evictions);
  });
  counter(
    'cachefleet_cache_l2_breaker_transitions_total',
    'Circuit breaker state changes, by new state.',
    ['to'],
    (c) => {
      for (const [to, n] of Object.entries(source.breakerTransitions())) c({ to }, n);
    },
  );
  counter(
    'cachefleet_cache_l2_replayed_deletes_total',
    'L2 deletes made during an outage and replayed after it.',
    [],
    (c) => {
      const l2 = source.l2();
      if (l2) c({}, l2.stats.replayedDeletes);
    },
  );

  counter(
    'cachefleet_cache_bus_events_total',
    'Bus events by outcome: published, applied, duplicates, replayed (read from the stream), gaps, flushes, invalid, queued, dropped; fleet-acknowledged invalidations: acks sent, waits made, timeouts, fenced (namespaces dropped from L1).',
    ['outcome'],
    (c) => {
      const bus = source.bus();
      if (bus) for (const [outcome, n] of Object.entries(bus.stats)) c({ outcome }, n);
    },
  );
  counter(
    'cachefleet_cache_stale_served_total',
    'Reads answered with a value past its TTL because the loader failed or was slow (grace).',
    ['namespace'],
    perNs((c, _impl, s) => c({ namespace: s.ns.name }, s.staleServed)),
  );
  counter(
    'cachefleet_cache_loader_timeouts_total',
    'Reads that hit a loader timeout: soft (a stale value was served) or hard.',
    ['namespace', 'kind'],
    perNs((c, _impl, s) => {
      c({ namespace: s.ns.name, kind: 'soft' }, s.softTimeouts);
      c({ namespace: s.ns.name, kind: 'hard' }, s.hardTimeouts);
    }),
  );
  counter(
    'cachefleet_cache_early_refreshes_total',
    'Background refreshes this pod ran for entries near the end of their TTL.',
    ['namespace'],
    perNs((c, _impl, s) => c({ namespace: s.ns.name }, s.earlyRefreshes)),
  );
  counter(
    'cachefleet_cache_fenced_fills_total',
    'Fills not cached because an invalidation overtook them.',
    ['namespace'],
    (c) => {
      for (const s of source.states()) if (s) c({ namespace: s.ns.name }, s.fencedFills);
    },
  );

  const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge<string>) => void) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        collect(this);
      },
    });
  gauge(
    'cachefleet_cache_enabled',
    '1 while a caching implementation is active, 0 for NullCache.',
    ['impl'],
    (g) => {
      const impl = source.impl();
      g.set({ impl }, impl === 'null' ? 0 : 1);
    },
  );
  gauge('cachefleet_cache_l1_entries', 'Entries in L1.', [], (g) => g.set(source.l1()?.entries ?? 0));
  gauge('cachefleet_cache_l1_size_bytes', 'JSON bytes held in L1.', [], (g) =>
    g.set(source.l1()?.bytes ?? 0),
  );
  gauge('cachefleet_cache_l1_capacity_bytes', 'L1 byte limit.', [], (g) => g.set(source.l1()?.maxBytes ?? 0));
  gauge('cachefleet_cache_l1_capacity_entries', 'L1 entry limit.', [], (g) =>
    g.set(source.l1()?.maxEntries ?? 0),
  );
  gauge(
    'cachefleet_cache_l1_memory_pressure_ratio',
    'L1 bytes / limit (or entries / limit, the larger).',
    [],
    (g) => {
      const l1 = source.l1();
      g.set(l1 ? Math.max(l1.bytes / l1.maxBytes, l1.entries / l1.maxEntries) : 0);
    },
  );
  gauge(
    'cachefleet_cache_l2_breaker_state',
    'L2 circuit breaker: 0 closed, 1 half-open, 2 open.',
    [],
    (g) => {
      const state = source.l2()?.breakerState;
      g.set(state === 'open' ? 2 : state === 'half-open' ? 1 : 0);
    },
  );
  gauge(
    'cachefleet_cache_bus_connected',
    '1 while this pod hears the bus (its L1 is kept coherent).',
    [],
    (g) => g.set(source.bus()?.connected ? 1 : 0),
  );
  gauge('cachefleet_cache_l2_pending_deletes', 'L2 deletes waiting for Redis to come back.', [], (g) =>
    g.set(source.l2()?.pendingDeletes ?? 0),
  );

  const lookup = new FastHistogram(
    'cachefleet_cache_lookup_duration_seconds',
    'Lookup time by tier (l1 sampled; l3 is the loader).',
    LATENCY_BUCKETS,
  );
  const write = new FastHistogram(
    'cachefleet_cache_write_duration_seconds',
    'Write time by tier.',
    LATENCY_BUCKETS,
  );
  // Redis's clock at XADD against this process's at apply: seconds, not microseconds.
  const busLag = new FastHistogram(
    'cachefleet_cache_bus_lag_seconds',
    "Age of each other pod's bus event when this pod applied it (live or replayed after a cut).",
    BUS_LAG_BUCKETS,
  );
  lookup.registerOn(registry);
  write.registerOn(registry);
  busLag.registerOn(registry);
  return {
    timing: (namespace) => ({
      l1: lookup.series({ tier: 'l1', namespace }),
      l2: lookup.series({ tier: 'l2', namespace }),
      l3: lookup.series({ tier: 'l3', namespace }),
      writeL2: write.series({ tier: 'l2', namespace }),
      writeL1: write.series({ tier: 'l1', namespace }),
    }),
    busLag: busLag.series({}),
  };
}
