import { type Env, intSchema, parseEnv } from '@cachefleet/config';
import { scrapeLease } from '@cachefleet/redis';
import type { Queue } from 'bullmq';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { QUEUE_NAMES, type QueueName } from './catalogue.js';
import type { JobClient } from './client.js';
import { queueDown, withDeadline } from './deadline.js';
import { JobError } from './errors.js';

/** Longest a scrape waits for the lease and the queue counts, ms. */
const SCRAPE_BUDGET_MS = 1_000;

export const QUEUE_METRICS_ENV_VARS = {
  METRICS_QUEUE_LEASE_MS:
    'how long a scrape makes this process the one exporter of the queue gauges (renewed by each scrape); more than the scrape interval, default 60000',
} as const;

export const QUEUE_METRICS_ENV_SCHEMA = z.object({
  METRICS_QUEUE_LEASE_MS: intSchema
    .min(1_000)
    .max(3_600_000)
    .default(60_000)
    .describe(QUEUE_METRICS_ENV_VARS.METRICS_QUEUE_LEASE_MS),
});

/** METRICS_QUEUE_LEASE_MS; a bad value throws E_JOB_CONFIG naming it. */
export function loadQueueMetricsLeaseMs(env: Env): number {
  return parseEnv(
    QUEUE_METRICS_ENV_SCHEMA,
    env,
    (message, cause) => new JobError('E_JOB_CONFIG', message, { cause }),
  ).METRICS_QUEUE_LEASE_MS;
}

/** The queue Redis key naming the process that exports the queue gauges (`__` is no queue name). */
export function queueMetricsLeaseKey(jobs: JobClient): string {
  return `${jobs.prefix}:__metrics:queue-exporter`;
}

export interface QueueMetricsOptions {
  /** METRICS_QUEUE_LEASE_MS. */
  readonly leaseMs: number;
}

export interface QueueMetrics {
  /** This process's name in the lease (host:pid:random). */
  readonly holder: string;
  /** Gives the lease up (graceful shutdown), so another process exports at its next scrape. */
  release(): Promise<void>;
}

/**
 * `cachefleet_queue_jobs{queue,state}`: jobs per queue and state, read from the queue Redis when
 * Prometheus scrapes (no polling in between), exported by **one process of the fleet at a time**:
 * the counts are the same whoever reads them, so a copy per process would make every `sum` count
 * them once per API pod and worker. A scrape takes (or renews) a lease in the queue Redis
 * (`SET NX PX`, in a script); the processes that do not hold it export no series. Only scraped
 * processes ever hold it, and the holder keeps it while its scrapes come more often than
 * `leaseMs`; when it dies, the next process scraped after `leaseMs` takes over.
 * `cachefleet_queue_exporter_active` says which process it is (1) — every process exports that one.
 * The same process exports `cachefleet_queue_workers{queue}`, the workers connected to each queue.
 */
export function registerQueueMetrics(
  registry: Registry,
  jobs: JobClient,
  options: QueueMetricsOptions,
): QueueMetrics {
  const lease = scrapeLease(jobs.connection, queueMetricsLeaseKey(jobs), options.leaseMs);
  type Scrape = {
    held: boolean;
    counts: { queue: QueueName; state: string; n: number }[];
    workers: { queue: QueueName; n: number | undefined }[];
  };
  const none: Scrape = { held: false, counts: [], workers: [] };
  const read = async (): Promise<Scrape> => {
    // The queue connection waits out outages (BullMQ's rule): a scrape must not. Without an
    // answer in time the gauges are left empty and the rest of /metrics still goes out.
    if (queueDown(jobs.connection.status)) return none;
    return withDeadline(
      (async (): Promise<Scrape> => {
        const held = await lease.acquire();
        if (!held) return none;
        const [perQueue, workers] = await Promise.all([
          Promise.all(
            QUEUE_NAMES.map(async (queue) => {
              const counts = await jobs.queue(queue).getJobCounts();
              return Object.entries(counts).map(([state, n]) => ({ queue, state, n }));
            }),
          ),
          Promise.all(QUEUE_NAMES.map(async (queue) => ({ queue, n: await workersOf(jobs.queue(queue)) }))),
        ]);
        return { held, counts: perQueue.flat(), workers };
      })(),
      SCRAPE_BUDGET_MS,
    ).catch(() => none);
  };
  // The three gauges are collected concurrently by one scrape: they share its one read.
  let inFlight: Promise<Scrape> | undefined;
  const scrape = (): Promise<Scrape> => {
    inFlight ??= read().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  new Gauge({
    name: 'cachefleet_queue_jobs',
    help: 'Jobs in each queue by state, read from the queue Redis at scrape time; exported by one process of the fleet at a time (cachefleet_queue_exporter_active)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    collect: async function (this: Gauge<'queue' | 'state'>) {
      const { counts } = await scrape();
      this.reset();
      for (const { queue, state, n } of counts) this.set({ queue, state }, n);
    },
  });
  new Gauge({
    name: 'cachefleet_queue_exporter_active',
    help: '1 while this process is the one that exports cachefleet_queue_jobs (it holds the lease), 0 otherwise',
    registers: [registry],
    collect: async function (this: Gauge) {
      const { held } = await scrape();
      this.set(held ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cachefleet_queue_workers',
    help: 'BullMQ workers connected to each queue (CLIENT LIST of the queue Redis), at scrape time; exported by one process of the fleet at a time (cachefleet_queue_exporter_active)',
    labelNames: ['queue'],
    registers: [registry],
    collect: async function (this: Gauge<'queue'>) {
      const { workers } = await scrape();
      this.reset();
      for (const { queue, n } of workers) if (n !== undefined) this.set({ queue }, n);
    },
  });
  return {
    holder: lease.holder,
    release: async () => {
      if (queueDown(jobs.connection.status)) return;
      await withDeadline(lease.release(), SCRAPE_BUDGET_MS).catch(() => undefined);
    },
  };
}

/**
 * The workers of a queue: its connections named by BullMQ's workers (CLIENT LIST; the queue
 * Redis's `default` user may run it, deploy/redis/queue-users.acl). Where CLIENT LIST is unknown
 * (GCP's Memorystore) BullMQ answers one entry without a `rawname`, which is no worker; where an
 * ACL refuses it, it throws. Either way the count is unknown (undefined: no series), not a made-up
 * 1 nor a 0 that looks like an outage, and the queue counts of the same scrape still go out.
 */
async function workersOf(queue: Queue): Promise<number | undefined> {
  const workers = await queue.getWorkers().catch(() => undefined);
  if (workers === undefined || workers.some((w) => w.rawname === undefined)) return undefined;
  return workers.length;
}

/** A default metric collectDefaultMetrics registers: its presence means they are there. */
const DEFAULT_METRIC = 'process_cpu_user_seconds_total';

/**
 * Gauges among prom-client's defaults named like counters (`promtool check metrics`: "non-counter
 * metrics should not have _total suffix"); each is the sum of the by-type gauge of the same name
 * without `_total` (`nodejs_active_handles{type}`), which stays.
 */
const MISNAMED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/**
 * prom-client's default metrics (`process_*`, `nodejs_*`: CPU, memory, event loop lag, GC, handles)
 * on `registry`, once: their standard names carry no `cachefleet_` prefix, so dashboards made for
 * any Node.js process work. A registry that has them already (the caller's own) is left as it is.
 */
export function registerProcessMetrics(registry: Registry): void {
  if (registry.getSingleMetric(DEFAULT_METRIC) !== undefined) return;
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
}
