/** Admin auth (bearer token, dashboard, login cookie), configuration rules and a pod that cannot start. */

import { startRedis, waitUntil } from '@cachefleet/test';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadApiConfig, startApi } from '../src/index.js';
import { api, apiEnv, call, logger, startExtraApi, TOKEN, useApiSuite } from './fixture.js';

useApiSuite();

describe('2b. the dashboard titles jobs by what was asked (issue 10.8)', () => {
  it('`warm all`, `warm keys product (3)`, `invalidate pattern product 12*`: the BullMQ name stays', async () => {
    const asked = [
      ['/cache/prewarm', { type: 'all' }],
      ['/cache/prewarm', { type: 'critical' }],
      ['/cache/invalidate', { namespace: 'product', pattern: '12*' }],
      ['/cache/invalidate', { namespace: 'product', keys: ['1', '2', '3'] }],
    ] as const;
    for (const [path, body] of asked)
      expect((await call(path, { method: 'POST', body, token: true })).status, path).toBe(202);
    const titles = async (queue: string) => {
      const res = await call(
        `/admin/queues/api/queues?activeQueue=${queue}&status=latest&page=1&jobsPerPage=50`,
        {
          token: true,
        },
      );
      expect(res.status).toBe(200);
      const body = z
        .object({
          queues: z.array(z.object({ name: z.string(), jobs: z.array(z.object({ name: z.string() })) })),
        })
        .parse(res.json);
      return body.queues.find((q) => q.name === queue)?.jobs.map((j) => j.name) ?? [];
    };
    expect(await titles('warm')).toEqual(expect.arrayContaining(['warm all', 'warm critical']));
    expect(await titles('invalidate')).toEqual(
      expect.arrayContaining(['invalidate pattern product 12*', 'invalidate keys product (3)']),
    );
  });
});

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

  it('the system schedulers are read-only in the dashboard (remove and update refused, naming the setting)', async () => {
    for (const [method, path] of [
      ['PUT', '/admin/queues/api/queues/warm/job-schedulers/cachefleet-warm-hot/remove'],
      ['PATCH', '/admin/queues/api/queues/warm/job-schedulers/cachefleet-warm-hot'],
    ] as const) {
      const res = await call(path, { method, token: true, body: {} });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(z.object({ message: z.string() }).parse(res.json).message).toContain('SCHEDULE_WARM_HOT');
    }
    // Without the token, still 401 first.
    const anonymous = await call('/admin/queues/api/queues/warm/job-schedulers/cachefleet-warm-hot/remove', {
      method: 'PUT',
      body: {},
    });
    expect(anonymous.status).toBe(401);
    // Someone else's scheduler is theirs to manage (bull-board answers: 404, as there is none).
    const theirs = await call('/admin/queues/api/queues/warm/job-schedulers/their-own/remove', {
      method: 'PUT',
      token: true,
      body: {},
    });
    expect(theirs.status).toBe(404);
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

  it('GET /admin/login?token= sets a session cookie (not the token) for the dashboard only, and redirects', async () => {
    const login = await call(`/admin/login?token=${encodeURIComponent(TOKEN)}`);
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/admin/queues');
    const setCookie = login.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^cf_admin=\d+\.[\w-]{43};/);
    expect(setCookie).toMatch(/;\s*HttpOnly/i);
    expect(setCookie).toMatch(/;\s*SameSite=Strict/i);
    expect(setCookie).toMatch(/;\s*Path=\/admin(;|$)/);
    expect(setCookie).not.toContain(encodeURIComponent(TOKEN));
    const cookie = setCookie.split(';')[0] ?? '';

    const page = await call('/admin/queues', { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const queues = await call('/admin/queues/api/queues', { headers: { cookie } });
    expect(queues.status).toBe(200);
    // Reached with the cookie (no Authorization header), a dashboard answer must never be marked
    // cacheable by shared caches: it would be served to the next anonymous caller.
    for (const res of [page, queues]) expect(res.headers.get('cache-control') ?? '').not.toMatch(/public/);
    // BUG (issue 10.7): the cookie held the raw token and opened every admin route. It grants the
    // dashboard only: the admin API wants the bearer token.
    for (const [method, path] of [
      ['GET', '/cache/stats'],
      ['GET', '/internal/cache'],
      ['POST', '/cache/invalidate'],
      ['PATCH', '/products/1'],
    ] as const) {
      const res = await call(path, {
        method,
        headers: { cookie },
        ...(method === 'GET' ? {} : { body: {} }),
      });
      expect(res.status, `${method} ${path}`).toBe(401);
    }
    // The token itself as a cookie, a forged or expired session, another cookie: none is a session.
    for (const bad of [
      `cf_admin=${encodeURIComponent(TOKEN)}`,
      'cf_admin=nope',
      `cf_admin=${Date.now() + 60_000}.${'A'.repeat(43)}`,
      `cf_admin=1.${cookie.split('.')[1] ?? ''}`,
      `other=${cookie.slice('cf_admin='.length)}`,
    ]) {
      expect((await call('/admin/queues/api/queues', { headers: { cookie: bad } })).status, bad).toBe(401);
    }
  });

  it('a browser without a session is sent to the login form, which signs in by POST and goes back', async () => {
    const html = { accept: 'text/html,application/xhtml+xml' };
    const bounced = await call('/admin/queues/queue/warm?status=failed', { headers: html });
    expect(bounced.status).toBe(303);
    expect(bounced.headers.get('location')).toBe(
      `/admin/login?next=${encodeURIComponent('/admin/queues/queue/warm?status=failed')}`,
    );
    const form = await call('/admin/login?next=%2Fadmin%2Fqueues%2Fqueue%2Fwarm', { headers: html });
    expect(form.status).toBe(200);
    expect(form.text).toContain('<form method="post" action="/admin/login">');
    expect(form.text).toContain('name="next" value="/admin/queues/queue/warm"');

    const post = (body: string) =>
      call('/admin/login', {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
    const wrong = await post('token=wrong-token-wrong-token&next=%2Fadmin%2Fqueues');
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('That is not the admin token.');
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const right = await post(`token=${encodeURIComponent(TOKEN)}&next=%2Fadmin%2Fqueues%2Fqueue%2Fwarm`);
    expect(right.status).toBe(303);
    expect(right.headers.get('location')).toBe('/admin/queues/queue/warm');
    expect(right.headers.get('set-cookie')).toMatch(/^cf_admin=/);
    // `next` never leaves the dashboard (no open redirect), and the form escapes what it echoes.
    for (const next of ['https://evil.example/', '//evil.example/', '/products/1', '/admin/login']) {
      const r = await post(`token=${encodeURIComponent(TOKEN)}&next=${encodeURIComponent(next)}`);
      expect(r.headers.get('location'), next).toBe('/admin/queues');
    }
    const echoed = await call(`/admin/login?next=${encodeURIComponent('/admin/"><script>')}`, {
      headers: html,
    });
    expect(echoed.text).not.toContain('<script>');
    // A JSON client still gets the API's 401.
    expect((await call('/admin/queues/api/queues')).status).toBe(401);
  });

  it('refuses /admin/login?token= with a wrong or empty token (401, no cookie); without one it shows the form', async () => {
    for (const q of ['?token=wrong-token-wrong-token', '?token=']) {
      const res = await call(`/admin/login${q}`);
      expect(res.status, q).toBe(401);
      expect(res.headers.get('set-cookie'), q).toBeNull();
    }
    const form = await call('/admin/login');
    expect(form.status).toBe(200);
    expect(form.headers.get('set-cookie')).toBeNull();
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
