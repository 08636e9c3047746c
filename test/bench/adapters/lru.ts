import { LRUCache } from 'lru-cache';
import { identity } from '../data.js';
import type { AdapterSpec, BenchValue } from '../types.js';

/** The L1 floor: what an in-process hit costs with nothing but the map lookup and the `await`. */
export const lruFloor: AdapterSpec = {
  name: 'lru-cache (bare get)',
  role: 'floor',
  tiers: ['tiered'],
  note: 'lru-cache 11, max 100k, no TTL check, returns the stored reference',
  async setup() {
    const lru = new LRUCache<string, BenchValue>({ max: 100_000 });
    return {
      unwrap: identity,
      get: (key) => lru.get(key),
      async set(key, value) {
        lru.set(key, value);
      },
      async close() {
        lru.clear();
      },
    };
  },
};
