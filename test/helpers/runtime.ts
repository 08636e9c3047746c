import {
  type Definitions,
  FleetRuntime,
  JobClient,
  loadQueueConfig,
  type QueueConcurrency,
} from '@cachefleet/jobs';
import { type Cache, createCache } from '@cachefleet/tiered-cache';
import { pino } from 'pino';
import { Registry } from 'prom-client';

/**
 * A worker inside the test process: an L2-only cache under `prefix:`, the queues under `prefix`, a FleetRuntime serving
 * `queues` over `definitions`. Tests that need real worker processes use test/fixtures instead.
 */
export interface TestRuntime {
  readonly cache: Cache;
  readonly jobs: JobClient;
  readonly runtime: FleetRuntime;
  close(): Promise<void>;
}

export async function startTestRuntime(options: {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly definitions: Definitions;
  readonly queues: readonly QueueConcurrency[];
}): Promise<TestRuntime> {
  const { redisUrl, prefix, definitions, queues } = options;
  const cache = createCache({
    impl: 'redis',
    redis: { mode: 'single', url: redisUrl },
    prefix: `${prefix}:`,
  });
  cache.register(...definitions.namespaces);
  await cache.start();
  const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redisUrl, QUEUE_PREFIX: prefix }));
  const runtime = new FleetRuntime(
    { cache, jobs, definitions, logger: pino({ level: 'silent' }), metrics: new Registry() },
    { queues, lockDurationMs: 30_000, stalledIntervalMs: 30_000, shutdownMs: 5_000 },
  );
  runtime.start();
  return {
    cache,
    jobs,
    runtime,
    close: async () => {
      await runtime.close();
      await jobs.close();
      await cache.close();
    },
  };
}
