/**
 * The queue gauges' workers per queue (`cachefleet_queue_workers`), on a real redis-server with a
 * real worker: the count comes from the queue Redis's CLIENT LIST; where an ACL refuses CLIENT LIST
 * the family has no series (not 0, which would read as "no worker") and the queue counts of the
 * same scrape still go out. The live /metrics of whole processes: test/metrics.test.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  type RedisProcess,
  startRedis,
  startTestRuntime,
  type TestRuntime,
  waitUntil,
} from '@cachefleet/test';
import { defineNamespace } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Definitions,
  JobClient,
  loadQueueConfig,
  QUEUE_NAMES,
  registerQueueMetrics,
} from '../src/index.js';

const TAG = randomBytes(3).toString('hex');
const PREFIX = `qm${TAG}`;
const PASSWORD = `qm-${TAG}-password`;
const item = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => ({ id }),
});
const definitions: Definitions = { namespaces: [item], critical: {}, close: async () => {} };

let redis: RedisProcess;
let worker: TestRuntime;
const clients: JobClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  worker = await startTestRuntime({
    redisUrl: redis.url,
    prefix: PREFIX,
    definitions,
    queues: [
      { queue: 'warm', concurrency: 2 },
      { queue: 'invalidate', concurrency: 1 },
    ],
  });
  // A user like the fleet's (deploy/redis/queue-users.acl) but refused CLIENT LIST.
  const admin = new Redis(redis.url);
  await admin.acl('SETUSER', 'nolist', 'on', `>${PASSWORD}`, `~${PREFIX}:*`, '+@all', '-client|list');
  admin.disconnect();
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await worker?.close();
  await redis?.stop();
});

function scraper(url: string) {
  const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: url, QUEUE_PREFIX: PREFIX }));
  clients.push(jobs);
  const registry = new Registry();
  const metrics = registerQueueMetrics(registry, jobs, { leaseMs: 60_000 });
  const series = async (name: string) =>
    (await registry.getSingleMetric(name)?.get())?.values.map((v) => ({ labels: v.labels, value: v.value }));
  return { metrics, series };
}

describe('cachefleet_queue_workers', () => {
  it('counts the BullMQ workers of each queue (one per queue a worker serves, whatever its concurrency)', async () => {
    const s = scraper(redis.url);
    // The worker's blocking connections name themselves once they are up: the first scrapes may be early.
    const workers = await waitUntil('both workers in CLIENT LIST', async (note) => {
      const counts = Object.fromEntries(
        (await s.series('cachefleet_queue_workers'))?.map((v) => [String(v.labels.queue), v.value]) ?? [],
      );
      note(JSON.stringify(counts));
      return counts.warm === 1 && counts.invalidate === 1 ? counts : undefined;
    });
    expect(workers).toEqual(
      Object.fromEntries(QUEUE_NAMES.map((q) => [q, q === 'warm' || q === 'invalidate' ? 1 : 0])),
    );
    expect(await s.series('cachefleet_queue_exporter_active')).toEqual([{ labels: {}, value: 1 }]);
    await s.metrics.release();
  });

  // Without the catch in workersOf (libs/jobs/src/metrics.ts), NOPERM failed the whole scrape:
  // this process exported neither the counts nor exporter_active 1.
  it('has no series where an ACL refuses CLIENT LIST, and the queue counts still go out', async () => {
    const url = new URL(redis.url);
    url.username = 'nolist';
    url.password = PASSWORD;
    const s = scraper(url.toString());
    // The lease was given up by the first scraper: this one exports.
    expect(await s.series('cachefleet_queue_exporter_active')).toEqual([{ labels: {}, value: 1 }]);
    expect(await s.series('cachefleet_queue_workers')).toEqual([]);
    const states = (await s.series('cachefleet_queue_jobs'))?.filter((v) => v.labels.queue === 'warm');
    expect(states?.map((v) => v.labels.state)).toContain('waiting');
    await s.metrics.release();
  });
});
