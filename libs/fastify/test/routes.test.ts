import { cachesOn, startRedis, waitUntil } from '@cachefleet/test';
import type { Cache } from '@cachefleet/tiered-cache';
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CachefleetRoutesOptions, cachefleetRoutes, etagOf, responseNamespace } from '../src/index.js';

/*
 * The plugin on two "pods" (two caches, two Fastify apps) over one real Redis: what a handler
 * returns is stored once and served by both, an invalidation reaches both, and what is not a
 * cacheable 200 goes through untouched.
 */
const server = await startRedis();
const caches = cachesOn(server.url);
afterAll(async () => {
  await caches.closeAll();
  await server.stop();
});

interface Item {
  readonly id: string;
  readonly name: string;
  readonly group: string;
}

let seq = 0;

/** One source of truth, two pods serving it through the plugin; `runs` counts handler calls per id. */
async function fleet(nsOptions: Partial<Parameters<typeof responseNamespace>[0]> = {}) {
  const prefix = `fy${++seq}:`;
  const source = new Map<string, Item>();
  const runs = new Map<string, number>();
  const ns = responseNamespace({ name: 'item-page', ttl: { l1: 60, l2: 300 }, ...nsOptions });
  const textNs = responseNamespace({ name: 'item-text', ttl: { l1: 60, l2: 300 } });
  const createdNs = responseNamespace({ name: 'created', ttl: { l1: 60, l2: 300 } });
  let failing = false;
  const app = async (cache: Cache): Promise<FastifyInstance> => {
    const a = Fastify();
    await a.register(async (scope) => {
      await scope.register(cachefleetRoutes, {
        cache,
        namespace: ns,
        key: (req) => (req.params as { id?: string }).id,
        tags: (_req, body) => [`group:${(body as Item).group}`],
      });
      scope.get('/items/:id', async (req, reply) => {
        const { id } = req.params as { id: string };
        runs.set(id, (runs.get(id) ?? 0) + 1);
        if (failing) throw new Error('the source is down');
        await new Promise((r) => setTimeout(r, 20));
        const item = source.get(id);
        if (item === undefined) return reply.code(404).send({ error: 'not_found' });
        return item;
      });
      scope.get('/live/:id', { config: { cachefleet: false } }, async (req) => {
        const { id } = req.params as { id: string };
        runs.set(`live:${id}`, (runs.get(`live:${id}`) ?? 0) + 1);
        return { id };
      });
    });
    // Each further cached route in a scope of its own, with its own namespace.
    await a.register(async (scope) => {
      await scope.register(cachefleetRoutes, {
        cache,
        namespace: textNs,
        key: (req) => (req.params as { id?: string }).id,
      });
      scope.get('/items/:id/text', async (req) => `item ${(req.params as { id: string }).id}`);
    });
    await a.register(async (scope) => {
      await scope.register(cachefleetRoutes, {
        cache,
        namespace: createdNs,
        key: (req) => (req.params as { id?: string }).id,
      });
      scope.get('/created/:id', async (_req, reply) => {
        reply.code(201);
        return { created: true };
      });
    });
    await a.ready();
    return a;
  };
  const cacheA = await caches.open(prefix);
  const cacheB = await caches.open(prefix);
  const a = await app(cacheA);
  const b = await app(cacheB);
  return {
    ns,
    source,
    runs,
    cacheA,
    a,
    b,
    fail: (on: boolean) => {
      failing = on;
    },
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

describe('cachefleetRoutes', () => {
  let f: Awaited<ReturnType<typeof fleet>>;
  beforeAll(async () => {
    f = await fleet();
  });
  afterAll(async () => f.close());

  it('a miss runs the handler once and stores the 200 with its ETag; hits and 304s do not run it', async () => {
    f.source.set('1', { id: '1', name: 'one', group: 'g1' });
    const first = await f.a.inject({ method: 'GET', url: '/items/1' });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ id: '1', name: 'one', group: 'g1' });
    expect(first.headers['cache-status']).toBe('cachefleet; fwd=miss; stored');
    expect(first.headers.etag).toBe(etagOf(first.body));
    expect(first.headers['content-type']).toBe('application/json; charset=utf-8');
    const again = await f.a.inject({ method: 'GET', url: '/items/1' });
    expect(again.headers['cache-status']).toBe('cachefleet; hit');
    expect(again.body).toBe(first.body);
    expect(again.headers['content-type']).toBe(first.headers['content-type']);
    const revalidated = await f.a.inject({
      method: 'GET',
      url: '/items/1',
      headers: { 'if-none-match': `"other", W/${first.headers.etag}` },
    });
    expect(revalidated.statusCode).toBe(304);
    expect(revalidated.body).toBe('');
    const head = await f.a.inject({ method: 'HEAD', url: '/items/1' });
    expect(head.statusCode).toBe(200);
    expect(head.headers.etag).toBe(first.headers.etag);
    // The other pod reads the entry from Redis: no handler run there either.
    const other = await f.b.inject({ method: 'GET', url: '/items/1' });
    expect(other.headers['cache-status']).toBe('cachefleet; hit');
    expect(other.body).toBe(first.body);
    expect(f.runs.get('1')).toBe(1);
  });

  it('concurrent misses of one key run the handler once in the pod', async () => {
    f.source.set('2', { id: '2', name: 'two', group: 'g1' });
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => f.a.inject({ method: 'GET', url: '/items/2' })),
    );
    expect(replies.map((r) => r.statusCode)).toEqual(replies.map(() => 200));
    expect(new Set(replies.map((r) => r.body)).size).toBe(1);
    expect(f.runs.get('2')).toBe(1);
  });

  it('an invalidation by tag on one pod makes both serve the new response', async () => {
    f.source.set('3', { id: '3', name: 'three', group: 'g3' });
    for (const app of [f.a, f.b]) await app.inject({ method: 'GET', url: '/items/3' });
    f.source.set('3', { id: '3', name: 'three, renamed', group: 'g3' });
    const d = await f.cacheA.invalidateTags(f.ns, ['group:g3']);
    expect(d.ok).toBe(true);
    for (const app of [f.a, f.b]) {
      await waitUntil('the pod to serve the new name', async () => {
        const r = await app.inject({ method: 'GET', url: '/items/3' });
        return (r.json() as Item).name === 'three, renamed' ? true : undefined;
      });
    }
  });

  it('what is not a returned 200 is neither stored nor changed', async () => {
    const before = f.runs.get('404') ?? 0;
    for (let i = 0; i < 2; i++) {
      const missing = await f.a.inject({ method: 'GET', url: '/items/404' });
      expect(missing.statusCode).toBe(404);
      expect(missing.json()).toEqual({ error: 'not_found' });
      expect(missing.headers['cache-status']).toBeUndefined();
    }
    expect(f.runs.get('404')).toBe(before + 2);
    const created = await f.a.inject({ method: 'GET', url: '/created/1' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toEqual({ created: true });
    expect(created.headers['cache-status']).toBeUndefined();
    for (let i = 0; i < 2; i++) await f.a.inject({ method: 'GET', url: '/live/1' });
    expect(f.runs.get('live:1')).toBe(2);
    // An id the namespace refuses (glob characters) is served, uncached.
    const odd = await f.a.inject({ method: 'GET', url: `/items/${encodeURIComponent('a*b')}` });
    expect(odd.statusCode).toBe(404);
    const text = await f.a.inject({ method: 'GET', url: '/items/7/text' });
    expect(text.body).toBe('item 7');
    expect(text.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await f.a.inject({ method: 'GET', url: '/items/7/text' })).headers['cache-status']).toBe(
      'cachefleet; hit',
    );
  });

  it('a handler that throws answers as without the plugin (500, nothing stored)', async () => {
    f.fail(true);
    try {
      const r = await f.a.inject({ method: 'GET', url: '/items/99' });
      expect(r.statusCode).toBe(500);
      expect(r.headers['cache-status']).toBeUndefined();
    } finally {
      f.fail(false);
    }
  });

  it('generated paths and If-None-Match headers: never a 5xx', async () => {
    f.source.set('5', { id: '5', name: 'five', group: 'g5' });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constant('5'), fc.string({ maxLength: 40 })),
        fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
        async (id, inm) => {
          const r = await f.a.inject({
            method: 'GET',
            url: `/items/${encodeURIComponent(id)}`,
            headers: inm === undefined ? {} : { 'if-none-match': inm.replace(/[\r\n]/g, '') },
          });
          expect([200, 304, 404]).toContain(r.statusCode);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('cachefleetRoutes with grace', () => {
  it('serves the stored response, marked stale, when the handler fails after the TTL', async () => {
    const g = await fleet({ ttl: { l1: 0.2, l2: 0.2 }, grace: { seconds: 60 } });
    try {
      g.source.set('1', { id: '1', name: 'one', group: 'g1' });
      const fresh = await g.a.inject({ method: 'GET', url: '/items/1' });
      g.fail(true);
      const stale = await waitUntil('the entry to expire and be served stale', async () => {
        const r = await g.a.inject({ method: 'GET', url: '/items/1' });
        return r.headers.warning !== undefined ? r : undefined;
      });
      expect(stale.statusCode).toBe(200);
      expect(stale.body).toBe(fresh.body);
      expect(stale.headers.warning).toBe('110 - "Response is Stale"');
      expect(Number(stale.headers.age)).toBeGreaterThanOrEqual(0);
    } finally {
      await g.close();
    }
  });
});

describe('options and misuse', () => {
  it('bad options are refused with E_CACHE_CONFIG naming the field', async () => {
    const cache = await caches.open(`fy${++seq}:`);
    const app = Fastify();
    const bad = { cache, namespace: { name: 'x' }, key: () => '1' } as unknown as CachefleetRoutesOptions;
    await expect(app.register(cachefleetRoutes, bad).ready()).rejects.toMatchObject({
      code: 'E_CACHE_CONFIG',
      message: expect.stringContaining('namespace'),
    });
    await app.close();
  });

  it('two cached routes under one registration are refused (they would share entries)', async () => {
    const cache = await caches.open(`fy${++seq}:`);
    const app = Fastify();
    const namespace = responseNamespace({ name: 'shared-page', ttl: { l1: 5, l2: 5 } });
    const start = async () => {
      await app.register(async (scope) => {
        await scope.register(cachefleetRoutes, { cache, namespace, key: () => '1' });
        scope.get('/a', async () => ({ a: 1 }));
        scope.get('/b', async () => ({ b: 1 }));
      });
      await app.ready();
    };
    await expect(start()).rejects.toMatchObject({
      code: 'E_CACHE_CONFIG',
      message: expect.stringContaining('/b would share the entries of /a'),
    });
    await app.close();
  });

  it('a response namespace is filled by its route only: a direct read is a coded loader failure', async () => {
    const cache = await caches.open(`fy${++seq}:`);
    const ns = responseNamespace({ name: 'direct-page', ttl: { l1: 5, l2: 5 } });
    const r = await cache.get(ns, '1');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ code: 'E_CACHE_LOADER_FAILED' });
  });
});
