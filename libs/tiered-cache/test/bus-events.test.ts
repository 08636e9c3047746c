import { cacheKeys } from '@cachefleet/redis';
import { busHead, startRedis, waitUntil } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Cache,
  type CacheEvent,
  cacheEventSchema,
  createCache,
  defineNamespace,
  TieredStore,
} from '../src/index.js';

const server = await startRedis();
const raw = new Redis(server.url);
const PREFIX = 'ev:';
const caches: Cache[] = [];
afterAll(async () => {
  await Promise.all(caches.map((c) => c.close()));
  raw.disconnect();
  await server.stop();
});

let loads = 0;
const items = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => {
    loads++;
    return { id };
  },
});

async function pod(): Promise<Cache> {
  const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix: PREFIX });
  await cache.start();
  caches.push(cache);
  return cache;
}

/** Until `cache` has applied everything published so far. */
async function caughtUp(cache: Cache): Promise<void> {
  const head = await busHead(raw, PREFIX);
  await waitUntil('the pod applied the newest event', async () =>
    cache.bus?.lastId === head ? true : undefined,
  );
}

it('prewarm: every pod that registered the namespace copies the ids from L2 into its L1, without loading', async () => {
  const [a, b, stranger] = [await pod(), await pod(), await pod()];
  b.register(items);
  await a.getMany(items, ['1', '2', '3']);
  loads = 0;
  expect((await a.prewarm(items, ['1', '2'])).ok).toBe(true);
  await caughtUp(b);
  const l1 = (cache: Cache) => {
    if (!(cache.store instanceof TieredStore)) throw new Error('expected a tiered store');
    return cache.store.l1;
  };
  // Peek, not get: a get would fill L1 from L2 by itself.
  await waitUntil('b copied the prewarmed ids into L1', async () =>
    l1(b).peek('item:v1:1') && l1(b).peek('item:v1:2') ? true : undefined,
  );
  expect(l1(b).peek('item:v1:3')).toBeUndefined();
  await b.get(items, '1');
  await b.get(items, '2');
  expect(b.stats()[0]).toMatchObject({ l1: { hits: 2 }, l2: { hits: 0 }, loads: 0 });
  expect(loads).toBe(0);
  // A pod that never declared the namespace cannot place the keys (no version, no generation).
  await caughtUp(stranger);
  expect(l1(stranger).peek('item:v1:1')).toBeUndefined();
});

it('config events reach the other pods’ listeners, not the publisher’s', async () => {
  const [a, b] = [await pod(), await pod()];
  const seenByA: CacheEvent[] = [];
  const seenByB: CacheEvent[] = [];
  a.onEvent((e) => seenByA.push(e));
  b.onEvent((e) => seenByB.push(e));
  expect((await a.publishConfig('item', { l1TtlSeconds: 600, evict: true })).ok).toBe(true);
  await caughtUp(b);
  await caughtUp(a);
  expect(seenByB).toEqual([
    expect.objectContaining({
      event_type: 'config',
      namespace: 'item',
      source_pod: a.podId,
      settings: { l1TtlSeconds: 600, evict: true },
    }),
  ]);
  expect(seenByA).toEqual([]);
});

it('an invalid event is refused with E_CACHE_INVALID_EVENT and never reaches the stream', async () => {
  const a = await pod();
  const before = await busHead(raw, PREFIX);
  const r = await a.publishConfig('Not A Namespace', { x: 1 });
  expect(!r.ok && r.error.code).toBe('E_CACHE_INVALID_EVENT');
  expect(await busHead(raw, PREFIX)).toBe(before);
  // An invalidation names exactly one of keys, key_pattern, tags.
  const both = cacheEventSchema.safeParse({
    event_type: 'invalidate',
    namespace: 'item',
    timestamp: 1,
    source_pod: 'p',
    keys: ['1'],
    tags: ['t'],
  });
  expect(both.success).toBe(false);
});

it('a delete of ids tombstones them and publishes its event in one script; a subscriber that hears it finds the tombstones', async () => {
  const [a] = [await pod()];
  await a.getMany(items, ['x', 'y']);
  const monitor = await raw.monitor();
  const sub = new Redis(server.url);
  const commands: string[][] = [];
  const seen: (string | null)[] = [];
  try {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase().startsWith('eval')) commands.push(args);
    });
    await sub.subscribe(cacheKeys(PREFIX).busChannel);
    const heard = new Promise<void>((resolve) => {
      sub.on('message', async () => {
        seen.push(await raw.get(`${PREFIX}item:v1:x`), await raw.get(`${PREFIX}item:v1:y`));
        resolve();
      });
    });
    expect(await a.delete(items, 'x', 'y')).toEqual({ ok: true, value: 2 });
    await heard;
    await waitUntil('MONITOR shows the script', async () => (commands.length > 0 ? true : undefined));
  } finally {
    sub.disconnect();
    monitor.disconnect();
  }
  // One script call: the stream and both entries are its keys (not a tombstone script, then a publish).
  expect(commands).toHaveLength(1);
  expect(commands[0]?.slice(2, 6)).toEqual([
    '3',
    cacheKeys(PREFIX).bus,
    `${PREFIX}item:v1:x`,
    `${PREFIX}item:v1:y`,
  ]);
  expect(seen.every((v) => v?.startsWith('~t'))).toBe(true);
});

it('the publishing lines of invalidate-publish-n.lua are bus-publish-1.lua’s', async () => {
  const { readFile } = await import('node:fs/promises');
  const src = (path: string) => readFile(new URL(`../src/${path}`, import.meta.url), 'utf8');
  const body = (lua: string) =>
    lua
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('--'))
      .slice(-6);
  const publish = body(await src('bus/bus-publish-1.lua'));
  const both = body(await src('drivers/redis/scripts/invalidate-publish-n.lua'));
  expect(both.slice(0, 5)).toEqual(publish.slice(0, 5));
  expect(publish[5]).toBe('return id');
  expect(both[5]).toBe('return {replaced, id}');
});
