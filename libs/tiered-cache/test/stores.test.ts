import { createRedisClient } from '@cachefleet/redis';
import { startRedis } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { MemoryStore, NullStore, RedisStore, TieredStore } from '../src/index.js';
import { describeStoreConformance } from './conformance.js';

const server = await startRedis();
let seq = 0;

function redisStore(prefix: string): RedisStore {
  return new RedisStore({
    client: createRedisClient({ mode: 'single', url: server.url }, { role: 'cache' }),
    prefix,
    defaultTtlSeconds: 60,
    compressionThreshold: 1024,
    connectTimeoutMs: 2000,
    commandTimeoutMs: 500,
    breaker: { failureThreshold: 5, cooldownMs: 500 },
    maxPendingDeletes: 100,
    tombstoneTtlMs: 60_000,
  });
}

/** A key under another prefix, to prove clear() is scoped. */
async function foreign(): Promise<() => Promise<boolean>> {
  const raw = new Redis(server.url);
  await raw.set('someone-else:key', 'keep');
  return async () => {
    const kept = (await raw.get('someone-else:key')) === 'keep';
    raw.disconnect();
    return kept;
  };
}

const memory = () => new MemoryStore({ maxEntries: 1000, maxBytes: 1 << 24, defaultTtlSeconds: 60 });

describeStoreConformance('null', async () => ({ store: new NullStore(), close: async () => {} }), {
  caches: false,
});
describeStoreConformance('memory', async () => {
  const store = memory();
  return { store, close: () => store.close() };
});
describeStoreConformance('redis (single node)', async () => {
  const store = redisStore(`conf${++seq}:`);
  return { store, plantForeignKey: foreign, close: () => store.close() };
});
describeStoreConformance('tiered (memory + redis)', async () => {
  const store = new TieredStore(memory(), redisStore(`conf${++seq}:`), 60);
  return { store, plantForeignKey: foreign, close: () => store.close() };
});

afterAll(() => server.stop());
