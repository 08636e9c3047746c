import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisDriver } from 'bentocache/drivers/redis';
import { identity } from '../data.js';
import type { AdapterSpec, BenchValue, Tier } from '../types.js';

interface Variant {
  readonly name: string;
  readonly note: string;
  readonly tiers: readonly Tier[];
  /** bentocache's default; needed for maxSize, and makes every L1 hit a JSON.parse. */
  readonly serializeL1: boolean;
  readonly autoPipelining: boolean;
}

function makeSpec(v: Variant): AdapterSpec {
  return {
    name: v.name,
    role: 'peer',
    tiers: v.tiers,
    note: v.note,
    async setup({ port, tier, prefix, load }) {
      const l2 = redisDriver({
        connection: { host: '127.0.0.1', port, ...(v.autoPipelining ? { enableAutoPipelining: true } : {}) },
      });
      const l1 = v.serializeL1
        ? memoryDriver({ maxSize: '100mb' })
        : memoryDriver({ maxItems: 100_000, serialize: false });
      const store =
        tier === 'l2-only' ? bentostore().useL2Layer(l2) : bentostore().useL1Layer(l1).useL2Layer(l2);
      const bento = new BentoCache({ default: 'cache', prefix, ttl: '1h', stores: { cache: store } });
      return {
        unwrap: identity,
        get: (key) => bento.getOrSet<BenchValue | undefined>({ key, factory: () => load(key) }),
        async set(key, value) {
          await bento.set({ key, value });
        },
        async close() {
          await bento.disconnectAll();
        },
      };
    },
  };
}

/** The configuration the brief prescribes and bentocache documents; the "vs bentocache" reference. */
export const bentocache = makeSpec({
  name: 'bentocache',
  note: 'bentocache 1.6.1: memoryDriver({maxSize:"100mb"}) (serialize:true, the default, so every L1 hit JSON.parses) + redisDriver({connection:{host,port}}) (ioredis defaults: no auto-pipelining); getOrSet; no bus; its lock is per process',
  tiers: ['tiered', 'l2-only'],
  serializeL1: true,
  autoPipelining: false,
});

/** Shows how much of the L1 gap is bentocache's decode-on-hit rather than its call path. */
export const bentocacheRawL1 = makeSpec({
  name: 'bentocache (L1 serialize:false)',
  note: 'as bentocache, but memoryDriver({maxItems:100k, serialize:false}): L1 hits return the stored reference',
  // Without an L1 this variant is the main row again.
  tiers: ['tiered'],
  serializeL1: false,
  autoPipelining: false,
});

/** The floor and the project both auto-pipeline; this row shows bentocache on the same footing. */
export const bentocacheAutoPipelined = makeSpec({
  name: 'bentocache (autopipelining)',
  note: 'as bentocache, but connection.enableAutoPipelining: true, as the ioredis floor and cachefleet use',
  tiers: ['l2-only'],
  serializeL1: true,
  autoPipelining: true,
});
