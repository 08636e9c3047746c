/** Admin auth (bearer token, dashboard, login cookie), configuration rules and a pod that cannot start. */

import { startRedis, waitUntil } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadApiConfig, startApi } from '../src/index.js';
import { api, apiEnv, call, logger, startExtraApi, TOKEN, useApiSuite } from './fixture.js';

useApiSuite();

describe('2. admin auth', () => {
  const adminGets = ['/cache/stats', '/internal/cache', '/jobs/anything'];

  it('refuses admin routes without a token (401 + WWW-Authenticate) or with a wrong one', async () => {
    for (const path of adminGets) {
      const none = await call(path);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate'), path).toMatch(/^Bearer realm=/);
      const wrong = await call(path, { token: `${TOKEN}x` });
      expect(wrong.status, path).toBe(401);
      expect(wrong.headers.get('www-authenticate'), path).toMatch(/^Bearer /);
      // A token given another way (Basic, bare) is not a bearer token.
      const basic = await call(path, { headers: { authorization: `Basic ${TOKEN}` } });
      expect(basic.status, path).toBe(401);
    }
    for (const [method, path, body] of [
      ['POST', '/cache/invalidate', { namespace: 'product', all: true }],
      ['POST', '/cache/prewarm', { type: 'all' }],
      ['PATCH', '/products/1', { price_cents: 1 }],
    ] as const) {
      const res = await call(path, { method, body });
      expect(res.status, `${method} ${path}`).toBe(401);
      const wrong = await call(path, { method, body, token: 'not-the-admin-token' });
      expect(wrong.status, `${method} ${path}`).toBe(401);
    }
  });

  it('opens admin routes with the right token', async () => {
    expect((await call('/cache/stats', { token: true })).status).toBe(200);
    expect((await call('/internal/cache', { token: true })).status).toBe(200);
  });

  it('guards the dashboard: 401 without a token, the HTML page with the bearer token', async () => {
    const none = await call('/admin/queues');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer /);
    expect((await call('/admin/queues', { token: 'wrong-token-wrong-token' })).status).toBe(401);
    // The dashboard's JSON API is behind the same guard.
    expect((await call('/admin/queues/api/queues')).status).toBe(401);

    const page = await call('/admin/queues', { token: true });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.text).toContain('<html');
  });

  it('GET /admin/login?token= sets an HttpOnly cookie and redirects; the cookie opens the dashboard', async () => {
    const login = await call(`/admin/login?token=${encodeURIComponent(TOKEN)}`);
    expect([302, 303]).toContain(login.status);
    expect(login.headers.get('location')).toBe('/admin/queues');
    const setCookie = login.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^cf_admin=/);
    expect(setCookie).toMatch(/;\s*HttpOnly/i);
    expect(setCookie).toMatch(/;\s*SameSite=Strict/i);
    const cookie = setCookie.split(';')[0] ?? '';

    const page = await call('/admin/queues', { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const queues = await call('/admin/queues/api/queues', { headers: { cookie } });
    expect(queues.status).toBe(200);
    // Reached with the cookie (no Authorization header), an admin answer must never be marked
    // cacheable by shared caches: it would be served to the next anonymous caller.
    for (const res of [page, queues, await call('/cache/stats', { headers: { cookie } })]) {
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control') ?? '').not.toMatch(/public/);
    }
    // Another cookie (or a wrong value) is not the token.
    expect((await call('/admin/queues', { headers: { cookie: 'cf_admin=nope' } })).status).toBe(401);
    expect((await call('/admin/queues', { headers: { cookie: `other=${TOKEN}` } })).status).toBe(401);
  });

  it('refuses /admin/login with a wrong or missing token (401, no cookie)', async () => {
    for (const q of ['?token=wrong-token-wrong-token', '?token=', '']) {
      const res = await call(`/admin/login${q}`);
      expect(res.status, q).toBe(401);
      expect(res.headers.get('set-cookie'), q).toBeNull();
    }
  });
});

describe('3. configuration', () => {
  it('refuses to start without ADMIN_TOKEN, naming it; dev mode generates one', () => {
    expect(() => loadApiConfig({})).toThrow(/ADMIN_TOKEN/);
    expect(() => loadApiConfig({})).toThrow(expect.objectContaining({ code: 'E_API_CONFIG' }));
    const dev = loadApiConfig({ API_DEV_MODE: 'true' });
    expect(dev.generatedToken).toBe(true);
    expect(dev.adminToken.length).toBeGreaterThanOrEqual(16);
    expect(loadApiConfig({ API_DEV_MODE: 'true' }).adminToken).not.toBe(dev.adminToken);
    const given = loadApiConfig({ ADMIN_TOKEN: TOKEN, API_DEV_MODE: 'true' });
    expect(given).toMatchObject({ adminToken: TOKEN, generatedToken: false });
  });

  it('refuses a short ADMIN_TOKEN and other bad values, naming the variable', () => {
    expect(() => loadApiConfig({ ADMIN_TOKEN: 'short' })).toThrow(/ADMIN_TOKEN/);
    expect(() => loadApiConfig({ ADMIN_TOKEN: 'x'.repeat(15) })).toThrow(/ADMIN_TOKEN/);
    expect(loadApiConfig({ ADMIN_TOKEN: 'x'.repeat(16) }).adminToken).toBe('x'.repeat(16));
    expect(() => loadApiConfig({ ADMIN_TOKEN: TOKEN, API_PORT: '70000' })).toThrow(/^API_PORT: /);
    expect(() => loadApiConfig({ ADMIN_TOKEN: TOKEN, API_PORT: '70000' })).toThrow(
      expect.objectContaining({ code: 'E_API_CONFIG' }),
    );
    expect(() => loadApiConfig({ ADMIN_TOKEN: TOKEN, DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => loadApiConfig({ ADMIN_TOKEN: TOKEN, API_CRITICAL_WARM: 'maybe' })).toThrow(
      /API_CRITICAL_WARM/,
    );
    expect(() => loadApiConfig({ ADMIN_TOKEN: TOKEN, API_DEV_MODE: 'maybe' })).toThrow(/API_DEV_MODE/);
    const config = loadApiConfig({ ADMIN_TOKEN: TOKEN });
    expect(config).toMatchObject({ host: '127.0.0.1', port: 3000, production: false, criticalWarm: true });
    expect(loadApiConfig({ ADMIN_TOKEN: TOKEN, NODE_ENV: 'production' }).production).toBe(true);
  });

  it('GET /internal/cache answers the A7 status outside production', async () => {
    const res = await call('/internal/cache', { token: true });
    expect(res.status).toBe(200);
    const status = z
      .strictObject({
        enabled: z.boolean(),
        implName: z.string(),
        registeredAt: z.iso.datetime(),
        hits: z.number().int().min(0),
        misses: z.number().int().min(0),
        errors: z.number().int().min(0),
        hitRate: z.number().min(0).max(1),
      })
      .parse(res.json);
    expect(status.enabled).toBe(true);
    expect(status.implName).toBe('tiered');
  });

  it('hides GET /internal/cache in production (404, also with the token)', async () => {
    const prod = await startExtraApi({ NODE_ENV: 'production' });
    expect(prod.config.production).toBe(true);
    expect((await call('/internal/cache', { token: true, base: prod.url })).status).toBe(404);
    expect((await call('/internal/cache', { base: prod.url })).status).toBe(404);
    // The rest of the admin surface is still there.
    expect((await call('/cache/stats', { token: true, base: prod.url })).status).toBe(200);
  });
});

describe('3b. a pod that cannot start', () => {
  // BUG, fixed (apps/api/src/server.ts, startApi): when buildApp or app.listen throws (here EADDRINUSE),
  // the cache, the JobClient and the database pool opened before are never closed: their Redis
  // connections stay open. (Fixed.)
  it('startApi that cannot listen closes the Redis connections it opened', async () => {
    const spare = await startRedis();
    const probe = new Redis({ host: spare.host, port: spare.port, lazyConnect: true });
    probe.on('error', () => {});
    try {
      await probe.connect();
      const port = new URL(api.url).port;
      await expect(
        startApi(apiEnv({ API_PORT: port, CACHE_REDIS_URL: spare.url, QUEUE_REDIS_URL: spare.url }), logger),
      ).rejects.toThrow(/EADDRINUSE/);
      // Only the probe itself should remain connected.
      await waitUntil(
        'the failed pod closed its connections',
        async (note) => {
          const list = String(await probe.client('LIST'))
            .trim()
            .split('\n');
          note(`${list.length} clients`);
          return list.length === 1 ? true : undefined;
        },
        { timeoutMs: 3_000 },
      );
    } finally {
      probe.disconnect();
      await spare.stop();
    }
  });
});
