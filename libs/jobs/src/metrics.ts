import { Gauge, type Registry } from 'prom-client';
import type { QueueName } from './catalogue.js';
import type { JobClient } from './client.js';
import { queueDown, withDeadline } from './deadline.js';

/** Longest a scrape waits for the queue counts, ms. */
const SCRAPE_BUDGET_MS = 1_000;

/**
 * `cachefleet_queue_jobs{queue,state}`: jobs per state, read from the queue Redis when Prometheus
 * scrapes (no polling in between). Workers and API pods both expose it.
 */
export function registerQueueMetrics(
  registry: Registry,
  jobs: JobClient,
  queues: readonly QueueName[],
): void {
  new Gauge({
    name: 'cachefleet_queue_jobs',
    help: 'Jobs in each queue by state (read from the queue Redis at scrape time)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    collect: async function (this: Gauge<'queue' | 'state'>) {
      this.reset();
      // The queue connection waits out outages (BullMQ's rule): a scrape must not. Without an
      // answer in time the gauge is left empty and the rest of /metrics still goes out.
      if (queueDown(jobs.connection.status)) return;
      await withDeadline(
        Promise.all(
          queues.map(async (queue) => {
            const counts = await jobs.queue(queue).getJobCounts();
            for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
          }),
        ),
        SCRAPE_BUDGET_MS,
      ).catch(() => undefined);
    },
  });
}
