/**
 * Issue 17, part 3: after a failover or a dropped connection the bus's subscriber is often ready
 * before the cache's own client, through which the bus replays what it missed. The replay used to
 * be sent at once, failed ("Stream isn't writeable") and flushed the whole L1 for nothing. Real
 * Redis; pod A reaches it through a gate (test/fixtures/bus-gate.ts) that keeps A's cache
 * connection out while its bus connection comes back, the order seen in the failover runs.
 * The last test: a set Redis could not take is announced (as an invalidation) once it is replayed.
 */
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import { startBusGate } from '../../../test/fixtures/bus-gate.js';
import { busHead, delay, startRedis, waitUntil } from '../../../test/helpers/index.js';
import { type Cache, createCache, defineNamespace, TieredStore } from '../src/index.js';

const server = await startRedis();
const gate = await startBusGate(server.port);
const raw = new Redis(server.url);
const PREFIX = 'br:';
const caches: Cache[] = [];
afterAll(async () => {
  gate.open();
  await Promise.all(caches.map((c) => c.close()));
  raw.disconnect();
  await gate.close();
  await server.stop();
});

const items = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => ({ id }),
});

async function pod(podId: string, url: string, disconnectedTtlMs: number): Promise<Cache> {
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url },
    prefix: PREFIX,
    bus: { podId, disconnectedTtlMs },
  });
  await cache.start();
  cache.register(items);
  caches.push(cache);
  return cache;
}

function l1Holds(cache: Cache, id: string): boolean {
  if (!(cache.store instanceof TieredStore)) throw new Error('expected a tiered store');
  return cache.store.l1.peek(`item:v1:${id}`) !== undefined;
}

it('the subscriber back before the cache client: the replay waits for that client, and L1 is not flushed', async () => {
  const a = await pod('br-a', gate.url, 20_000);
  const b = await pod('br-b', server.url, 20_000);
  const busA = a.bus;
  if (busA === undefined) throw new Error('no bus');
  for (const id of ['1', '2', '3']) expect((await a.get(items, id)).ok).toBe(true);
  expect(l1Holds(a, '1')).toBe(true);

  // A's cache connection is kept out; its bus connection drops and comes back at once.
  gate.block('refuse', 'cachefleet:cache:br-a');
  expect(gate.cut('cachefleet:cache:br-a')).toBe(1);
  expect(gate.cut('cachefleet:bus:br-a')).toBe(1);
  await waitUntil('A’s bus connection to be back', async () =>
    gate.live('cachefleet:bus:br-a') === 1 ? true : undefined,
  );
  // Meanwhile another pod invalidates: A has to catch up on it.
  expect((await b.delete(items, '2')).ok).toBe(true);
  await delay(500);
  expect(busA.stats.flushes).toBe(0);
  expect(busA.connected).toBe(false);

  gate.open();
  await waitUntil('A to catch up', async () => (busA.connected ? true : undefined), { timeoutMs: 10_000 });
  expect(busA.lastId).toBe(await busHead(raw, PREFIX));
  expect(busA.stats.flushes).toBe(0);
  // The invalidation reached A; the rest of its L1 is still there.
  expect(l1Holds(a, '2')).toBe(false);
  expect(l1Holds(a, '1')).toBe(true);
  expect(l1Holds(a, '3')).toBe(true);
});

it('a replay that cannot be made within disconnectedTtlMs still flushes L1', async () => {
  const a = await pod('br-c', gate.url, 1_000);
  const busA = a.bus;
  if (busA === undefined) throw new Error('no bus');
  expect((await a.get(items, '7')).ok).toBe(true);
  gate.block('refuse', 'cachefleet:cache:br-c');
  try {
    expect(gate.cut('cachefleet:cache:br-c')).toBe(1);
    expect(gate.cut('cachefleet:bus:br-c')).toBe(1);
    await waitUntil('L1 flushed', async () => (busA.stats.flushes > 0 ? true : undefined), {
      timeoutMs: 10_000,
    });
    expect(l1Holds(a, '7')).toBe(false);
  } finally {
    gate.open();
  }
});

it('a set Redis could not take reports the fault, and other pods drop their copy once it is replayed', async () => {
  const a = await pod('br-d', gate.url, 20_000);
  const b = await pod('br-e', server.url, 20_000);
  expect((await b.get(items, 's1')).ok).toBe(true);
  expect(l1Holds(b, 's1')).toBe(true);
  gate.block('refuse', 'cachefleet:cache:br-d');
  try {
    expect(gate.cut('cachefleet:cache:br-d')).toBe(1);
    const w = await a.set(items, 's1', { id: 's1' });
    expect(w.ok).toBe(false);
    // While A cannot reach Redis, B cannot know.
    await delay(300);
    expect(l1Holds(b, 's1')).toBe(true);
  } finally {
    gate.open();
  }
  await waitUntil('B dropped its copy', async () => (l1Holds(b, 's1') ? undefined : true), {
    timeoutMs: 10_000,
  });
});
