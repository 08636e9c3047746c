import { createRedisClient, type RedisConnection } from '@cachefleet/redis';
import {
  busHead,
  liveValue,
  type RedisCluster,
  type SentinelSet,
  startCluster,
  startSentinelSet,
  waitUntil,
} from '@cachefleet/test';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Cache,
  createCache,
  defineNamespace,
  MemoryStore,
  RedisStore,
  TieredStore,
} from '../src/index.js';
import { describeStoreConformance } from './conformance.js';

/** DESIGN invariant 6: the library works with Redis single node (other files), Sentinel and Cluster. */

let seq = 0;
function redisStore(conn: RedisConnection, prefix: string): RedisStore {
  return new RedisStore({
    client: createRedisClient(redisConnection(conn), { role: 'cache' }),
    prefix,
    defaultTtlSeconds: 60,
    compressionThreshold: 1024,
    connectTimeoutMs: 5000,
    commandTimeoutMs: 500,
    breaker: { failureThreshold: 5, cooldownMs: 300 },
    maxPendingDeletes: 100,
    tombstoneTtlMs: 60_000,
  });
}
function redisConnection(conn: RedisConnection) {
  return conn.mode === 'sentinel' ? { ...conn, db: conn.db ?? 0 } : conn;
}

const memory = () => new MemoryStore({ maxEntries: 1000, maxBytes: 1 << 24, defaultTtlSeconds: 60 });

let loads = 0;
const items = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string(), n: z.number() }),
  load: async (id) => {
    loads++;
    return { id, n: id.length };
  },
  loadMany: async (ids) => {
    loads++;
    return new Map(ids.map((id) => [id, { id, n: id.length }]));
  },
  tags: (v) => [`len:${v.n}`],
});

describe('Sentinel (1 master, 2 replicas, 3 sentinels)', () => {
  let set: SentinelSet;
  let conn: RedisConnection;
  beforeAll(async () => {
    set = await startSentinelSet();
    conn = { mode: 'sentinel', sentinels: [...set.sentinels], name: set.name };
  }, 60_000);
  afterAll(() => set?.stop());

  describeStoreConformance('redis (sentinel)', async () => {
    const store = redisStore(conn, `sconf${++seq}:`);
    return { store, close: () => store.close() };
  });
  describeStoreConformance('tiered (sentinel)', async () => {
    const store = new TieredStore(memory(), redisStore(conn, `sconf${++seq}:`), 60);
    return { store, close: () => store.close() };
  });

  it('keeps serving reads through a failover and writes to the new master afterwards', async () => {
    const cache = createCache({ impl: 'tiered', redis: conn, prefix: 'sfo:', breaker: { cooldownMs: 200 } });
    await cache.start();
    const cold = createCache({ impl: 'redis', redis: conn, prefix: 'sfo:' });
    await cold.start();
    try {
      expect((await cache.get(items, 'before')).ok).toBe(true);
      const oldMaster = await set.currentMaster();
      let reads = 0;
      let failures = 0;
      let running = true;
      const loop = (async () => {
        while (running) {
          const r = await cache.get(items, `k${reads % 50}`);
          reads++;
          if (!r.ok) failures++;
          await new Promise((res) => setImmediate(res));
        }
      })();
      const newMaster = await set.failover();
      expect(newMaster.port).not.toBe(oldMaster.port);
      // Until Sentinel demotes it, the old master still takes writes: wait until ours land on the
      // new one (ioredis follows +switch-master through failoverDetector).
      const direct = new Redis({ host: newMaster.host, port: newMaster.port });
      try {
        await waitUntil(
          'a write after failover reaches the new master',
          async () => {
            const w = await cache.set(items, 'after', { id: 'after', n: 5 });
            return w.ok && (await direct.get('sfo:item:v1:after')) !== null ? true : undefined;
          },
          { timeoutMs: 20_000 },
        );
        expect(JSON.parse((await direct.get('sfo:item:v1:after')) ?? 'null')).toEqual({ id: 'after', n: 5 });
      } finally {
        direct.disconnect();
      }
      running = false;
      await loop;
      expect(failures).toBe(0);
      expect(reads).toBeGreaterThan(0);
      await waitUntil(
        'a cold pod reads the entry through the new master',
        async () => {
          const r = await cold.get(items, 'after');
          return r.ok && r.value?.n === 5 && cold.stats()[0]?.l2.hits === 1 ? true : undefined;
        },
        { timeoutMs: 10_000 },
      );
    } finally {
      await cache.close();
      await cold.close();
    }
  }, 60_000);
});

describe('Cluster (3 masters)', () => {
  let cluster: RedisCluster;
  let conn: RedisConnection;
  const caches: Cache[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
    conn = { mode: 'cluster', nodes: [...cluster.nodes] };
  }, 60_000);
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    await cluster?.stop();
  });

  describeStoreConformance('redis (cluster)', async () => {
    const store = redisStore(conn, `cconf${++seq}:`);
    return { store, close: () => store.close() };
  });
  describeStoreConformance('tiered (cluster)', async () => {
    const store = new TieredStore(memory(), redisStore(conn, `cconf${++seq}:`), 60);
    return { store, close: () => store.close() };
  });

  async function clusterKeys(match: string): Promise<string[]> {
    const client = new Cluster([...cluster.nodes]);
    await new Promise((resolve) => client.once('ready', resolve));
    const found: string[] = [];
    for (const node of client.nodes('master')) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
        cursor = next;
        found.push(...keys);
      } while (cursor !== '0');
    }
    client.disconnect();
    return found;
  }

  it('reads through, batches over slots, and invalidates tags and namespaces on every master', async () => {
    const cache = createCache({ impl: 'tiered', redis: conn, prefix: 'cl:' });
    await cache.start();
    caches.push(cache);
    const ids = Array.from({ length: 200 }, (_, i) => `id-${i}`);
    loads = 0;
    const r = await cache.getMany(items, ids);
    expect(r.ok).toBe(true);
    expect(loads).toBe(1);
    const keys = await clusterKeys('cl:item:v1:*');
    expect(keys).toHaveLength(200);

    const cold = createCache({ impl: 'tiered', redis: conn, prefix: 'cl:' });
    await cold.start();
    caches.push(cold);
    const again = await cold.getMany(items, ids);
    expect(again.ok && again.value.every((v, i) => v?.id === ids[i])).toBe(true);
    expect(loads).toBe(1);
    expect(cold.stats()[0]?.l2.hits).toBe(200);

    // ids 'id-10'..'id-99' have length 5: one tag across many slots.
    const tagged = await cache.invalidateTags(items, ['len:5']);
    expect(tagged).toEqual({ ok: true, value: 90 });
    const client = new Cluster([...cluster.nodes]);
    try {
      const live = await Promise.all(ids.map((id) => liveValue(client, `cl:item:v1:${id}`)));
      expect(live.filter((v) => v !== undefined)).toHaveLength(110);
    } finally {
      client.disconnect();
    }

    /** Until the other pod has applied the newest event (pub/sub through the cluster). */
    const heardByCold = async (what: string) => {
      const head = new Cluster([...cluster.nodes]);
      try {
        const id = await busHead(head, 'cl:');
        await waitUntil(`${what} reaches the other pod`, async () =>
          cold.bus?.lastId === id ? true : undefined,
        );
      } finally {
        head.disconnect();
      }
    };
    expect(await cache.invalidateNamespace(items)).toEqual({ ok: true, value: 1 });
    await heardByCold('the namespace invalidation');
    // A delete of ids: on a Cluster its tombstones and its event are two scripts (two slots), and
    // the event still goes out.
    expect((await cache.delete(items, 'id-3')).ok).toBe(true);
    await heardByCold('the delete');
    loads = 0;
    const reloaded = await cold.getMany(items, ids.slice(0, 20));
    expect(reloaded.ok).toBe(true);
    expect(loads).toBe(1);
    expect(await clusterKeys('cl:item:v1:g1:*')).toHaveLength(20);
  });

  it('a migration step overtaken by a walk retracts what it wrote so that doing it again writes it', async () => {
    const store = redisStore(conn, 'clmig:');
    await store.start();
    const client = new Cluster([...cluster.nodes]);
    try {
      const was = JSON.stringify({ id: 'a', n: 1 });
      const wire = JSON.stringify({ id: 'a', n: 2 });
      await client.set('clmig:item:v1:a', was, 'PX', 60_000);
      const pairs = [
        { oldKey: 'clmig:item:v1:a', newKey: 'clmig:item:v2:a', was, wire, ttlMs: 60_000, tags: undefined },
      ];
      // The step read the walk counter at 5; it is 0 now: a walk moved it (here: never did), so
      // the write was written (slots differ on a Cluster), then taken back.
      expect(await store.bulk.migrateWrite('item', pairs, 5)).toEqual({
        ok: true,
        value: { written: 0, changed: 0, present: 0, walked: true },
      });
      expect(await client.get('clmig:item:v2:a')).toBeNull();
      // Done again with the counter as it is: written, not mistaken for a vN+1 pod's entry.
      expect(await store.bulk.migrateWrite('item', pairs, 0)).toEqual({
        ok: true,
        value: { written: 1, changed: 0, present: 0, walked: false },
      });
      expect(await client.get('clmig:item:v2:a')).toBe(wire);
    } finally {
      client.disconnect();
      await store.close();
    }
  });
});
