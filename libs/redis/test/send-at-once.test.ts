/**
 * `sendAtOnce` (cache role): the commands and scripts named are written to the socket when called,
 * not held in ioredis's auto-pipeline until `setImmediate`. The cache names its delete script
 * (tombstones + event): every pod's delivery of an invalidation waits on it (docs/benchmarks.md,
 * "The pod's and the publisher's CPU per event, cut"). Real redis-server.
 */
import { afterAll, expect, it } from 'vitest';
import { startRedis } from '../../../test/helpers/index.js';
import { createRedisClient, type RedisClient } from '../src/index.js';

const server = await startRedis();
afterAll(() => server.stop());

interface Probe {
  probe(): Promise<string>;
}

async function client(sendAtOnce?: readonly string[]): Promise<RedisClient & Probe> {
  const c = createRedisClient(
    { mode: 'single', url: server.url },
    { role: 'cache', ...(sendAtOnce !== undefined ? { sendAtOnce } : {}) },
  );
  await c.connect();
  c.defineCommand('probe', { numberOfKeys: 0, lua: "return 'ok'" });
  return c as RedisClient & Probe;
}

it('writes the named script at once; others still wait in the auto-pipeline', async () => {
  const named = await client(['probe']);
  const plain = await client();
  try {
    const a = named.probe();
    // Only what is queued for the next setImmediate counts here.
    expect('autoPipelineQueueSize' in named && named.autoPipelineQueueSize).toBe(0);
    const b = named.ping();
    expect('autoPipelineQueueSize' in named && named.autoPipelineQueueSize).toBe(1);
    const c = plain.probe();
    expect('autoPipelineQueueSize' in plain && plain.autoPipelineQueueSize).toBe(1);
    expect(await Promise.all([a, b, c])).toEqual(['ok', 'PONG', 'ok']);
  } finally {
    named.disconnect();
    plain.disconnect();
  }
});
