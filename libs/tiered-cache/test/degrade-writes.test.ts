import { liveValue, startRedis, waitUntil } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import { createCache, defineNamespace } from '../src/index.js';

// appendonly so the old value survives the kill: the test is about what happens to it afterwards.
const server = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
afterAll(() => server.stop());

const prices = defineNamespace({
  name: 'price',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.number(),
  load: async () => 100,
});

it('a set made while Redis is down reports the fault and leaves no stale value in L2 after recovery', async () => {
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url: server.url },
    prefix: 'dw:',
    breaker: { cooldownMs: 100 },
  });
  await cache.start();
  const raw = new Redis(server.url, { lazyConnect: true });
  raw.on('error', () => {});
  try {
    expect(await cache.get(prices, 'sku1')).toEqual({ ok: true, value: 100 });
    await server.kill();

    // The database now says 120; the cache cannot reach Redis to replace 100.
    const w = await cache.set(prices, 'sku1', 120);
    expect(w.ok).toBe(false);
    if (!w.ok) expect(['E_CACHE_L2_UNAVAILABLE', 'E_CACHE_L2_FAILED']).toContain(w.error.code);
    // Reads never fail meanwhile.
    expect((await cache.get(prices, 'sku1')).ok).toBe(true);

    await server.restart();
    await raw.connect();
    await waitUntil('the stale L2 entry is invalidated on reconnect', async () =>
      (await liveValue(raw, 'dw:price:v1:sku1')) === undefined ? true : undefined,
    );
    expect(cache.status().errors).toBeGreaterThan(0);
  } finally {
    raw.disconnect();
    await cache.close();
  }
});
