import { createKeyv as createRedisKeyv } from '@keyv/redis';
import { createCache } from 'cache-manager';
import { createKeyv as createMemoryKeyv } from 'cacheable';
import { identity } from '../data.js';
import type { AdapterSpec, BenchValue } from '../types.js';

const TTL_MS = 3_600_000;

export const cacheManager: AdapterSpec = {
  name: 'cache-manager',
  role: 'peer',
  tiers: ['tiered', 'l2-only'],
  note: 'cache-manager 7.2.9: stores [cacheable createKeyv (CacheableMemory, useClone:true default, so every L1 hit structuredClones), @keyv/redis createKeyv (node-redis 5)]; wrap(); coalescing is per process',
  async setup({ port, tier, prefix, load }) {
    const l2 = createRedisKeyv(`redis://127.0.0.1:${port}`, { namespace: prefix });
    const stores = tier === 'tiered' ? [createMemoryKeyv({ lruSize: 100_000, ttl: TTL_MS }), l2] : [l2];
    const cache = createCache({ stores, ttl: TTL_MS });
    // Connect before timing starts; otherwise the first measured call pays the handshake.
    await l2.get('__warmup__');
    return {
      unwrap: identity,
      // wrap, not get: get does not copy an L2 hit into L1, and wrap is the read-through call.
      get: (key) => cache.wrap<BenchValue | undefined>(key, () => load(key)),
      async set(key, value) {
        await cache.set(key, value);
      },
      async close() {
        await cache.disconnect();
      },
    };
  },
};
