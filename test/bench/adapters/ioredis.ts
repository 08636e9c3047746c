import { Redis } from 'ioredis';
import { identity } from '../data.js';
import type { AdapterSpec } from '../types.js';

/** The L2 floor: one round trip and one JSON.parse, with nothing else a cache adds on top. */
export const ioredisFloor: AdapterSpec = {
  name: 'ioredis GET + JSON.parse',
  role: 'floor',
  tiers: ['l2-only'],
  note: 'ioredis 5, enableAutoPipelining: true, one connection',
  async setup({ port, prefix }) {
    const redis = new Redis({ host: '127.0.0.1', port, enableAutoPipelining: true, lazyConnect: true });
    await redis.connect();
    return {
      unwrap: identity,
      async get(key) {
        const raw = await redis.get(prefix + key);
        return raw === null ? undefined : (JSON.parse(raw) as unknown);
      },
      async set(key, value) {
        await redis.set(prefix + key, JSON.stringify(value));
      },
      async close() {
        await redis.quit();
      },
    };
  },
};
