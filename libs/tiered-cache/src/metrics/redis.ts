import { type ScrapeLease, scrapeLease } from '@cachefleet/redis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RedisStore } from '../drivers/redis/store.js';
import {
  type L2Sample,
  type RedisNodeInfo,
  type ReplicaInfo,
  type SentinelInfo,
  within,
} from '../drivers/redis/telemetry.js';

/** Longest a scrape waits for the lease, INFO and the sample, ms. */
const SCRAPE_BUDGET_MS = 1_000;

export interface RedisMetricsSource {
  l2(): RedisStore | undefined;
  /** How long a scrape makes this process the exporter of the Redis gauges, ms. */
  readonly leaseMs: number;
  /** Random keys sized per scrape for the L2 estimates. */
  readonly samples: number;
}

export interface RedisMetrics {
  /** Gives the exporter lease up (graceful stop), so another process exports at its next scrape. */
  release(): Promise<void>;
}

interface Scrape {
  readonly held: boolean;
  readonly nodes: readonly RedisNodeInfo[];
  readonly sample: L2Sample | undefined;
  readonly sentinels: readonly SentinelInfo[];
}

const NOTHING: Scrape = { held: false, nodes: [], sample: undefined, sentinels: [] };

/**
 * The cache Redis as Prometheus sees it (issue 13): memory, pressure, evictions, clients and
 * replication per node from INFO, and each namespace's keys and bytes estimated from a sample. The
 * same whoever reads them, so **one process of the fleet exports them** (a scrape lease in the
 * cache Redis, `<prefix>__{fleet}:exporter`, as the queue gauges do in the queue Redis);
 * `cachefleet_redis_exporter_active` says which. The failovers a process's own client followed
 * are its own: every process exports `cachefleet_redis_failover_events_total`.
 */
export function registerRedisMetrics(registry: Registry, source: RedisMetricsSource): RedisMetrics {
  let lease: ScrapeLease | undefined;
  let leaseOf: RedisStore | undefined;
  const leaseFor = (l2: RedisStore): ScrapeLease => {
    if (lease === undefined || leaseOf !== l2) {
      lease = scrapeLease(l2.client, l2.keys.exporter, source.leaseMs);
      leaseOf = l2;
    }
    return lease;
  };
  const read = async (): Promise<Scrape> => {
    const l2 = source.l2();
    if (l2 === undefined || !l2.available) return NOTHING;
    return within(
      (async (): Promise<Scrape> => {
        if (!(await leaseFor(l2).acquire())) return NOTHING;
        const [info, sample, sentinels] = await Promise.all([
          l2.telemetry.info(),
          l2.telemetry.sample(source.samples),
          l2.telemetry.sentinels(),
        ]);
        return {
          held: true,
          nodes: info.ok ? info.value : [],
          sample: sample.ok ? sample.value : undefined,
          sentinels,
        };
      })(),
      SCRAPE_BUDGET_MS,
    ).catch(() => NOTHING);
  };
  // The gauges are collected concurrently by one scrape: they share its one read.
  let inFlight: Promise<Scrape> | undefined;
  const scrape = (): Promise<Scrape> => {
    inFlight ??= read().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  const perNode = (name: string, help: string, value: (n: RedisNodeInfo) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['node', 'role'],
      registers: [registry],
      collect: async function (this: Gauge<'node' | 'role'>) {
        const { nodes } = await scrape();
        this.reset();
        for (const n of nodes) {
          const v = value(n);
          if (v !== undefined && n.role !== 'unreachable') this.set({ node: n.node, role: n.role }, v);
        }
      },
    });
  perNode(
    'cachefleet_redis_memory_used_bytes',
    'Memory Redis uses (INFO used_memory), per node',
    (n) => n.usedMemoryBytes,
  );
  perNode(
    'cachefleet_redis_memory_max_bytes',
    'maxmemory of each node (0: no limit)',
    (n) => n.maxMemoryBytes,
  );
  perNode(
    'cachefleet_redis_memory_pressure_ratio',
    'used_memory / maxmemory per node (absent without a maxmemory)',
    (n) => (n.maxMemoryBytes > 0 ? n.usedMemoryBytes / n.maxMemoryBytes : undefined),
  );
  perNode(
    'cachefleet_redis_evicted_keys',
    "Keys Redis evicted for memory since it started (INFO evicted_keys, Redis's own counter: it restarts at 0 with Redis)",
    (n) => n.evictedKeys,
  );
  perNode(
    'cachefleet_redis_connected_clients',
    'Client connections per node (INFO connected_clients)',
    (n) => n.connectedClients,
  );
  perNode('cachefleet_redis_keys', 'Keys per node, every prefix (INFO keyspace)', (n) => n.keys);
  perNode('cachefleet_redis_connected_replicas', 'Replicas attached to each master', (n) =>
    n.role === 'master' ? n.connectedReplicas : undefined,
  );
  const perReplica = (name: string, help: string, value: (r: ReplicaInfo) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['node', 'replica'],
      registers: [registry],
      collect: async function (this: Gauge<'node' | 'replica'>) {
        const { nodes } = await scrape();
        this.reset();
        for (const n of nodes)
          for (const r of n.replicas) this.set({ node: n.node, replica: r.node }, value(r));
      },
    });
  perReplica(
    'cachefleet_redis_replication_lag_bytes',
    "Bytes each replica is behind its master (the master's INFO: master_repl_offset minus the replica's offset)",
    (r) => r.lagBytes,
  );
  perReplica(
    'cachefleet_redis_replication_lag_seconds',
    "Seconds since each replica last acknowledged its master (the master's INFO `lag=`)",
    (r) => r.lagSeconds,
  );
  new Gauge({
    name: 'cachefleet_redis_persistence_ok',
    help: 'Whether the last RDB save (kind="rdb") and the AOF writes and rewrites (kind="aof", only with AOF on) of each node succeeded: 1 ok, 0 failing',
    labelNames: ['node', 'role', 'kind'],
    registers: [registry],
    collect: async function (this: Gauge<'node' | 'role' | 'kind'>) {
      const { nodes } = await scrape();
      this.reset();
      for (const n of nodes) {
        if (n.role === 'unreachable') continue;
        this.set({ node: n.node, role: n.role, kind: 'rdb' }, n.rdbOk ? 1 : 0);
        if (n.aofOk !== undefined) this.set({ node: n.node, role: n.role, kind: 'aof' }, n.aofOk ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'cachefleet_redis_sentinel_up',
    help: 'Each configured Sentinel of the cache Redis: 1 when it answers with the master address, 0 when not (Sentinel mode only)',
    labelNames: ['sentinel'],
    registers: [registry],
    collect: async function (this: Gauge<'sentinel'>) {
      const { sentinels } = await scrape();
      this.reset();
      for (const s of sentinels) this.set({ sentinel: s.sentinel }, s.up ? 1 : 0);
    },
  });
  const perNamespace = (
    name: string,
    help: string,
    value: (n: { entries: number; bytes: number }) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['namespace'],
      registers: [registry],
      collect: async function (this: Gauge<'namespace'>) {
        const { sample } = await scrape();
        this.reset();
        for (const n of sample?.namespaces ?? []) this.set({ namespace: n.namespace }, value(n));
      },
    });
  perNamespace(
    'cachefleet_cache_l2_entries',
    'Keys of each namespace in L2 (every version and generation), estimated from a sample of random keys',
    (n) => n.entries,
  );
  perNamespace(
    'cachefleet_cache_l2_size_bytes',
    'Bytes of each namespace in L2 (MEMORY USAGE), estimated from a sample of random keys',
    (n) => n.bytes,
  );
  new Gauge({
    name: 'cachefleet_redis_exporter_active',
    help: '1 while this process is the one that exports the cachefleet_redis_* gauges and the L2 estimates (it holds the lease), 0 otherwise',
    registers: [registry],
    collect: async function (this: Gauge) {
      const { held } = await scrape();
      this.set(held ? 1 : 0);
    },
  });
  let counted = 0;
  new Counter({
    name: 'cachefleet_redis_failover_events_total',
    help: "New masters this process's cache client moved to (a Sentinel failover, a Cluster replica promoted, a reshard)",
    registers: [registry],
    collect() {
      const l2 = source.l2();
      if (l2 === undefined) return;
      l2.noteMasters();
      if (l2.failovers > counted) {
        this.inc(l2.failovers - counted);
        counted = l2.failovers;
      }
    },
  });
  return {
    release: async () => {
      const l2 = leaseOf;
      if (lease === undefined || l2 === undefined || !l2.available) return;
      await within(lease.release(), SCRAPE_BUDGET_MS).catch(() => undefined);
    },
  };
}
