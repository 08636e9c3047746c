import { cacheKeys } from '@cachefleet/redis';
import {
  cachesOn,
  countKeys,
  deferred,
  isTombstoned,
  liveValue,
  type RedisCluster,
  startCluster,
  startRedis,
  unwrap,
  waitUntil,
} from '@cachefleet/test';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Cache,
  type CacheOptions,
  createCache,
  defineNamespace,
  type HotKey,
  type Namespace,
  type Result,
  TieredStore,
} from '../src/index.js';

/** cache.fleet (docs/design-fleet.md): warm batches, hot keys, bulk walks, against real Redis. */

const server = await startRedis();
const raw = new Redis(server.url);
const caches = cachesOn(server.url);
afterAll(async () => {
  await caches.closeAll();
  raw.disconnect();
  await server.stop();
});
const newCache = (prefix: string, extra: Partial<CacheOptions> = {}): Promise<Cache> =>
  caches.open(prefix, extra);

const Item = z.object({ id: z.string(), v: z.number() });
type Item = z.infer<typeof Item>;

interface SourceOptions {
  /** The row of an id at data version `v`; undefined: the id does not exist. */
  readonly row?: (id: string, v: number) => Item | undefined;
  /** Runs inside each loadMany after its rows were read (what happens "while the batch loads"). */
  readonly during?: (call: number, ns: Namespace<Item>) => Promise<void>;
  readonly tags?: (v: Item) => string[];
  /** Awaited by each single-id load before it reads its row. */
  readonly hold?: () => Promise<void>;
}

/** A namespace over a fake table whose data version `db.v` tests move; counts loader calls. */
function source(name: string, opts: SourceOptions = {}) {
  const db = { v: 1 };
  const calls = { many: 0, one: 0 };
  const row = opts.row ?? ((id: string, v: number) => ({ id, v }));
  const ns: Namespace<Item> = defineNamespace<Item>({
    name,
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: Item,
    load: async (id) => {
      calls.one++;
      await opts.hold?.();
      return row(id, db.v);
    },
    loadMany: async (ids) => {
      const call = ++calls.many;
      const found = new Map(ids.flatMap((id) => [[id, row(id, db.v)] as const]));
      await opts.during?.(call, ns);
      return new Map([...found].filter((e): e is [string, Item] => e[1] !== undefined));
    },
    ...(opts.tags ? { tags: opts.tags } : {}),
  });
  return { ns, calls, db };
}

/**
 * A warming pod `w` and another pod `o` on prefix `p`, over a source whose first batch load runs
 * `meanwhile(o, ns)` after reading its rows (and first moves the data to version 2 unless told not to).
 */
async function warmWhile(
  p: string,
  meanwhile: (o: Cache, ns: Namespace<Item>) => Promise<unknown>,
  { moveData = true } = {},
) {
  const w = await newCache(p);
  const o = await newCache(p);
  const src = source('item', {
    during: async (call, ns) => {
      if (call !== 1) return;
      if (moveData) src.db.v = 2;
      await meanwhile(o, ns);
    },
  });
  return { w, o, ...src };
}

const range = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`);
const value = (prefix: string, ns: Namespace<Item>, id: string) =>
  liveValue(raw, `${prefix}${ns.keyBase}${id}`);

/** What an invalidate-slice job does: unlinkStep from `from` until cursor '0' (or `max` steps). */
async function walk(c: Cache, match: string, o: { from?: string; max?: number; master?: string } = {}) {
  const on = o.master ?? unwrap(c.fleet.masters())[0] ?? '';
  const maxSteps = o.max ?? Number.POSITIVE_INFINITY;
  let cursor = o.from ?? '0';
  let unlinked = 0;
  let steps = 0;
  do {
    const r = unwrap(await c.fleet.unlinkStep(on, match, cursor, 1000));
    cursor = r.cursor;
    unlinked += r.unlinked;
    steps++;
  } while (cursor !== '0' && steps < maxSteps);
  return { cursor, unlinked, steps };
}

describe('warm', () => {
  it('writes 2,000 ids with the namespace TTL; another pod reads them from L2 without loading', async () => {
    const p = 'fw-bulk:';
    const { ns, calls } = source('item', {
      row: (id, v) =>
        id.startsWith('gone') ? undefined : id === 'bad' ? ({ id, v: 'x' } as unknown as Item) : { id, v },
    });
    const ids = range(2000, 'i');
    const w = await newCache(p);
    const r = await w.fleet.warm(ns, [...ids, 'gone1', 'gone2', 'x*', 'a b', 'bad']);
    expect(r).toEqual({
      ok: true,
      value: { requested: 2005, loaded: 2001, written: 2000, changed: 0, invalid: 3, overtaken: false },
    });
    expect(calls).toEqual({ many: 1, one: 0 });
    const keys = ids.map((id) => `${p}item:v1:${id}`);
    const ttls = ((await raw.pipeline(keys.map((k) => ['pttl', k])).exec()) ?? []).map(([, t]) => Number(t));
    expect(Math.min(...ttls)).toBeGreaterThan(590_000);
    expect(Math.max(...ttls)).toBeLessThanOrEqual(600_000);
    const wires = await raw.mget(keys);
    expect(wires.map((s) => Item.parse(JSON.parse(s ?? 'null')))).toEqual(ids.map((id) => ({ id, v: 1 })));
    expect(await raw.exists(`${p}item:v1:gone1`, `${p}item:v1:gone2`, `${p}item:v1:bad`)).toBe(0);

    const pod = await newCache(p);
    const again = await pod.getMany(ns, ids);
    expect(again).toEqual({ ok: true, value: ids.map((id) => ({ id, v: 1 })) });
    expect(await pod.get(ns, 'i7')).toEqual({ ok: true, value: { id: 'i7', v: 1 } });
    expect(calls).toEqual({ many: 1, one: 0 });
    expect(pod.stats()[0]).toMatchObject({ l1: { hits: 1 }, l2: { hits: 2000, misses: 0 }, loads: 0 });
  });

  it('falls back to load per id without loadMany', async () => {
    const { ns: many, calls } = source('single');
    const ns = defineNamespace<Item>({ ...many, loadMany: undefined });
    const w = await newCache('fw-single:');
    expect(unwrap(await w.fleet.warm(ns, ['a', 'b', 'c']))).toMatchObject({ loaded: 3, written: 3 });
    expect(calls).toEqual({ many: 0, one: 3 });
    expect(await value('fw-single:', ns, 'b')).toEqual({ id: 'b', v: 1 });
  });

  it('never overwrites a set made while it loaded (absent or live before), but refreshes untouched entries', async () => {
    const p = 'fw-newer:';
    const { w, o, ns } = await warmWhile(
      p,
      async (o, ns) => {
        await o.set(ns, 'k1', { id: 'k1', v: 99 });
        await o.set(ns, 'k3', { id: 'k3', v: 99 });
        await o.set(ns, 'k6', { id: 'k6', v: 99 });
      },
      { moveData: false },
    );
    unwrap(await o.set(ns, 'k3', { id: 'k3', v: 0 }));
    unwrap(await o.set(ns, 'k4', { id: 'k4', v: 0 }));
    // k5 and k6 already hold what the loader returns (the unhashed "same value" path of warm-n.lua);
    // k6 is then overwritten while the warm loads, so it must not be put back.
    unwrap(await o.set(ns, 'k5', { id: 'k5', v: 1 }));
    unwrap(await o.set(ns, 'k6', { id: 'k6', v: 1 }));
    await raw.pexpire(`${p}item:v1:k5`, 5_000);
    const r = unwrap(await w.fleet.warm(ns, ['k1', 'k2', 'k3', 'k4', 'k5', 'k6']));
    expect(r).toMatchObject({ loaded: 6, written: 3, changed: 3, overtaken: false });
    expect(await value(p, ns, 'k5')).toEqual({ id: 'k5', v: 1 });
    expect(await raw.pttl(`${p}item:v1:k5`)).toBeGreaterThan(5_000); // refreshed with the namespace TTL
    expect(await value(p, ns, 'k6')).toEqual({ id: 'k6', v: 99 });
    expect(await value(p, ns, 'k1')).toEqual({ id: 'k1', v: 99 });
    expect(await value(p, ns, 'k2')).toEqual({ id: 'k2', v: 1 });
    expect(await value(p, ns, 'k3')).toEqual({ id: 'k3', v: 99 });
    expect(await value(p, ns, 'k4')).toEqual({ id: 'k4', v: 1 });
  });

  it('does not resurrect a key deleted while it loaded: it stays a tombstone, then read-through loads fresh', async () => {
    const p = 'fw-deleted:';
    const { w, o, ns, calls } = await warmWhile(p, (o, ns) => o.delete(ns, 'd1', 'd2'));
    unwrap(await o.set(ns, 'd2', { id: 'd2', v: 0 }));
    expect(unwrap(await w.fleet.warm(ns, ['d1', 'd2']))).toMatchObject({ loaded: 2, written: 0, changed: 2 });
    expect(await isTombstoned(raw, `${p}item:v1:d1`)).toBe(true);
    expect(await isTombstoned(raw, `${p}item:v1:d2`)).toBe(true);
    expect(await w.get(ns, 'd1')).toEqual({ ok: true, value: { id: 'd1', v: 2 } });
    expect(calls.one).toBe(1);
    expect(await value(p, ns, 'd1')).toEqual({ id: 'd1', v: 2 });
  });

  it('reloads when a walk begins while it loads, and writes the second load', async () => {
    const p = 'fw-overtaken:';
    const { w, ns, calls } = await warmWhile(p, async (o, ns) => unwrap(await o.fleet.beginWalk(ns, '*')));
    const r = unwrap(await w.fleet.warm(ns, range(50, 'o')));
    expect(r).toMatchObject({ loaded: 50, written: 50, changed: 0, overtaken: false });
    expect(calls.many).toBe(2);
    expect(await raw.get(cacheKeys(p).invalidations('item'))).toBe('1');
    expect(await value(p, ns, 'o0')).toEqual({ id: 'o0', v: 2 });
    expect(await value(p, ns, 'o49')).toEqual({ id: 'o49', v: 2 });
  });

  it('gives up after 3 loads when every one is overtaken, writing nothing', async () => {
    const p = 'fw-overtaken3:';
    const o = await newCache(p);
    const { ns, calls } = source('item', {
      during: async (_, ns) => void unwrap(await o.fleet.beginWalk(ns, '*')),
    });
    const r = unwrap(await (await newCache(p)).fleet.warm(ns, range(10, 'o')));
    expect(r).toMatchObject({ written: 0, overtaken: true });
    expect(calls.many).toBe(3);
    expect(await countKeys(raw, `${p}item:*`)).toBe(0);
  });

  it('a walk that began while it loaded leaves every entry as it was, absent or live, for the next load', async () => {
    const p = 'fw-overtaken-mixed:';
    const o = await newCache(p);
    const seen: unknown[] = [];
    const { ns, calls, db } = source('item', {
      during: async (call, ns) => {
        if (call === 1) {
          db.v = 2;
          unwrap(await o.fleet.beginWalk(ns, '*'));
          unwrap(await o.set(ns, 'm3', { id: 'm3', v: 99 })); // absent at the snapshot, set meanwhile
        }
        // The first attempt's transaction ran: what it left is what the second load sees.
        if (call === 2) seen.push(await raw.mget(['m1', 'm2', 'm3'].map((id) => `${p}item:v1:${id}`)));
      },
    });
    unwrap(await o.set(ns, 'm1', { id: 'm1', v: 0 }));
    const r = unwrap(await (await newCache(p)).fleet.warm(ns, ['m1', 'm2', 'm3']));
    expect(r).toMatchObject({ written: 3, changed: 0, overtaken: false });
    expect(calls.many).toBe(2);
    expect(seen).toEqual([[JSON.stringify({ id: 'm1', v: 0 }), null, JSON.stringify({ id: 'm3', v: 99 })]]);
    for (const id of ['m1', 'm2', 'm3']) expect(await value(p, ns, id)).toEqual({ id, v: 2 });
  });

  it('writes nothing if the walk counter cannot be read (a broken counter key)', async () => {
    const p = 'fw-broken-counter:';
    const counter = cacheKeys(p).invalidations('item');
    const { ns } = source('item', {
      during: async () => {
        await raw.del(counter);
        await raw.hset(counter, 'not', 'a counter');
      },
    });
    const r = await (await newCache(p)).fleet.warm(ns, range(20, 'b'));
    expect(r.ok).toBe(false);
    expect(await countKeys(raw, `${p}item:*`)).toBe(0);
  });

  it('indexes tags: invalidateTags afterwards removes the warmed entries of the tag', async () => {
    const p = 'fw-tags:';
    const { ns } = source('tagged', { tags: (v) => [`par:${Number(v.id.slice(1)) % 2}`] });
    const w = await newCache(p);
    expect(unwrap(await w.fleet.warm(ns, range(10, 't'))).written).toBe(10);
    expect(await w.invalidateTags(ns, ['par:0'])).toEqual({ ok: true, value: 5 });
    for (const id of range(10, 't'))
      expect(await value(p, ns, id)).toEqual(Number(id.slice(1)) % 2 === 0 ? undefined : { id, v: 1 });
  });
});

describe('hot keys', () => {
  const sampled = (extra: CacheOptions['hotKeys'] = {}): Partial<CacheOptions> => ({
    l1TimingSampleRate: 1,
    hotKeys: { flushMs: 60_000, ...extra },
  });
  const scores = (r: Result<HotKey[]>) => unwrap(r).map((h) => `${h.id}=${h.score}`);
  async function read(c: Cache, ns: Namespace<Item>, counts: Record<string, number>): Promise<void> {
    for (const [id, n] of Object.entries(counts)) for (let i = 0; i < n; i++) unwrap(await c.get(ns, id));
  }

  it('counts reads per id, two pods add up, decay halves and drops ids below 1', async () => {
    const p = 'fw-hot:';
    const { ns } = source('hot');
    const a = await newCache(p, sampled());
    const b = await newCache(p, sampled());
    await read(a, ns, { a: 50, b: 20, c: 5, d: 1 });
    expect(await a.fleet.flushHotKeys()).toEqual({ ok: true, value: 4 });
    expect(await a.fleet.flushHotKeys()).toEqual({ ok: true, value: 0 });
    expect(scores(await a.fleet.hotKeys(ns, 2))).toEqual(['a=50', 'b=20']);
    await read(b, ns, { c: 30, a: 10 });
    unwrap(await b.fleet.flushHotKeys());
    expect(scores(await a.fleet.hotKeys('hot', 10))).toEqual(['a=60', 'c=35', 'b=20', 'd=1']);
    expect(await b.fleet.decayHotKeys(ns, 0.5)).toEqual({ ok: true, value: 1 });
    expect(scores(await a.fleet.hotKeys(ns, 10))).toEqual(['a=30', 'c=17.5', 'b=10']);
    expect(await raw.zcard(cacheKeys(p).hot('hot'))).toBe(3);
    // The namespaces with counts, as `cachefleet top` lists them: this prefix's only.
    await raw.zincrby(cacheKeys('fw-hot-other:').hot('elsewhere'), 1, 'x');
    await raw.zincrby(cacheKeys(p).hot('second'), 1, 'y');
    expect(await a.fleet.hotNamespaces()).toEqual({ ok: true, value: ['hot', 'second'] });
  });

  it('scales sampled counts by the sample rate', async () => {
    const { ns } = source('hot');
    const c = await newCache('fw-hot-rate:', { ...sampled(), l1TimingSampleRate: 4 });
    await read(c, ns, { a: 40 });
    unwrap(await c.fleet.flushHotKeys());
    expect(scores(await c.fleet.hotKeys(ns, 5))).toEqual(['a=40']);
  });

  it('keeps the top hotKeys.keep ids, records nothing when disabled, flushes on a timer and on close', async () => {
    const { ns } = source('hot');
    const kept = await newCache('fw-hot-keep:', sampled({ keep: 2 }));
    await read(kept, ns, { a: 3, b: 2, c: 1 });
    unwrap(await kept.fleet.flushHotKeys());
    expect(scores(await kept.fleet.hotKeys(ns, 10))).toEqual(['a=3', 'b=2']);

    const off = await newCache('fw-hot-off:', sampled({ enabled: false }));
    await read(off, ns, { a: 5 });
    expect(await off.fleet.flushHotKeys()).toEqual({ ok: true, value: 0 });
    await off.close();
    expect(await raw.exists(cacheKeys('fw-hot-off:').hot('hot'))).toBe(0);

    const closing = await newCache('fw-hot-close:', sampled());
    await read(closing, ns, { z: 4 });
    await closing.close();
    expect(await raw.zscore(cacheKeys('fw-hot-close:').hot('hot'), 'z')).toBe('4');

    const timed = await newCache('fw-hot-timer:', sampled({ flushMs: 100 }));
    await read(timed, ns, { t: 3 });
    await waitUntil('the timer flushes the counts', async () =>
      (await raw.zscore(cacheKeys('fw-hot-timer:').hot('hot'), 't')) === '3' ? true : undefined,
    );
  });
});

describe('bulk pattern invalidation (single node)', () => {
  const alpha = source('alpha').ns;
  /** n keys of alpha matching `u*`, 300 of alpha not matching, 300 of beta, in the cache's key layout. */
  async function seed(p: string, n: number): Promise<void> {
    const pipe = raw.pipeline();
    const put = (key: string, id: string) =>
      pipe.set(`${p}${key}`, JSON.stringify({ id, v: 1 }), 'PX', 600_000);
    for (let i = 0; i < n; i++) put(`alpha:v1:u${i}`, `u${i}`);
    for (let i = 0; i < 300; i++) {
      put(`alpha:v1:keep${i}`, `keep${i}`);
      put(`beta:v1:u${i}`, `u${i}`);
    }
    await pipe.exec();
  }
  async function expectWalked(p: string): Promise<void> {
    expect(await countKeys(raw, `${p}alpha:v1:u*`)).toBe(0);
    expect(await countKeys(raw, `${p}alpha:v1:keep*`)).toBe(300);
    expect(await countKeys(raw, `${p}beta:v1:*`)).toBe(300);
  }

  it('unlinks exactly the matching keys of 20,000, in steps of 1,000', async () => {
    const p = 'fw-walk:';
    await seed(p, 20_000);
    const w = await newCache(p);
    expect(w.fleet.masters()).toEqual({ ok: true, value: [`127.0.0.1:${server.port}`] });
    const match = unwrap(await w.fleet.beginWalk(alpha, 'u*'));
    expect(match).toBe('alpha:v1:u*');
    expect(await raw.get(cacheKeys(p).invalidations('alpha'))).toBe('1');
    const done = await walk(w, match);
    expect(done.unlinked).toBe(20_000);
    expect(done.steps).toBeGreaterThan(1);
    await expectWalked(p);
  });

  it('resumes from a saved cursor in a new cache instance (a restarted worker) to the same end state', async () => {
    const p = 'fw-resume:';
    await seed(p, 20_000);
    const w1 = await newCache(p);
    const match = unwrap(await w1.fleet.beginWalk(alpha, 'u*'));
    const first = await walk(w1, match, { max: 3 });
    expect(first.steps).toBe(3);
    expect(first.cursor).not.toBe('0');
    await w1.close();
    const w2 = await newCache(p);
    const rest = await walk(w2, match, { from: first.cursor });
    expect(first.unlinked + rest.unlinked).toBe(20_000);
    await expectWalked(p);
  });

  it('refuses a bad pattern with E_CACHE_INVALID_ID without moving the walk counter', async () => {
    const w = await newCache('fw-badpat:');
    for (const bad of ['a b', '{x}', '']) {
      const r = await w.fleet.beginWalk(alpha, bad);
      expect(!r.ok && r.error.code).toBe('E_CACHE_INVALID_ID');
    }
    expect(await raw.get(cacheKeys('fw-badpat:').invalidations('alpha'))).toBeNull();
  });

  it('endWalk makes another pod drop the pattern from its L1, and only the pattern', async () => {
    const p = 'fw-end:';
    const { ns, calls, db } = source('item');
    const w = await newCache(p);
    const pod = await newCache(p);
    unwrap(await w.fleet.warm(ns, [...range(10, 'e-'), 'keep']));
    unwrap(await pod.getMany(ns, [...range(10, 'e-'), 'keep']));
    expect(await pod.get(ns, 'e-1')).toEqual({ ok: true, value: { id: 'e-1', v: 1 } });
    expect(pod.stats()[0]).toMatchObject({ l1: { hits: 1 }, l2: { hits: 11 } });

    db.v = 2;
    const match = unwrap(await w.fleet.beginWalk(ns, 'e-*'));
    expect((await walk(w, match)).unlinked).toBe(10);
    expect(await value(p, ns, 'e-1')).toBeUndefined();
    // L2 is empty, but before the event the pod still serves its L1 copy.
    expect(await pod.get(ns, 'e-1')).toEqual({ ok: true, value: { id: 'e-1', v: 1 } });
    expect(pod.stats()[0]?.l1.hits).toBe(2);

    unwrap(await w.fleet.endWalk(ns, 'e-*'));
    await waitUntil('the pod reloads e-1 after the event', async () => {
      const r = unwrap(await pod.get(ns, 'e-1'));
      return r?.v === 2 ? true : undefined;
    });
    expect(calls.one).toBe(1);
    expect(await pod.get(ns, 'keep')).toEqual({ ok: true, value: { id: 'keep', v: 1 } });
    expect(calls.one).toBe(1);
  });

  it('fences a read-through fill in another pod that began loading before beginWalk', async () => {
    const p = 'fw-fence:';
    const called = deferred<void>();
    const gate = deferred<void>();
    const { ns } = source('fenced', {
      hold: async () => {
        called.resolve();
        await gate.promise;
      },
    });
    const a = await newCache(p);
    const b = await newCache(p);
    const reading = b.get(ns, 'f1');
    await called.promise;
    const match = unwrap(await a.fleet.beginWalk(ns, 'f*'));
    await walk(a, match);
    gate.resolve();
    expect(await reading).toEqual({ ok: true, value: { id: 'f1', v: 1 } });
    expect(await raw.get(`${p}fenced:v1:f1`)).toBeNull();
    expect(b.stats()[0]?.fencedFills).toBe(1);
    // A fill that starts after the walk began writes as usual.
    unwrap(await b.get(ns, 'f2'));
    expect(await value(p, ns, 'f2')).toEqual({ id: 'f2', v: 1 });
  });
});

describe('Redis going away while a warm loads', () => {
  it('returns an error without leaving an unhandled rejection behind', async () => {
    const own = await startRedis();
    const w = createCache({
      impl: 'tiered',
      redis: { mode: 'single', url: own.url },
      prefix: 'fw-down:',
      bus: { enabled: false },
      breaker: { cooldownMs: 60_000 },
    });
    await w.start();
    const l2 = w.store instanceof TieredStore ? w.store.l2 : undefined;
    const { ns } = source('item', {
      during: async () => {
        await own.stop();
        await waitUntil('the breaker opens', async () => (l2?.breakerState === 'open' ? true : undefined));
      },
    });
    // Vitest's own listeners would report the rejection outside this test: collect it here instead.
    const vitestListeners = process.listeners('unhandledRejection');
    const unhandled: string[] = [];
    const collect = (e: unknown) => unhandled.push(e instanceof Error ? e.message : String(e));
    process.removeAllListeners('unhandledRejection');
    process.on('unhandledRejection', collect);
    try {
      const r = await w.fleet.warm(ns, ['a', 'b']);
      expect(!r.ok && r.error.code).toBe('E_CACHE_L2_UNAVAILABLE');
      await new Promise((res) => setTimeout(res, 200));
    } finally {
      process.off('unhandledRejection', collect);
      for (const l of vitestListeners) process.on('unhandledRejection', l);
      await w.close();
    }
    expect(unhandled).toEqual([]);
  });
});

describe('Cluster (3 masters)', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  const mine: Cache[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
    client = new Cluster([...cluster.nodes]);
    await new Promise((resolve) => client.once('ready', resolve));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(mine.map((c) => c.close()));
    client?.disconnect();
    await cluster?.stop();
  });
  async function onCluster(prefix: string): Promise<Cache> {
    const c = await newCache(prefix, { redis: { mode: 'cluster', nodes: [...cluster.nodes] } });
    mine.push(c);
    return c;
  }
  const clusterCount = (match: string) => countKeys(client.nodes('master'), match);

  it('lists 3 masters; warms 3,000 ids, and a walk over every master removes them all', async () => {
    const p = 'fw-cl:';
    const { ns } = source('item');
    const c = await onCluster(p);
    const masters = unwrap(c.fleet.masters());
    expect(new Set(masters).size).toBe(3);
    const nodes = cluster.nodes.map((n) => `${n.host}:${n.port}`);
    for (const m of masters) expect(nodes).toContain(m);
    expect(unwrap(await c.fleet.warm(ns, range(3000, 'c')))).toMatchObject({ written: 3000, changed: 0 });
    expect(await clusterCount(`${p}item:v1:*`)).toBe(3000);
    const match = unwrap(await c.fleet.beginWalk(ns, '*'));
    const per = [];
    for (const m of masters) per.push((await walk(c, match, { master: m })).unlinked);
    expect(per.reduce((s, n) => s + n, 0)).toBe(3000);
    for (const n of per) expect(n).toBeGreaterThan(0);
    expect(await clusterCount(`${p}item:v1:*`)).toBe(0);
  });

  it('does not overwrite a set made while it loaded, and reloads after a walk began', async () => {
    const p = 'fw-cl-newer:';
    const w = await onCluster(p);
    const o = await onCluster(p);
    const { ns, calls, db } = source('item', {
      during: async (call, ns) => {
        if (call === 1) await o.set(ns, 'k1', { id: 'k1', v: 99 });
        if (call === 2) {
          db.v = 3;
          unwrap(await o.fleet.beginWalk(ns, '*'));
        }
      },
    });
    expect(unwrap(await w.fleet.warm(ns, ['k1', 'k2']))).toMatchObject({ written: 1, changed: 1 });
    expect(await liveValue(client, `${p}item:v1:k1`)).toEqual({ id: 'k1', v: 99 });
    expect(await liveValue(client, `${p}item:v1:k2`)).toEqual({ id: 'k2', v: 1 });

    const r = unwrap(await w.fleet.warm(ns, range(20, 'r')));
    expect(r).toMatchObject({ written: 20, overtaken: false });
    expect(calls.many).toBe(3);
    for (const id of range(20, 'r'))
      expect(await liveValue(client, `${p}item:v1:${id}`)).toEqual({ id, v: 3 });
  });
});
