/**
 * Issue 9, invariant 1 ("0 user-visible errors" through a failover): with `retryMs`, an enqueue the
 * queue Redis cannot take or confirm — down, a replica that cannot take writes, no replica to
 * confirm — is made again under the same job id until it is acknowledged, instead of failing at
 * once. Every case runs on real redis-server processes; each test's bound (vitest's time-out) is
 * well below its `retryMs`, so an enqueue that kept retrying a final error would fail the test.
 */

import { afterAll, afterEach, expect, it } from 'vitest';
import { delay, type RedisProcess, rawCommand, startRedis } from '../../../test/helpers/index.js';
import { JobClient, loadQueueConfig } from '../src/index.js';

const servers: RedisProcess[] = [];
const clients: JobClient[] = [];

async function server(args: readonly string[] = []): Promise<RedisProcess> {
  const r = await startRedis({ args });
  servers.push(r);
  return r;
}

function client(url: string, prefix: string, env: Record<string, string> = {}): JobClient {
  const c = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: url, QUEUE_PREFIX: prefix, ...env }));
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.stop()));
});

const payload = (id: string) => ({ scope: 'keys' as const, namespace: 'product', keys: [id] });

it('the queue Redis down: the enqueue waits for it and is acknowledged once it is back', async () => {
  const redis = await server();
  const c = client(redis.url, 'down');
  await c.enqueue('invalidate', payload('1')); // connected once
  await redis.kill();
  let settled = false;
  const enqueued = c.enqueue('invalidate', payload('2'), { retryMs: 30_000 }).finally(() => {
    settled = true;
  });
  await delay(1_000);
  expect(settled).toBe(false);
  await redis.restart(); // an empty server: no trace of the first job
  const job = await enqueued;
  expect(job.deduplicated).toBe(false);
  expect(await c.queue('invalidate').getJobState(job.id)).toBe('waiting');
  // Without retryMs the same call fails while Redis is down (the API then answers 503).
  await redis.kill();
  const refused = await c.enqueue('invalidate', payload('3'), { retryMs: 1, attemptMs: 200 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(refused).toMatchObject({ code: 'E_JOB_QUEUE_UNAVAILABLE' });
  await redis.restart();
}, 20_000);

/**
 * An attempt that was added but not confirmed (no replica) is made again under the same id: the
 * retry finds the job it added, so one job is acknowledged, not two (a new id per attempt would be
 * answered as "deduplicated" by the first, still pending, one).
 */
it('not confirmed by a replica: retried under one id until a replica attaches; one job', async () => {
  const master = await server();
  const c = client(master.url, 'unconfirmed', { QUEUE_WAIT_REPLICAS: '1' });
  let settled = false;
  const enqueued = c.enqueue('invalidate', payload('7'), { retryMs: 30_000 }).finally(() => {
    settled = true;
  });
  await delay(1_500); // past the first attempt's 1 s WAIT
  expect(settled).toBe(false);
  await server(['--replicaof', '127.0.0.1', String(master.port)]);
  const job = await enqueued;
  expect(job.deduplicated).toBe(false);
  const counts = await c.queue('invalidate').getJobCounts('waiting', 'active', 'completed', 'failed');
  expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1);
}, 20_000);

it('a server that cannot take writes yet (READONLY, a failover under way): retried until it is promoted', async () => {
  const master = await server();
  const replica = await server(['--replicaof', '127.0.0.1', String(master.port)]);
  const c = client(replica.url, 'readonly');
  let settled = false;
  const enqueued = c.enqueue('invalidate', payload('8'), { retryMs: 30_000 }).finally(() => {
    settled = true;
  });
  await delay(1_000);
  expect(settled).toBe(false);
  await rawCommand(replica.port, ['REPLICAOF', 'NO', 'ONE']);
  const job = await enqueued;
  expect(await c.queue('invalidate').getJobState(job.id)).toBe('waiting');
}, 20_000);

it('an error retrying cannot mend (NOPERM) ends the enqueue at once, as itself', async () => {
  const redis = await server();
  // May connect and read, but not run scripts: BullMQ adds a job with one.
  await rawCommand(redis.port, [
    'ACL',
    'SETUSER',
    'noscripts',
    'on',
    '>noscripts-pass',
    '~*',
    '&*',
    '+@all',
    '-@scripting',
  ]);
  const c = client(`redis://noscripts:noscripts-pass@127.0.0.1:${redis.port}`, 'noperm');
  const error = await c.enqueue('invalidate', payload('9'), { retryMs: 60_000 }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(Error);
  expect((error as Error).message).toMatch(/NOPERM/);
}, 20_000);
