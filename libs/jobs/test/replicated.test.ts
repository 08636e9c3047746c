/**
 * Issue 17: with QUEUE_WAIT_REPLICAS, an enqueue is acknowledged only once replicas have the job
 * (WAIT). A real redis-server without replicas cannot confirm it: the enqueue fails
 * E_JOB_QUEUE_UNAVAILABLE instead of being acknowledged and then lost in a failover. (The Sentinel
 * set of test/sentinel-system.test.ts enqueues with the default of 1 and succeeds.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RedisProcess, startRedis } from '../../../test/helpers/index.js';
import { JobClient, loadQueueConfig } from '../src/index.js';

let redis: RedisProcess | undefined;
const clients: JobClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await redis?.stop();
});

function client(waitReplicas: string): JobClient {
  if (!redis) throw new Error('no redis');
  const c = new JobClient(
    loadQueueConfig({
      QUEUE_REDIS_URL: redis.url,
      QUEUE_PREFIX: `rep${waitReplicas}`,
      QUEUE_WAIT_REPLICAS: waitReplicas,
    }),
  );
  clients.push(c);
  return c;
}

it('no replica to confirm the job: the enqueue is not acknowledged', async () => {
  const error = await client('1')
    .enqueue('invalidate', { scope: 'keys', namespace: 'product', keys: ['1'] })
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(error).toMatchObject({ code: 'E_JOB_QUEUE_UNAVAILABLE' });
});

it('without QUEUE_WAIT_REPLICAS (single mode default 0) the same enqueue is acknowledged', async () => {
  const r = await client('0').enqueue('invalidate', { scope: 'keys', namespace: 'product', keys: ['1'] });
  expect(r.id).toEqual(expect.any(String));
});
