import { cachesOn, countKeys, isTombstoned, liveValue, startRedis } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Cache, type CacheOptions, createCache, defineNamespace, type Namespace } from '../src/index.js';

const server = await startRedis();
const raw = new Redis(server.url);
afterAll(async () => {
  raw.disconnect();
  await server.stop();
});

const Product = z.object({ id: z.string(), name: z.string(), price: z.number(), category: z.string() });
type Product = z.infer<typeof Product>;

/** A tiny source of truth with call counters, so tests see exactly what reached "the database". */
function productSource(name = 'product') {
  const rows = new Map<string, Product>();
  for (let i = 0; i < 50; i++)
    rows.set(String(i), { id: String(i), name: `p${i}`, price: i, category: `c${i % 3}` });
  const calls = { load: 0, loadMany: 0, ids: [] as string[] };
  const ns = defineNamespace({
    name,
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: Product,
    load: async (id) => {
      calls.load++;
      calls.ids.push(id);
      await new Promise((r) => setTimeout(r, 5));
      return rows.get(id);
    },
    loadMany: async (ids) => {
      calls.loadMany++;
      calls.ids.push(...ids);
      return new Map(ids.flatMap((id) => (rows.has(id) ? [[id, rows.get(id) as Product] as const] : [])));
    },
    tags: (p) => [`category:${p.category}`],
  });
  return { ns, rows, calls };
}

let seq = 0;
const caches = cachesOn(server.url);
const newCache = (extra: Partial<CacheOptions> = {}, prefix = `rt${++seq}:`): Promise<Cache> =>
  caches.open(prefix, extra);
afterAll(() => caches.closeAll());

describe('read-through get', () => {
  it('loads once, writes L2 with the namespace TTL, then serves L1, then L2 for a cold pod', async () => {
    const { ns, calls } = productSource();
    const pod1 = await newCache({}, 'rt-a:');
    const first = await pod1.get(ns, '7');
    expect(first).toEqual({ ok: true, value: { id: '7', name: 'p7', price: 7, category: 'c1' } });
    expect(calls.load).toBe(1);
    const pttl = await raw.pttl('rt-a:product:v1:7');
    expect(pttl).toBeGreaterThan(590_000);
    expect(pttl).toBeLessThanOrEqual(600_000);

    expect(await pod1.get(ns, '7')).toEqual(first);
    expect(calls.load).toBe(1);
    const [s1] = pod1.stats();
    expect(s1).toMatchObject({ namespace: 'product', l1: { hits: 1 }, loads: 1 });

    const pod2 = await newCache({}, 'rt-a:');
    expect(await pod2.get(ns, '7')).toEqual(first);
    expect(calls.load).toBe(1);
    expect(pod2.stats()[0]).toMatchObject({
      l1: { hits: 0, misses: 1 },
      l2: { hits: 1, misses: 0 },
      loads: 0,
    });
  });

  it('coalesces concurrent misses of one key in a process into one loader call', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache();
    const results = await Promise.all(Array.from({ length: 200 }, () => cache.get(ns, '3')));
    expect(calls.load).toBe(1);
    for (const r of results) expect(r).toEqual({ ok: true, value: expect.objectContaining({ id: '3' }) });
    // Joiners wait on the in-process promise, not on the Redis lock.
    expect(await cache.metrics.getSingleMetricAsString('cachefleet_cache_lock_waits_total')).not.toMatch(
      /namespace="product"} [1-9]/,
    );
  });

  it('coalesces without Redis too (memory impl): single-flight alone keeps it to one load', async () => {
    const { ns, calls } = productSource();
    const cache = createCache({ impl: 'memory' });
    await cache.start();
    caches.track(cache);
    await Promise.all(Array.from({ length: 100 }, () => cache.get(ns, '4')));
    expect(calls.load).toBe(1);
    expect(cache.status()).toMatchObject({ implName: 'memory', hits: 0, misses: 100 });
  });

  it('returns undefined for ids the source does not have, without caching them', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache();
    expect(await cache.get(ns, 'nope')).toEqual({ ok: true, value: undefined });
    expect(await cache.get(ns, 'nope')).toEqual({ ok: true, value: undefined });
    expect(calls.load).toBe(2);
  });

  it('keeps each namespace version apart: v2 never reads v1 entries', async () => {
    const v1 = productSource('versioned');
    const cache = await newCache({}, 'rt-ver:');
    await cache.get(v1.ns, '1');
    const v2 = defineNamespace({
      ...v1.ns,
      version: 2,
      load: async () => ({ id: '1', name: 'new', price: 1, category: 'c' }),
    });
    expect(await cache.get(v2, '1')).toEqual({
      ok: true,
      value: { id: '1', name: 'new', price: 1, category: 'c' },
    });
    expect(await raw.exists('rt-ver:versioned:v1:1', 'rt-ver:versioned:v2:1')).toBe(2);
  });
});

describe('bad input changes nothing', () => {
  it('refuses an invalid id with E_CACHE_INVALID_ID, before any load or write', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache({}, 'rt-bad:');
    for (const id of ['', 'a b', 'x*', 'q?', '[r]', 'a'.repeat(300)]) {
      const r = await cache.get(ns, id);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('E_CACHE_INVALID_ID');
      const s = await cache.set(ns, id, { id: 'x', name: 'x', price: 1, category: 'c' });
      expect(!s.ok && s.error.code).toBe('E_CACHE_INVALID_ID');
    }
    expect(calls.load).toBe(0);
    expect(await countKeys(raw, 'rt-bad:*', { dataOnly: true })).toBe(0);
  });

  it('refuses a value that fails the schema, from set() or from the loader', async () => {
    const bad = defineNamespace({
      name: 'bad',
      version: 1,
      ttl: { l1: 60, l2: 60 },
      schema: z.object({ n: z.number() }),
      load: async () => ({ n: 'not a number' }) as unknown as { n: number },
    });
    const cache = await newCache({}, 'rt-badv:');
    const viaLoad = await cache.get(bad, 'a');
    expect(!viaLoad.ok && viaLoad.error.code).toBe('E_CACHE_INVALID_VALUE');
    const viaSet = await cache.set(bad, 'b', { n: 'x' } as unknown as { n: number });
    expect(!viaSet.ok && viaSet.error.code).toBe('E_CACHE_INVALID_VALUE');
    expect(await countKeys(raw, 'rt-badv:*', { dataOnly: true })).toBe(0);
    expect(cache.status().misses).toBe(1);
  });

  it('turns a loader failure into E_CACHE_LOADER_FAILED with the cause, and retries next time', async () => {
    let fail = true;
    const flaky = defineNamespace({
      name: 'flaky',
      version: 1,
      ttl: { l1: 60, l2: 60 },
      schema: z.string(),
      load: async (id) => {
        if (fail) throw new Error('db down');
        return `v-${id}`;
      },
    });
    const cache = await newCache();
    const r = await cache.get(flaky, 'a');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('E_CACHE_LOADER_FAILED');
      expect((r.error.cause as Error).message).toBe('db down');
    }
    fail = false;
    expect(await cache.get(flaky, 'a')).toEqual({ ok: true, value: 'v-a' });
  });
});

describe('getMany', () => {
  it('serves L1 hits, reads the rest in one L2 round trip and loads the remainder with one loadMany', async () => {
    const { ns, calls } = productSource();
    const writer = await newCache({}, 'rt-many:');
    await writer.get(ns, '1');
    await writer.get(ns, '2');
    const cache = await newCache({}, 'rt-many:');
    await cache.get(ns, '1'); // now in this pod's L1
    calls.load = 0;
    const r = await cache.getMany(ns, ['1', '2', '3', '4', 'missing']);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.map((p) => p?.id)).toEqual(['1', '2', '3', '4', undefined]);
    expect(calls.loadMany).toBe(1);
    expect(calls.load).toBe(0);
    expect(cache.stats()[0]).toMatchObject({ l1: { hits: 1 }, l2: { hits: 2 } });
    expect(await raw.exists('rt-many:product:v1:3', 'rt-many:product:v1:4')).toBe(2);
  });

  it('refuses the whole batch when one id is invalid', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache();
    const r = await cache.getMany(ns, ['1', 'bad id']);
    expect(!r.ok && r.error.code).toBe('E_CACHE_INVALID_ID');
    expect(calls.loadMany + calls.load).toBe(0);
  });
});

describe('ways out of the cache', () => {
  it('delete removes from L1 and L2', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache({}, 'rt-del:');
    await cache.get(ns, '5');
    expect(await cache.delete(ns, '5')).toEqual({ ok: true, value: 1 });
    expect(await isTombstoned(raw, 'rt-del:product:v1:5')).toBe(true);
    await cache.get(ns, '5');
    expect(calls.load).toBe(2);
  });

  it('invalidateTags drops every entry of a tag in L1 and L2 and keeps the others', async () => {
    const { ns, calls } = productSource();
    const cache = await newCache({}, 'rt-tag:');
    await cache.getMany(ns, ['0', '1', '2', '3', '4', '5']); // categories c0 c1 c2 c0 c1 c2
    const r = await cache.invalidateTags(ns, ['category:c0']);
    expect(r).toEqual({ ok: true, value: 2 });
    expect(await liveValue(raw, 'rt-tag:product:v1:0')).toBeUndefined();
    expect(await liveValue(raw, 'rt-tag:product:v1:3')).toBeUndefined();
    expect(await liveValue(raw, 'rt-tag:product:v1:1')).toMatchObject({ id: '1' });
    expect(await liveValue(raw, 'rt-tag:product:v1:2')).toMatchObject({ id: '2' });
    calls.load = 0;
    calls.loadMany = 0;
    await cache.get(ns, '1');
    expect(calls.load).toBe(0);
    await cache.get(ns, '0');
    expect(calls.load).toBe(1);
  });

  it('invalidateNamespace moves the namespace to a new generation in O(1): every pod reloads it, others untouched', async () => {
    const a = productSource('alpha');
    const b = productSource('beta');
    const cache = await newCache({}, 'rt-ns:');
    await cache.getMany(a.ns, ['1', '2', '3']);
    await cache.getMany(b.ns, ['1', '2']);
    expect(await cache.invalidateNamespace(a.ns)).toEqual({ ok: true, value: 1 });
    a.calls.ids.length = 0;
    await cache.get(a.ns, '1');
    expect(a.calls.ids).toEqual(['1']);
    expect(await liveValue(raw, 'rt-ns:alpha:v1:g1:1')).toMatchObject({ id: '1' });
    // A pod that starts later learns the generation from Redis and never reads the old keys.
    const late = await newCache({}, 'rt-ns:');
    a.calls.ids.length = 0;
    await late.get(a.ns, '2');
    expect(a.calls.ids).toEqual(['2']);
    b.calls.ids.length = 0;
    await late.get(b.ns, '1');
    expect(b.calls.ids).toEqual([]);
    expect(await countKeys(raw, 'rt-ns:beta:*')).toBe(2);
  });

  it('L1 entries expire after the namespace L1 TTL while L2 still serves', async () => {
    const shortL1 = productSource('shortl1');
    const ns: Namespace<Product> = defineNamespace({ ...shortL1.ns, ttl: { l1: 0.1, l2: 60 } });
    const cache = await newCache();
    await cache.get(ns, '1');
    await new Promise((r) => setTimeout(r, 250));
    await cache.get(ns, '1');
    expect(cache.stats()[0]).toMatchObject({ l1: { hits: 0 }, l2: { hits: 1 }, loads: 1 });
  });
});
