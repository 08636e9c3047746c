import { createHash } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SKIP_PREFIXES, edgeCaching, ifNoneMatchMatches, markPersonalised } from '../src/edge.js';

const PRODUCT = { id: 7, name: 'kettle', price: 25 };
const PRODUCT_BODY = JSON.stringify(PRODUCT);
const PRODUCT_ETAG = `"${createHash('sha1').update(PRODUCT_BODY).digest('base64url')}"`;
const CACHE_CONTROL = 'public, max-age=60, must-revalidate';

let app: FastifyInstance;
let registry: Registry;

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const found = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return found?.value ?? 0;
}

/** GET /api/products/7 with `If-None-Match: etag`. */
const getProduct = (etag: string) =>
  app.inject({ method: 'GET', url: '/api/products/7', headers: { 'if-none-match': etag } });

beforeEach(async () => {
  registry = new Registry();
  app = Fastify();
  edgeCaching(app, { registry });
  app.get('/api/products/:id', async () => PRODUCT);
  app.post('/api/products', async () => PRODUCT);
  app.get('/api/missing', async (_req, reply) => reply.code(404).send({ error: 'not found' }));
  app.get('/api/created', async (_req, reply) => reply.code(201).send(PRODUCT));
  app.get('/api/user/me', async () => ({ id: 'u1' }));
  app.get('/api/users', async () => [{ id: 'u1' }]);
  app.get('/api/profile', async () => ({ id: 'u1' }));
  app.get('/api/notifications/unread', async () => []);
  app.get('/api/with-cookie', async (_req, reply) =>
    reply.header('set-cookie', 'sid=1; HttpOnly').send(PRODUCT),
  );
  app.get('/api/private', async (_req, reply) =>
    reply.header('cache-control', 'private, max-age=30').send(PRODUCT),
  );
  app.get('/api/no-store', async (_req, reply) => reply.header('cache-control', 'no-store').send(PRODUCT));
  app.get('/api/short', async (_req, reply) =>
    reply.header('cache-control', 'public, max-age=5').send(PRODUCT),
  );
  app.get('/api/vary', async (_req, reply) => reply.header('vary', 'Accept-Encoding').send(PRODUCT));
  app.get('/api/marked', async (_req, reply) => {
    markPersonalised(reply);
    return PRODUCT;
  });
  app.get('/api/config-personalised', { config: { edgeCache: 'personalised' } }, async () => PRODUCT);
  app.get('/api/catalogue', { config: { edgeCache: 'public' } }, async () => PRODUCT);
  app.get('/api/text', async (_req, reply) => reply.type('text/plain').send(Buffer.from('plain bytes')));
  app.get('/api/own-etag', async (_req, reply) => reply.header('etag', 'W/"v42"').send(PRODUCT));
  await app.ready();
});

afterEach(async () => {
  await app.close();
});

describe('edgeCaching: cacheable responses', () => {
  it('gives a GET 200 a strong sha1/base64url ETag, public Cache-Control and Vary: Authorization', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/products/7' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(PRODUCT_BODY);
    expect(res.headers.etag).toBe(PRODUCT_ETAG);
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{27}"$/);
    expect(res.headers['cache-control']).toBe(CACHE_CONTROL);
    expect(res.headers.vary).toBe('Authorization');
  });

  it('gives the same body the same ETag and a different body another', async () => {
    const a = await app.inject({ method: 'GET', url: '/api/products/7' });
    const b = await app.inject({ method: 'GET', url: '/api/products/8' });
    const c = await app.inject({ method: 'GET', url: '/api/text' });
    expect(a.headers.etag).toBe(b.headers.etag);
    expect(c.headers.etag).toBe(`"${createHash('sha1').update('plain bytes').digest('base64url')}"`);
    expect(c.headers.etag).not.toBe(a.headers.etag);
  });

  it('answers 304 with an empty body and keeps ETag, Cache-Control and Vary when If-None-Match matches', async () => {
    const res = await getProduct(PRODUCT_ETAG);
    expect(res.statusCode).toBe(304);
    expect(res.body).toBe('');
    expect(res.headers.etag).toBe(PRODUCT_ETAG);
    expect(res.headers['cache-control']).toBe(CACHE_CONTROL);
    expect(res.headers.vary).toBe('Authorization');
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
  });

  it('matches a tag inside a list, a weak tag, and *', async () => {
    for (const header of [
      `"nope", ${PRODUCT_ETAG}`,
      `"nope",${PRODUCT_ETAG} , "other"`,
      `W/${PRODUCT_ETAG}`,
      `"a", W/${PRODUCT_ETAG}`,
      '*',
    ]) {
      const res = await getProduct(header);
      expect(res.statusCode, header).toBe(304);
    }
  });

  it('answers 200 with the body when If-None-Match does not match', async () => {
    for (const header of ['"stale"', '"a", "b"', 'W/"stale"', PRODUCT_ETAG.slice(1, -1), '']) {
      const res = await getProduct(header);
      expect(res.statusCode, header).toBe(200);
      expect(res.body).toBe(PRODUCT_BODY);
      expect(res.headers.etag).toBe(PRODUCT_ETAG);
    }
  });

  it('serves HEAD with the same headers as GET and a 304 when the tag matches', async () => {
    const head = await app.inject({ method: 'HEAD', url: '/api/products/7' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers.etag).toBe(PRODUCT_ETAG);
    expect(head.headers['cache-control']).toBe(CACHE_CONTROL);
    expect(head.headers.vary).toBe('Authorization');
    const conditional = await app.inject({
      method: 'HEAD',
      url: '/api/products/7',
      headers: { 'if-none-match': PRODUCT_ETAG },
    });
    expect(conditional.statusCode).toBe(304);
    expect(conditional.body).toBe('');
    expect(conditional.headers.etag).toBe(PRODUCT_ETAG);
    expect(conditional.headers['cache-control']).toBe(CACHE_CONTROL);
    // Only the length a 200 would have had, never a stale 0 (RFC 9110 §8.6).
    expect(conditional.headers['content-length']).toBe(String(Buffer.byteLength(PRODUCT_BODY)));
  });

  it('keeps a Cache-Control or ETag the handler set, and appends Authorization to its Vary', async () => {
    const short = await app.inject({ method: 'GET', url: '/api/short' });
    expect(short.headers['cache-control']).toBe('public, max-age=5');
    expect(short.headers.etag).toBe(PRODUCT_ETAG);
    const vary = await app.inject({ method: 'GET', url: '/api/vary' });
    expect(vary.headers.vary).toBe('Accept-Encoding, Authorization');
    const own = await app.inject({
      method: 'GET',
      url: '/api/own-etag',
      headers: { 'if-none-match': '"v42"' },
    });
    expect(own.statusCode).toBe(304);
    expect(own.headers.etag).toBe('W/"v42"');
  });

  it('caches a route declared public even when the request carries Authorization', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/catalogue',
      headers: { authorization: 'Bearer t', 'if-none-match': PRODUCT_ETAG },
    });
    expect(res.statusCode).toBe(304);
    expect(res.headers.etag).toBe(PRODUCT_ETAG);
    expect(res.headers.vary).toBe('Authorization');
  });
});

describe('edgeCaching: responses left alone', () => {
  const untouched = (headers: Record<string, string | string[] | number | undefined>) => {
    expect(headers.etag).toBeUndefined();
    expect(headers.vary).toBeUndefined();
    expect(String(headers['cache-control'] ?? '')).not.toContain('public');
  };

  it('skips the default prefixes, longer names under them, and the route pattern of an encoded path', async () => {
    for (const url of [
      '/api/user/me',
      '/api/users',
      '/api/profile',
      '/api/notifications/unread',
      '/api/%75ser/me',
    ]) {
      const res = await app.inject({ method: 'GET', url, headers: { 'if-none-match': '*' } });
      expect(res.statusCode, url).toBe(200);
      untouched(res.headers);
    }
  });

  it('skips POST, non-200 statuses and unmatched routes', async () => {
    const post = await app.inject({ method: 'POST', url: '/api/products' });
    expect(post.statusCode).toBe(200);
    untouched(post.headers);
    for (const url of ['/api/missing', '/api/created', '/nowhere']) {
      const res = await app.inject({ method: 'GET', url, headers: { 'if-none-match': '*' } });
      expect(res.statusCode, url).not.toBe(304);
      untouched(res.headers);
    }
  });

  it('skips responses that set a cookie or say private / no-store', async () => {
    const cookie = await app.inject({ method: 'GET', url: '/api/with-cookie' });
    expect(cookie.headers['set-cookie']).toBe('sid=1; HttpOnly');
    untouched(cookie.headers);
    const priv = await app.inject({ method: 'GET', url: '/api/private' });
    expect(priv.headers['cache-control']).toBe('private, max-age=30');
    untouched(priv.headers);
    const noStore = await app.inject({ method: 'GET', url: '/api/no-store' });
    expect(noStore.headers['cache-control']).toBe('no-store');
    untouched(noStore.headers);
  });

  it('skips requests with Authorization on routes not declared public', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/products/7',
      headers: { authorization: 'Bearer t', 'if-none-match': PRODUCT_ETAG },
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(PRODUCT_BODY);
    untouched(res.headers);
  });

  it('skips replies a handler marked personalised and routes configured personalised', async () => {
    for (const url of ['/api/marked', '/api/config-personalised']) {
      const res = await app.inject({ method: 'GET', url, headers: { 'if-none-match': '*' } });
      expect(res.statusCode, url).toBe(200);
      untouched(res.headers);
    }
  });
});

describe('edgeCaching: metrics', () => {
  it('counts candidate requests, responses given an ETag, and 304s', async () => {
    const route = '/api/products/:id';
    await app.inject({ method: 'GET', url: '/api/products/1' });
    await app.inject({ method: 'GET', url: '/api/products/2', headers: { 'if-none-match': PRODUCT_ETAG } });
    await app.inject({ method: 'HEAD', url: '/api/products/3' });
    await app.inject({ method: 'GET', url: '/api/products/4', headers: { authorization: 'Bearer t' } });
    await app.inject({ method: 'POST', url: '/api/products' });
    await app.inject({ method: 'GET', url: '/api/user/me' });
    await app.inject({ method: 'GET', url: '/api/marked' });

    expect(await counter('cachefleet_edge_candidate_requests_total', { route, method: 'GET' })).toBe(3);
    expect(await counter('cachefleet_edge_candidate_requests_total', { route, method: 'HEAD' })).toBe(1);
    expect(
      await counter('cachefleet_edge_candidate_requests_total', { route: '/api/marked', method: 'GET' }),
    ).toBe(1);
    expect(
      await counter('cachefleet_edge_candidate_requests_total', { route: '/api/user/me', method: 'GET' }),
    ).toBe(0);
    expect(
      await counter('cachefleet_edge_candidate_requests_total', { route: '/api/products', method: 'POST' }),
    ).toBe(0);

    expect(await counter('cachefleet_edge_cacheable_responses_total', { route, method: 'GET' })).toBe(2);
    expect(await counter('cachefleet_edge_cacheable_responses_total', { route, method: 'HEAD' })).toBe(1);
    expect(
      await counter('cachefleet_edge_cacheable_responses_total', { route: '/api/marked', method: 'GET' }),
    ).toBe(0);
    expect(await counter('cachefleet_edge_etag_matches_total', { route })).toBe(1);
  });
});

describe('edgeCaching: options', () => {
  it('takes max-age and a skip list of its own', async () => {
    const reg = new Registry();
    const custom = Fastify();
    edgeCaching(custom, {
      registry: reg,
      maxAgeSeconds: 300,
      skipPrefixes: [...DEFAULT_SKIP_PREFIXES, '/api/cart'],
    });
    custom.get('/api/cart', async () => []);
    custom.get('/api/items', async () => []);
    try {
      const cart = await custom.inject({ method: 'GET', url: '/api/cart' });
      expect(cart.headers.etag).toBeUndefined();
      const items = await custom.inject({ method: 'GET', url: '/api/items' });
      expect(items.headers['cache-control']).toBe('public, max-age=300, must-revalidate');
    } finally {
      await custom.close();
    }
  });

  it('rejects bad options with an error naming the field', () => {
    const bad = Fastify();
    expect(() => edgeCaching(bad, { registry: new Registry(), maxAgeSeconds: -1 })).toThrow(
      /edgeCaching: maxAgeSeconds:/,
    );
    expect(() => edgeCaching(bad, { registry: new Registry(), maxAgeSeconds: 1.5 })).toThrow(
      expect.objectContaining({ name: 'ApiError', code: 'E_API_EDGE_OPTIONS' }),
    );
    expect(() => edgeCaching(bad, { registry: new Registry(), skipPrefixes: ['api/user'] })).toThrow(
      /edgeCaching: skipPrefixes\.0:/,
    );
    const notARegistry = { name: 'not a registry' } as unknown as Registry;
    expect(() => edgeCaching(bad, { registry: notARegistry })).toThrow(/edgeCaching: registry:/);
  });
});

describe('ifNoneMatchMatches (RFC 9110 weak comparison)', () => {
  it.each([
    ['"a"', '"a"', true],
    ['W/"a"', '"a"', true],
    ['"a"', 'W/"a"', true],
    ['W/"a"', 'W/"a"', true],
    ['"b", "a"', '"a"', true],
    ['"x,y", "a"', '"a"', true],
    ['"x,y"', '"x"', false],
    ['*', '"a"', true],
    ['"A"', '"a"', false],
    ['a', '"a"', false],
    ['', '"a"', false],
  ])('%s against %s → %s', (header, etag, expected) => {
    expect(ifNoneMatchMatches(header, etag)).toBe(expected);
  });

  it('reads repeated header lines and an absent header', () => {
    expect(ifNoneMatchMatches(['"b"', '"a"'], '"a"')).toBe(true);
    expect(ifNoneMatchMatches(undefined, '"a"')).toBe(false);
  });
});
