import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { delay, startRedis, waitUntil } from '../../../test/helpers/index.js';
import { createCodec, entryTimes, envelope } from '../src/drivers/codec.js';
import {
  type Cache,
  type CacheOptions,
  createCache,
  type DeepReadonly,
  defineNamespace,
  type NamespaceDefinition,
} from '../src/index.js';

const server = await startRedis();
const raw = new Redis(server.url);
afterAll(async () => {
  raw.disconnect();
  await server.stop();
});

const Product = z.object({
  id: z.string(),
  price: z.number(),
  tags: z.array(z.string()),
  meta: z.object({ rev: z.number() }),
});
type Product = z.infer<typeof Product>;

let seq = 0;
const caches: Cache[] = [];
async function newCache(extra: Partial<CacheOptions> = {}, prefix = `rp${++seq}:`): Promise<Cache> {
  const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix, ...extra });
  await cache.start();
  caches.push(cache);
  return cache;
}
afterAll(async () => {
  await Promise.all(caches.map((c) => c.close()));
});

/** A source of truth the test controls: rows, a switch that makes the loader fail, a call count. */
function source(name: string, extra: Partial<NamespaceDefinition<Product>> = {}) {
  const rows = new Map<string, Product>();
  for (let i = 0; i < 20; i++)
    rows.set(String(i), { id: String(i), price: i, tags: ['a'], meta: { rev: 1 } });
  const state = { calls: 0, fail: false, slowMs: 0 };
  const ns = defineNamespace<Product>({
    name,
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: Product,
    load: async (id) => {
      state.calls++;
      if (state.slowMs > 0) await delay(state.slowMs);
      if (state.fail) throw new Error('database is down');
      const row = rows.get(id);
      // A fresh object per call, as a database driver returns.
      return row === undefined ? undefined : structuredClone(row);
    },
    loadMany: async (ids) => {
      state.calls++;
      if (state.fail) throw new Error('database is down');
      return new Map(
        ids.flatMap((id) => (rows.has(id) ? [[id, structuredClone(rows.get(id) as Product)]] : [])),
      );
    },
    ...extra,
  });
  return { ns, rows, state };
}

function mutate(value: DeepReadonly<Product> | undefined): void {
  // Strict mode (ES module): writing a frozen property throws.
  (value as Product).price = 999;
}

describe('immutable values', () => {
  it('hands out deep-frozen values from the loader, L1, L2 and getMany; a mutation throws and changes nothing', async () => {
    const { ns } = source('imm');
    const pod1 = await newCache({}, 'imm:');
    const pod2 = await newCache({}, 'imm:');

    const filled = await pod1.get(ns, '1');
    if (!filled.ok || filled.value === undefined) throw new Error('expected a value');
    const v = filled.value;
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(v.tags)).toBe(true);
    expect(Object.isFrozen(v.meta)).toBe(true);
    expect(() => mutate(v)).toThrow(TypeError);
    expect(() => (v.tags as string[]).push('x')).toThrow(TypeError);
    // @ts-expect-error DeepReadonly: nested properties are read-only to the type checker too.
    expect(() => (v.meta.rev = 2)).toThrow(TypeError);

    const hit = await pod1.get(ns, '1');
    expect(hit.ok && hit.value).toEqual({ id: '1', price: 1, tags: ['a'], meta: { rev: 1 } });

    // pod2: an L2 hit decoded into its L1.
    const fromL2 = await pod2.get(ns, '1');
    if (!fromL2.ok) throw fromL2.error;
    expect(() => mutate(fromL2.value)).toThrow(TypeError);
    expect(fromL2.value?.price).toBe(1);

    const many = await pod2.getMany(ns, ['1', '2', '3']);
    if (!many.ok) throw many.error;
    for (const v of many.value) {
      expect(Object.isFrozen(v)).toBe(true);
      expect(() => mutate(v)).toThrow(TypeError);
    }
    expect(many.value.map((v) => v?.price)).toEqual([1, 2, 3]);
  });

  it('freezes the stored copy of a set, not the object the caller passed', async () => {
    const { ns } = source('imm-set');
    const pod = await newCache();
    const mine: Product = { id: '5', price: 50, tags: ['b'], meta: { rev: 2 } };
    expect((await pod.set(ns, '5', mine)).ok).toBe(true);
    mine.price = 51;
    const r = await pod.get(ns, '5');
    if (!r.ok) throw r.error;
    expect(r.value?.price).toBe(50);
    expect(() => mutate(r.value)).toThrow(TypeError);
  });

  it('immutable: false hands out the stored object unfrozen (the previous behaviour)', async () => {
    const { ns } = source('mut', { immutable: false });
    const pod = await newCache();
    const r = await pod.get(ns, '3');
    if (!r.ok) throw r.error;
    expect(Object.isFrozen(r.value)).toBe(false);
  });
});

/** Short TTLs so that a test can wait them out; a long grace and back-off so that nothing else expires. */
const SHORT = { ttl: { l1: 0.1, l2: 0.3 }, grace: { seconds: 60, backoffSeconds: 60 } } as const;

/** Waits until an entry loaded now is past its L2 TTL (a wait, not an assertion on time). */
const pastTtl = () => delay(450);

function statsOf(cache: Cache, name: string) {
  const s = cache.stats().find((x) => x.namespace === name);
  if (s === undefined) throw new Error(`no stats for ${name}`);
  return s;
}

describe('grace (fail-safe)', () => {
  it('keeps the entry grace longer in Redis, marks it with its times, and serves it stale when the loader fails, then backs off', async () => {
    const { ns, state, rows } = source('gr', SHORT);
    const pod = await newCache({}, 'gr:');
    const first = await pod.get(ns, '1');
    expect(first).toEqual({ ok: true, value: rows.get('1') });
    expect(first.ok && first.stale).toBeUndefined();
    const pttl = await raw.pttl('gr:gr:v1:1');
    expect(pttl).toBeGreaterThan(50_000); // 0.3 s TTL + 60 s grace
    expect(await raw.get('gr:gr:v1:1')).toMatch(/^~g[0-9a-z]+\.[0-9a-z]+:\{/);

    await pastTtl();
    state.fail = true;
    const calls = state.calls;
    const stale = await pod.get(ns, '1');
    if (!stale.ok) throw stale.error;
    expect(stale.value).toEqual(rows.get('1'));
    expect(stale.stale?.expiredMs).toBeGreaterThan(0);
    expect(stale.stale?.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(state.calls).toBe(calls + 1);
    expect(Object.isFrozen(stale.value)).toBe(true);

    // Back-off: the loader is left alone for that key; readers keep getting the stale value.
    for (let i = 0; i < 5; i++) {
      const again = await pod.get(ns, '1');
      expect(again.ok && again.stale !== undefined).toBe(true);
    }
    expect(state.calls).toBe(calls + 1);
    expect(statsOf(pod, 'gr').staleServed).toBe(6);
    const metrics = await pod.metrics.getSingleMetricAsString('cachefleet_cache_stale_served_total');
    expect(metrics).toContain('namespace="gr"} 6');

    // Another key without a copy is an error: grace serves only what was cached.
    const none = await pod.get(ns, '2');
    expect(!none.ok && none.error.code).toBe('E_CACHE_LOADER_FAILED');
  });

  it('a cold pod serves the stale L2 value; the first load after the database is back is fresh again', async () => {
    const { ns, state, rows } = source('gr-cold', { ...SHORT, grace: { seconds: 60, backoffSeconds: 0.2 } });
    const pod1 = await newCache({}, 'grc:');
    const pod2 = await newCache({}, 'grc:');
    expect((await pod1.get(ns, '3')).ok).toBe(true);
    await pastTtl();
    state.fail = true;
    const stale = await pod2.get(ns, '3');
    expect(stale.ok && stale.stale !== undefined && stale.value).toEqual(rows.get('3'));
    // The database is back and the row changed: after the back-off a read loads it again.
    state.fail = false;
    rows.set('3', { id: '3', price: 33, tags: ['a'], meta: { rev: 2 } });
    const fresh = await waitUntil('a fresh read after the back-off', async () => {
      const r = await pod2.get(ns, '3');
      return r.ok && r.stale === undefined ? r : undefined;
    });
    expect(fresh.ok && fresh.value?.price).toBe(33);
    const other = await pod1.get(ns, '3');
    expect(other.ok && other.value?.price).toBe(33);
  });

  it('grace: false on a call returns the loader error instead of a stale value', async () => {
    const { ns, state } = source('gr-call', SHORT);
    const pod = await newCache();
    expect((await pod.get(ns, '4')).ok).toBe(true);
    await pastTtl();
    state.fail = true;
    const r = await pod.get(ns, '4', { grace: false });
    expect(!r.ok && r.error.code).toBe('E_CACHE_LOADER_FAILED');
    // A window narrower than the time since expiry refuses it too.
    const narrow = await pod.get(ns, '4', { grace: 0.001 });
    expect(narrow.ok).toBe(false);
    const ok = await pod.get(ns, '4');
    expect(ok.ok && ok.stale !== undefined).toBe(true);
  });

  const invalidations: [string, (pod: Cache, ns: ReturnType<typeof source>['ns']) => Promise<unknown>][] = [
    ['delete', (pod, ns) => pod.delete(ns, '5')],
    ['invalidateTags', (pod, ns) => pod.invalidateTags(ns, ['five'])],
    ['invalidatePattern', (pod, ns) => pod.invalidatePattern(ns, '5*')],
    ['invalidateNamespace', (pod, ns) => pod.invalidateNamespace(ns)],
  ];
  for (const [kind, invalidate] of invalidations) {
    it(`never serves a value invalidated by ${kind} (this pod, another pod, and during a back-off)`, async () => {
      const { ns, state } = source(`gi-${kind.toLowerCase()}`, {
        ...SHORT,
        tags: (p) => (p.id === '5' ? ['five'] : []),
      });
      const prefix = `gi-${kind}:`;
      const pod1 = await newCache({}, prefix);
      const pod2 = await newCache({}, prefix);
      const pod3 = await newCache({}, prefix);
      for (const p of [pod1, pod2, pod3]) expect((await p.get(ns, '5')).ok).toBe(true);
      await pastTtl();
      state.fail = true;
      // pod3 is in back-off, serving its stale copy.
      expect((await pod3.get(ns, '5')).ok).toBe(true);

      expect(((await invalidate(pod1, ns)) as { ok: boolean }).ok).toBe(true);
      // The invalidating pod, a pod that may not have heard the event yet, and the one in back-off.
      for (const p of [pod1, pod2, pod3]) {
        const r = await p.get(ns, '5');
        expect(r.ok ? `stale value ${JSON.stringify(r)}` : r.error.code).toBe('E_CACHE_LOADER_FAILED');
      }
    });
  }

  it('an entry without grace is not served stale (and its Redis key is the plain value)', async () => {
    const { ns, state } = source('nogr', { ttl: { l1: 0.1, l2: 0.3 } });
    const pod = await newCache({}, 'nogr:');
    expect((await pod.get(ns, '6')).ok).toBe(true);
    expect(await raw.get('nogr:nogr:v1:6')).toMatch(/^\{/);
    await pastTtl();
    state.fail = true;
    expect((await pod.get(ns, '6')).ok).toBe(false);
  });

  it('getMany serves stale copies when loadMany fails, only if every missing id has one', async () => {
    const { ns, state } = source('gr-many', SHORT);
    const pod = await newCache();
    expect((await pod.getMany(ns, ['1', '2'])).ok).toBe(true);
    await pastTtl();
    state.fail = true;
    const r = await pod.getMany(ns, ['1', '2']);
    if (!r.ok) throw r.error;
    expect(r.value.map((v) => v?.price)).toEqual([1, 2]);
    expect(r.stale).toBeDefined();
    const partial = await pod.getMany(ns, ['1', '7']);
    expect(!partial.ok && partial.error.code).toBe('E_CACHE_LOADER_FAILED');
  });
});

describe('loader timeouts', () => {
  it('soft timeout: serves the stale copy at once; the one load goes on and fills the cache', async () => {
    const { ns, state, rows } = source('soft', { ...SHORT, timeouts: { softMs: 50 } });
    const pod1 = await newCache({}, 'soft:');
    const pod2 = await newCache({}, 'soft:');
    expect((await pod1.get(ns, '8')).ok).toBe(true);
    await pastTtl();
    rows.set('8', { id: '8', price: 88, tags: [], meta: { rev: 2 } });
    state.slowMs = 1_000;
    const calls = state.calls;
    const reads = await Promise.all([
      ...Array.from({ length: 10 }, () => pod1.get(ns, '8')),
      ...Array.from({ length: 10 }, () => pod2.get(ns, '8')),
    ]);
    for (const r of reads) {
      expect(r.ok && r.stale !== undefined).toBe(true);
      expect(r.ok && r.value?.price).toBe(8);
    }
    expect(statsOf(pod1, 'soft').softTimeouts + statsOf(pod2, 'soft').softTimeouts).toBe(20);
    // One load in the fleet (pod2 waited on pod1's lock, or the other way round), then fresh values.
    const fresh = await waitUntil('the background load to fill the cache', async () => {
      const r = await pod2.get(ns, '8');
      return r.ok && r.stale === undefined ? r : undefined;
    });
    expect(fresh.ok && fresh.value?.price).toBe(88);
    expect(state.calls).toBe(calls + 1);
  });

  it('hard timeout: an error without a stale copy; the load still fills the cache', async () => {
    const { ns, state } = source('hard', { ttl: { l1: 60, l2: 600 }, timeouts: { hardMs: 100 } });
    const pod = await newCache();
    state.slowMs = 600;
    const r = await pod.get(ns, '9');
    expect(!r.ok && r.error.code).toBe('E_CACHE_LOADER_TIMEOUT');
    expect(statsOf(pod, 'hard').hardTimeouts).toBe(1);
    state.slowMs = 0;
    const filled = await waitUntil('the background load', async () => {
      const x = await pod.get(ns, '9');
      return x.ok ? x : undefined;
    });
    expect(filled.ok && filled.value?.price).toBe(9);
    expect(state.calls).toBe(1);
  });

  it('hard timeout with grace serves the stale copy; a per-call timeout overrides the namespace', async () => {
    const { ns, state } = source('hard-gr', { ...SHORT, timeouts: { hardMs: 5_000 } });
    const pod = await newCache();
    expect((await pod.get(ns, '10')).ok).toBe(true);
    await pastTtl();
    state.slowMs = 2_000;
    const r = await pod.get(ns, '10', { hardTimeoutMs: 50 });
    expect(r.ok && r.stale !== undefined && r.value?.price).toBe(10);
  });
});

describe('TTL spread, adaptive TTL, early refresh', () => {
  async function pttls(prefix: string, name: string, ids: readonly string[]): Promise<number[]> {
    return Promise.all(ids.map((id) => raw.pttl(`${prefix}${name}:v1:${id}`)));
  }
  const spanOf = (xs: readonly number[]) => Math.max(...xs) - Math.min(...xs);

  it('a warmed namespace expires over the ±spread window, not at once (warm and read-through fills)', async () => {
    const ids = Array.from({ length: 200 }, (_, i) => `w${i}`);
    const rows = (id: string): Product => ({ id, price: 1, tags: [], meta: { rev: 1 } });
    const def = {
      version: 1,
      ttl: { l1: 60, l2: 100 },
      schema: Product,
      load: async (id: string) => rows(id),
      loadMany: async (xs: readonly string[]) => new Map(xs.map((id) => [id, rows(id)])),
    };
    const spreadNs = defineNamespace<Product>({ ...def, name: 'spread', ttlSpread: 0.5 });
    const flatNs = defineNamespace<Product>({ ...def, name: 'flat' });
    const pod = await newCache({}, 'spr:');
    const warmed = await pod.fleet.warm(spreadNs, ids);
    expect(warmed.ok && warmed.value.written).toBe(200);
    const flat = await pod.fleet.warm(flatNs, ids);
    expect(flat.ok && flat.value.written).toBe(200);

    const spreadTtls = await pttls('spr:', 'spread', ids);
    const flatTtls = await pttls('spr:', 'flat', ids);
    // Without spread the whole warm expires within a second or two; with ±50% over about 100 s.
    expect(spanOf(flatTtls)).toBeLessThan(5_000);
    expect(spanOf(spreadTtls)).toBeGreaterThan(50_000);
    for (const t of spreadTtls) {
      expect(t).toBeGreaterThan(45_000);
      expect(t).toBeLessThanOrEqual(150_000);
    }

    const fills = Array.from({ length: 100 }, (_, i) => `f${i}`);
    for (const id of fills) expect((await pod.get(spreadNs, id)).ok).toBe(true);
    expect(spanOf(await pttls('spr:', 'spread', fills))).toBeGreaterThan(40_000);
  });

  it('adaptive TTL: the loader sets the entry TTL and tags from the value it loaded', async () => {
    const ns = defineNamespace<Product>({
      name: 'adaptive',
      version: 1,
      ttl: { l1: 60, l2: 600 },
      schema: Product,
      load: async (id, ctx) => {
        const p: Product = { id, price: Number(id), tags: [], meta: { rev: 1 } };
        // A "closed" product (even id) lives longer and is tagged.
        if (p.price % 2 === 0) {
          ctx?.setTtl({ l2: 7_200 });
          ctx?.setTags(['closed']);
        }
        return p;
      },
    });
    const pod = await newCache({}, 'adp:');
    expect((await pod.get(ns, '2')).ok).toBe(true);
    expect((await pod.get(ns, '3')).ok).toBe(true);
    expect(await raw.pttl('adp:adaptive:v1:2')).toBeGreaterThan(7_000_000);
    const open = await raw.pttl('adp:adaptive:v1:3');
    expect(open).toBeGreaterThan(500_000);
    expect(open).toBeLessThanOrEqual(600_000);
    const removed = await pod.invalidateTags(ns, ['closed']);
    expect(removed.ok && removed.value).toBe(1);
    expect((await raw.get('adp:adaptive:v1:2'))?.startsWith('~t')).toBe(true);
    expect((await raw.get('adp:adaptive:v1:3'))?.startsWith('{')).toBe(true);
  });

  // BUG (issue 11, found building the Fastify plugin): tags a loader set were known to the pod that
  // loaded the entry and to Redis only; a pod that copied the entry from L2 into its L1 kept it
  // through an invalidation of those tags until its L1 TTL.
  it('adaptive tags: an invalidation by them drops the copies other pods took from L2', async () => {
    const loads = { n: 0 };
    const ns = defineNamespace<Product>({
      name: 'adaptags',
      version: 1,
      ttl: { l1: 60, l2: 600 },
      schema: Product,
      load: async (id, ctx) => {
        loads.n++;
        ctx?.setTags([`grp:${id}`]);
        return { id, price: loads.n, tags: [], meta: { rev: loads.n } };
      },
    });
    const [a, b] = [await newCache({}, 'adt:'), await newCache({}, 'adt:')];
    const priceOn = async (pod: Cache) => {
      const r = await pod.get(ns, '1');
      return r.ok ? r.value?.price : undefined;
    };
    expect(await priceOn(a)).toBe(1); // loaded by A: L2 has the tag index
    expect(await priceOn(b)).toBe(1); // copied by B from L2, then held in its L1
    expect(await priceOn(b)).toBe(1);
    expect(loads.n).toBe(1);
    expect((await a.invalidateTags(ns, ['grp:1'])).ok).toBe(true);
    await waitUntil('B to drop its copy', async () => ((await priceOn(b)) === 2 ? true : undefined));
    // And the publishing pod drops a copy it took from L2 itself.
    expect(await priceOn(a)).toBe(2);
    expect((await b.invalidateTags(ns, ['grp:1'])).ok).toBe(true);
    expect(await priceOn(b)).toBe(3);
  });

  it('early refresh: a hot key read across its TTL boundary by 3 pods never misses, refreshed once per window', async () => {
    const state = { calls: 0 };
    const ns = defineNamespace<Product>({
      name: 'early',
      version: 1,
      ttl: { l1: 0.05, l2: 2 },
      earlyRefresh: 0.5,
      schema: Product,
      load: async (id) => {
        state.calls++;
        await delay(50);
        return { id, price: state.calls, tags: [], meta: { rev: state.calls } };
      },
    });
    const pods = [await newCache({}, 'early:'), await newCache({}, 'early:'), await newCache({}, 'early:')];
    expect((await (pods[0] as Cache).get(ns, 'hot')).ok).toBe(true);
    const end = Date.now() + 5_000; // 2.5 TTLs
    while (Date.now() < end) {
      const rs = await Promise.all(pods.map((p) => p.get(ns, 'hot')));
      for (const r of rs) expect(r.ok && r.value !== undefined).toBe(true);
      await delay(20);
    }
    const stats = pods.map((p) => statsOf(p, 'early'));
    // The only read that reached the loader synchronously was the first.
    expect(stats.reduce((n, s) => n + s.l2.misses, 0)).toBe(1);
    const refreshes = stats.reduce((n, s) => n + s.earlyRefreshes, 0);
    expect(refreshes).toBeGreaterThanOrEqual(2);
    // One refresh per window in the fleet, not one per pod: 5 s of 2 s entries refreshed at 1 s.
    expect(refreshes).toBeLessThanOrEqual(5);
    expect(state.calls).toBe(1 + refreshes);
  });
});

describe('early refresh without L1, and bad input', () => {
  it('impl redis: an L2 hit in the last part of the TTL refreshes the entry in the background', async () => {
    const state = { calls: 0 };
    const ns = defineNamespace<Product>({
      name: 'early-l2',
      version: 1,
      ttl: { l1: 60, l2: 1 },
      earlyRefresh: 0.5,
      schema: Product,
      load: async (id) => {
        state.calls++;
        return { id, price: state.calls, tags: [], meta: { rev: state.calls } };
      },
    });
    const pod = await newCache({ impl: 'redis' }, 'erl2:');
    const first = await pod.get(ns, 'x');
    expect(first.ok && first.value?.price).toBe(1);
    await delay(650);
    const hit = await pod.get(ns, 'x');
    // The hit is served at once (the old value); the refresh follows.
    expect(hit.ok && hit.value?.price).toBe(1);
    const fresh = await waitUntil('the background refresh', async () => {
      const r = await pod.get(ns, 'x');
      return r.ok && r.value?.price === 2 ? r : undefined;
    });
    expect(fresh.ok).toBe(true);
    expect(statsOf(pod, 'early-l2').earlyRefreshes).toBe(1);
    expect(statsOf(pod, 'early-l2').l2.misses).toBe(1);
  });

  it('defineNamespace accepts valid read-path options and refuses any other with E_CACHE_INVALID_NAMESPACE', () => {
    const base = { version: 1, ttl: { l1: 1, l2: 2 }, schema: Product, load: async () => undefined };
    fc.assert(
      fc.property(
        fc.record(
          {
            grace: fc.record(
              { seconds: fc.double({ noNaN: false }), backoffSeconds: fc.double() },
              { requiredKeys: ['seconds'] },
            ),
            timeouts: fc.record({ softMs: fc.integer(), hardMs: fc.integer() }, { requiredKeys: [] }),
            earlyRefresh: fc.double(),
            ttlSpread: fc.double(),
          },
          { requiredKeys: [] },
        ),
        (options) => {
          const g = options.grace;
          const t = options.timeouts;
          const valid =
            (g === undefined ||
              (g.seconds > 0 &&
                Number.isFinite(g.seconds) &&
                (g.backoffSeconds === undefined || g.backoffSeconds > 0) &&
                (g.backoffSeconds === undefined || Number.isFinite(g.backoffSeconds)))) &&
            (t === undefined ||
              ((t.softMs === undefined || t.softMs > 0) &&
                (t.hardMs === undefined || t.hardMs > 0) &&
                (t.softMs === undefined || t.hardMs === undefined || t.softMs <= t.hardMs))) &&
            (options.earlyRefresh === undefined || (options.earlyRefresh > 0 && options.earlyRefresh < 1)) &&
            (options.ttlSpread === undefined || (options.ttlSpread >= 0 && options.ttlSpread <= 0.5));
          let error: unknown;
          try {
            defineNamespace<Product>({ ...base, name: 'prop', ...options });
          } catch (e) {
            error = e;
          }
          if (valid) expect(error).toBeUndefined();
          else expect(error).toMatchObject({ code: 'E_CACHE_INVALID_NAMESPACE' });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('an enveloped L2 value round-trips its times and value; garbage after ~g is a corrupt entry, never a throw', () => {
    const codec = createCodec(64);
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.integer({ min: 0, max: 2 ** 45 }),
        fc.integer({ min: 0, max: 2 ** 45 }),
        (value, loadedAt, expiresAt) => {
          const { wire } = codec.encode(value);
          const wrapped = envelope(wire, { loadedAt, expiresAt });
          expect(entryTimes(wrapped)).toEqual({ loadedAt, expiresAt });
          expect(codec.decode(wrapped)).toEqual(JSON.parse(JSON.stringify(value)));
          expect(entryTimes(wire)).toBeUndefined();
        },
      ),
    );
    fc.assert(
      fc.property(fc.string(), (tail) => {
        const wire = `~g${tail}`;
        expect(() => entryTimes(wire)).not.toThrow();
      }),
    );
  });
});
