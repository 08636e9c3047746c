/**
 * The API pod end to end, in process: `startApi` from the environment (real HTTP on a free port),
 * PostgreSQL for the catalogue (a schema of its own, 2,000 products, dropped at the end), a private
 * redis-server as the cache and queue Redis, and a real worker (`startWorker`) serving the queues.
 * No mocks. Sections run in file order and share the pod:
 *
 *  1. product reads: JSON, L1 on the second read, 404, 400 naming `id`, batch reads
 *  1b. rollout: a control user's reads bypass the cache
 *  2. admin auth: bearer token, WWW-Authenticate, the dashboard, the login cookie
 *  3. configuration: ADMIN_TOKEN rules, dev mode; GET /internal/cache hidden in production
 *  3b. a pod that cannot listen
 *  4. write then invalidate: a PATCH is read back at once (not the cached row); bad bodies → 400
 *  6. prewarm: synchronous `all` (fills L2 for section 5), asynchronous `critical`, bad bodies
 *  5. pattern invalidation as a job: its slice, L2 keys gone; bad bodies; deduplication; 404
 *  7. /metrics, /healthz, /readyz
 *  9. critical warm enqueued at start
 *  8. degrade: Redis killed → reads from the database, still ready; Redis back → L2 again
 *     (late in the file: the restarted server has lost the queues)
 * 10. the embedded database (PGlite, no DATABASE_URL) shared on a loopback port
 *
 * Tests whose comment starts with `BUG` pin bugs this file found in the first version (each fixed;
 * the comment says where).
 */
import { randomBytes } from 'node:crypto';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { invalidateResultSchema, JobClient, loadQueueConfig, warmResultSchema } from '@cachefleet/jobs';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from '../../../test/helpers/index.js';
import { loadApiConfig, type RunningApi, startApi } from '../src/index.js';

const TAG = randomBytes(4).toString('hex');
const SCHEMA = `api_${TAG}`;
const PRODUCTS = 2_000;
const TOKEN = `api-test-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();
const CACHE_PREFIX = `api${TAG}:`;
const QUEUE_PREFIX = `apiq${TAG}`;
const KEY_BASE = 'product:v1:';
const logger = pino({ level: 'silent' });

let redis: RedisProcess;
let raw: Redis;
let db: Db;
let api: RunningApi;
let worker: RunningWorker;
/** Every API started by a test, closed in afterAll (also when the test failed). */
const extraApis: RunningApi[] = [];
const clients: JobClient[] = [];
let seq = 0;

/** The environment of an API pod of this file; `extra` overrides (undefined removes a variable). */
function apiEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    API_PORT: '0',
    ADMIN_TOKEN: TOKEN,
    DATABASE_URL,
    CATALOGUE_SCHEMA: SCHEMA,
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: CACHE_PREFIX,
    QUEUE_PREFIX,
    API_CRITICAL_WARM: 'false',
  };
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Another API pod (own queue prefix unless given), closed in afterAll. */
async function startExtraApi(extra: Record<string, string | undefined>): Promise<RunningApi> {
  const started = await startApi(
    apiEnv({
      QUEUE_PREFIX: `${QUEUE_PREFIX}x${seq++}`,
      CACHE_KEY_PREFIX: `${CACHE_PREFIX}x${seq++}:`,
      ...extra,
    }),
    logger,
  );
  extraApis.push(started);
  return started;
}

function jobClient(prefix: string): JobClient {
  const c = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: prefix }));
  clients.push(c);
  return c;
}

interface Response {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  readonly json: unknown;
}

interface CallOptions {
  readonly method?: string;
  /** true: the right admin token; a string: that token. */
  readonly token?: true | string;
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly base?: string;
}

async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined)
    headers.authorization = `Bearer ${options.token === true ? TOKEN : options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${options.base ?? api.url}${path}`, {
    method: options.method ?? 'GET',
    headers,
    redirect: 'manual',
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  let json: unknown;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, json };
}

const ProductJson = z.object({
  id: z.string(),
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  price_cents: z.number(),
  stock: z.number(),
  updated_at: z.string(),
});
const ErrorJson = z.object({ error: z.string(), message: z.string() });
const Stats = z.object({
  tiers: z.object({
    l1: z.object({ hits: z.number(), misses: z.number(), entries: z.number() }),
    l2: z.object({ hits: z.number(), misses: z.number(), available: z.boolean() }),
    l3: z.object({ loads: z.number() }),
  }),
});
const Enqueued = z.object({ jobId: z.string(), deduplicated: z.boolean(), follow: z.string() });
const JobJson = z.object({
  id: z.string(),
  queue: z.string(),
  name: z.string(),
  state: z.string(),
  progress: z.unknown(),
  payload: z.unknown(),
  result: z.unknown(),
  children: z.array(z.object({ id: z.string(), name: z.string(), state: z.string(), progress: z.unknown() })),
});
type JobJson = z.infer<typeof JobJson>;

async function stats(base = api.url): Promise<z.infer<typeof Stats>['tiers']> {
  const res = await call('/cache/stats', { token: true, base });
  expect(res.status).toBe(200);
  return Stats.parse(res.json).tiers;
}

/**
 * Polls GET /jobs/:id until the job is completed with its result (fails fast if it failed). A view
 * `completed` without a result is polled again: see the JobClient.job race in section 5.
 */
async function finished(jobId: string, base = api.url): Promise<JobJson> {
  return waitUntil(
    `job ${jobId} completed`,
    async (note) => {
      const res = await call(`/jobs/${jobId}`, { token: true, base });
      const view = JobJson.parse(res.json);
      note(`state ${view.state}`);
      if (view.state === 'failed') throw new Error(`job ${jobId} failed: ${res.text}`);
      return view.state === 'completed' && view.result != null ? view : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}

/** Every L2 key of this file's cache prefix matching `match` (SCAN, never KEYS). */
async function l2Keys(match: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${CACHE_PREFIX}${match}`, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis({ host: redis.host, port: redis.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  raw.on('error', () => {}); // the degrade test kills the server; the client reconnects
  await raw.connect();
  db = connectPg(DATABASE_URL);
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: PRODUCTS });
  api = await startApi(apiEnv(), logger);
  worker = await startWorker(
    loadWorkerConfig(
      { WORKER_HTTP_PORT: '0', WORKER_QUEUES: 'warm:2,invalidate:4', WORKER_SHUTDOWN_MS: '2000' },
      [],
    ),
    apiEnv({ SCHEDULES_ENABLED: 'false' }),
    logger,
  );
});

afterAll(async () => {
  await worker?.close();
  await Promise.all(extraApis.map((a) => a.close()));
  await api?.close();
  await Promise.all(clients.map((c) => c.close()));
  raw?.disconnect();
  await db?.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await db?.close();
  await redis?.stop();
});

describe('1. product reads', () => {
  it('GET /products/42 answers the row as JSON; the second read is an L1 hit', async () => {
    const first = await call('/products/42');
    expect(first.status).toBe(200);
    expect(first.headers.get('content-type')).toMatch(/^application\/json/);
    const product = ProductJson.parse(first.json);
    expect(product).toMatchObject({ id: '42', sku: 'SKU-00000042', name: 'Product 42' });

    const before = await stats();
    const second = await call('/products/42');
    expect(second.status).toBe(200);
    expect(second.json).toEqual(product);
    const after = await stats();
    expect(after.l1.hits).toBe(before.l1.hits + 1);
    expect(after.l2.hits).toBe(before.l2.hits);
    expect(after.l3.loads).toBe(before.l3.loads);
  });

  it('answers 404 for a product that does not exist, 400 naming `id` for a bad id', async () => {
    const missing = await call('/products/999999');
    expect(missing.status).toBe(404);
    expect(ErrorJson.parse(missing.json).error).toBe('not_found');

    for (const bad of ['abc', '0', '-1', '1.5', '01']) {
      const res = await call(`/products/${bad}`);
      expect(res.status, bad).toBe(400);
      expect(ErrorJson.parse(res.json).message, bad).toMatch(/^id: /);
    }
  });

  it('GET /products?ids=1,2,3 answers the three rows; absent ids are left out; bad lists → 400', async () => {
    const res = await call('/products?ids=1,2,3');
    expect(res.status).toBe(200);
    const items = z.object({ items: z.array(ProductJson) }).parse(res.json).items;
    expect(items.map((p) => p.id)).toEqual(['1', '2', '3']);

    const some = await call('/products?ids=4,999999');
    expect(
      z
        .object({ items: z.array(ProductJson) })
        .parse(some.json)
        .items.map((p) => p.id),
    ).toEqual(['4']);

    for (const bad of ['/products', '/products?ids=', '/products?ids=1,a', '/products?ids=1&x=2']) {
      const r = await call(bad);
      expect(r.status, bad).toBe(400);
      expect(ErrorJson.parse(r.json).error, bad).toBe('invalid_body');
    }
  });
});

describe('1b. rollout (A8): users outside the cohort read the database', () => {
  let pod: RunningApi;
  const counters = (t: z.infer<typeof Stats>['tiers']) => [
    t.l1.hits,
    t.l1.misses,
    t.l2.hits,
    t.l2.misses,
    t.l3.loads,
  ];

  beforeAll(async () => {
    pod = await startExtraApi({ CACHE_ROLLOUT: 'product=0' });
  });

  it('GET /products/:id of a control user bypasses the cache and is counted as control', async () => {
    const before = counters(await stats(pod.url));
    for (let i = 0; i < 2; i++) {
      const res = await call('/products/42', { base: pod.url, headers: { 'x-user-id': 'user-1' } });
      expect(res.status).toBe(200);
      expect(ProductJson.parse(res.json).id).toBe('42');
    }
    expect(counters(await stats(pod.url))).toEqual(before);
    const metrics = await call('/metrics', { base: pod.url });
    expect(metrics.text).toMatch(/^cache_rollout_requests_total\{namespace="product",cohort="control"\} 2$/m);
  });

  // BUG, fixed (apps/api/src/products.ts, GET /products): the batch route calls cache.getMany without asking
  // rollout.enabled(), so users in the control cohort (here: everybody, product=0) still read through
  // the cache. (Fixed.)
  it('GET /products?ids= of a control user bypasses the cache too', async () => {
    const before = counters(await stats(pod.url));
    const res = await call('/products?ids=43,44', { base: pod.url, headers: { 'x-user-id': 'user-1' } });
    expect(res.status).toBe(200);
    expect(counters(await stats(pod.url))).toEqual(before);
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

describe('4. write, then invalidate', () => {
  it('PATCH /products/7 is read back at once, not the row cached in L1 and L2', async () => {
    const before = ProductJson.parse((await call('/products/7')).json);
    expect((await call('/products/7')).json).toEqual(before); // now in L1 (and L2)
    expect(await raw.exists(`${CACHE_PREFIX}${KEY_BASE}7`)).toBe(1);
    expect(before.price_cents).not.toBe(123);

    const patched = await call('/products/7', { method: 'PATCH', token: true, body: { price_cents: 123 } });
    expect(patched.status).toBe(200);
    const row = ProductJson.parse(patched.json);
    expect(row).toMatchObject({ id: '7', price_cents: 123, sku: before.sku, stock: before.stock });
    expect(Date.parse(row.updated_at)).toBeGreaterThanOrEqual(Date.parse(before.updated_at));

    const after = await call('/products/7');
    expect(after.status).toBe(200);
    expect(ProductJson.parse(after.json).price_cents).toBe(123);
    // The batch read agrees (another path through the cache).
    const batch = z.object({ items: z.array(ProductJson) }).parse((await call('/products?ids=7')).json);
    expect(batch.items[0]?.price_cents).toBe(123);
  });

  it('PATCH of a product that does not exist → 404; a bad id → 400', async () => {
    expect(
      (await call('/products/999999', { method: 'PATCH', token: true, body: { price_cents: 1 } })).status,
    ).toBe(404);
    const bad = await call('/products/abc', { method: 'PATCH', token: true, body: { price_cents: 1 } });
    expect(bad.status).toBe(400);
    expect(ErrorJson.parse(bad.json).message).toMatch(/^id: /);
  });

  it.each([
    [{ colour: 'red' }, 'colour'],
    [{ price_cents: 'cheap' }, 'price_cents'],
    [{ price_cents: 1.5 }, 'price_cents'],
    [{ stock: 2 ** 31 }, 'stock'],
    [{ sku: '' }, 'sku'],
    [{ id: '8' }, 'id'],
  ])('PATCH with %j → 400 naming %s', async (body, field) => {
    const res = await call('/products/8', { method: 'PATCH', token: true, body });
    expect(res.status).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toContain(field);
  });

  // BUG, fixed (libs/catalogue/src/product.ts, productPatchSchema): `price_cents: z.int32()` has no lower
  // bound, so a negative price is written to the database (200). (Fixed.)
  it('PATCH with a negative price → 400 naming price_cents', async () => {
    const res = await call('/products/9', { method: 'PATCH', token: true, body: { price_cents: -1 } });
    expect(res.status).toBe(400);
    expect(ErrorJson.parse(res.json).message).toContain('price_cents');
  });
});

describe('6. prewarm', () => {
  it('POST /cache/prewarm {type: all, async: false} → 200 with every seeded product written', async () => {
    const res = await call('/cache/prewarm', {
      method: 'POST',
      token: true,
      body: { type: 'all', async: false },
    });
    expect(res.status).toBe(200);
    const body = z
      .object({ jobId: z.string(), state: z.literal('completed'), result: z.unknown() })
      .parse(res.json);
    // The answer may lack the result when the job finished between the two reads of
    // JobClient.job (BUG, section 5): then it is read from the job.
    const result = warmResultSchema.parse(body.result ?? (await finished(body.jobId)).result);
    expect(result).toMatchObject({
      type: 'all',
      namespaces: ['product'],
      requested: PRODUCTS,
      loaded: PRODUCTS,
      written: PRODUCTS,
      invalid: 0,
    });
    expect(await l2Keys(`${KEY_BASE}*`)).toHaveLength(PRODUCTS);
  });

  it('POST /cache/prewarm {type: critical} → 202 with a job that completes', async () => {
    const res = await call('/cache/prewarm', { method: 'POST', token: true, body: { type: 'critical' } });
    expect(res.status).toBe(202);
    const { jobId, deduplicated, follow } = Enqueued.parse(res.json);
    expect(deduplicated).toBe(false);
    expect(follow).toBe(`/jobs/${jobId}`);
    const view = await finished(jobId);
    expect(view).toMatchObject({ queue: 'warm', name: 'warm', payload: { type: 'critical' } });
    const result = warmResultSchema.parse(view.result);
    expect(result).toMatchObject({ type: 'critical', requested: 100, loaded: 100, prewarmed: 100 });
  });

  it.each([
    [{ type: 'bogus' }, 'type'],
    [{}, 'type'],
    [{ type: 'all', extra: 1 }, 'extra'],
    [{ type: 'all', waitMs: 5 }, 'waitMs'],
    [{ type: 'hot', top: 0 }, 'top'],
    [{ type: 'all', namespaces: ['Bad'] }, 'namespaces'],
  ])('POST /cache/prewarm %j → 400 naming %s', async (body, field) => {
    const res = await call('/cache/prewarm', { method: 'POST', token: true, body });
    expect(res.status).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toContain(field);
  });

  it('a prewarm or invalidation naming a namespace nobody defines → 400 naming it, and no job', async () => {
    const before = await call('/cache/stats', { token: true });
    expect(before.status).toBe(200);
    for (const [path, body] of [
      ['/cache/prewarm', { type: 'all', namespaces: ['nosuch'], async: false, waitMs: 10_000 }],
      ['/cache/invalidate', { namespace: 'nosuch', pattern: '1*' }],
    ] as const) {
      const res = await call(path, { method: 'POST', token: true, body });
      expect(res.status).toBe(400);
      expect(z.object({ message: z.string() }).parse(res.json).message).toContain('"nosuch"');
    }
  });
});

describe('5. invalidation jobs', () => {
  it('POST /cache/invalidate {pattern: 1*} → 202; the job completes; its slice is listed; L2 has no 1* key', async () => {
    // Read a few so they are in L1 as well as L2 (the warm above filled L2).
    for (const id of ['1', '10', '150', '1999']) expect((await call(`/products/${id}`)).status).toBe(200);
    const present = await l2Keys(`${KEY_BASE}1*`);
    expect(present.length).toBeGreaterThanOrEqual(1);

    const res = await call('/cache/invalidate', {
      method: 'POST',
      token: true,
      body: { namespace: 'product', pattern: '1*' },
    });
    expect(res.status).toBe(202);
    const { jobId, deduplicated } = Enqueued.parse(res.json);
    expect(deduplicated).toBe(false);

    const view = await finished(jobId);
    expect(view).toMatchObject({ queue: 'invalidate', name: 'invalidate' });
    const result = invalidateResultSchema.parse(view.result);
    expect(result).toMatchObject({ scope: 'pattern', namespace: 'product' });
    expect(result.removed).toBeGreaterThanOrEqual(1);
    expect(result.removed).toBe(present.length);
    expect(result.slices).toBe(1);
    expect(view.children).toHaveLength(1);
    const child = view.children[0];
    expect(child).toMatchObject({ id: `${jobId}-slice-0`, name: 'invalidate-slice', state: 'completed' });
    expect(child?.progress).toMatchObject({ master: `127.0.0.1:${redis.port}`, unlinked: present.length });
    expect(view.progress).toMatchObject({ step: 'done', removed: present.length });

    expect(await l2Keys(`${KEY_BASE}1*`)).toEqual([]);
    expect((await l2Keys(`${KEY_BASE}2*`)).length).toBeGreaterThan(0); // other ids untouched
    // This pod's L1 dropped them too (the walk's event): the next read goes to the database.
    await waitUntil('the pattern dropped from L1', async () => {
      const before = await stats();
      expect((await call('/products/1999')).status).toBe(200);
      const after = await stats();
      return after.l3.loads > before.l3.loads ? true : undefined;
    });
  });

  it.each([
    [{ namespace: 'product' }, 'pattern'],
    [{ namespace: 'product', pattern: '1*', keys: ['1'] }, 'exactly one'],
    [{ namespace: 'product', pattern: 'a b' }, 'pattern'],
    [{ namespace: 'product', pattern: '{1,2}' }, 'pattern'],
    [{ namespace: 'Bad', all: true }, 'namespace'],
    [{ namespace: 'product', all: true, extra: 1 }, 'extra'],
    [{ namespace: 'product', keys: [] }, 'keys'],
    [{ namespace: 'product', all: false }, 'all'],
    [{ pattern: '1*' }, 'namespace'],
  ])('POST /cache/invalidate %j → 400 naming %s', async (body, field) => {
    const res = await call('/cache/invalidate', { method: 'POST', token: true, body });
    expect(res.status).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toContain(field);
  });

  it('the same invalidation twice while no worker runs is one job (deduplicated: true, same jobId)', async () => {
    // A pod on a queue prefix no worker serves: the first job stays pending.
    const idle = await startExtraApi({});
    const body = { namespace: 'product', pattern: '42*' };
    const first = await call('/cache/invalidate', { method: 'POST', token: true, body, base: idle.url });
    const second = await call('/cache/invalidate', { method: 'POST', token: true, body, base: idle.url });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const a = Enqueued.parse(first.json);
    const b = Enqueued.parse(second.json);
    expect(a.deduplicated).toBe(false);
    expect(b).toMatchObject({ jobId: a.jobId, deduplicated: true });
    const other = Enqueued.parse(
      (
        await call('/cache/invalidate', {
          method: 'POST',
          token: true,
          body: { namespace: 'product', pattern: '43*' },
          base: idle.url,
        })
      ).json,
    );
    expect(other.jobId).not.toBe(a.jobId);
    const view = JobJson.parse((await call(`/jobs/${a.jobId}`, { token: true, base: idle.url })).json);
    expect(view.state).toBe('waiting');
    expect(view.children).toEqual([]);
  });

  // BUG, fixed (libs/jobs/src/client.ts, JobClient.job): the job's hash (getJob) and its state (getState) are
  // read in two round trips, so a job that finishes in between is shown `failed` without its
  // failedReason (or `completed` with a null result). GET /jobs/:id and the synchronous
  // POST /cache/prewarm (waitForJob) answer such views. Polled back to back, 30 jobs that fail at
  // once hit the window many times over. (Fixed.)
  it('a job seen failed always carries its failedReason (JobClient.job race)', async () => {
    const jobs = jobClient(QUEUE_PREFIX); // the queues the worker serves, as the API reads them
    for (let i = 0; i < 30; i++) {
      const { id } = await jobs.enqueue('warm', { type: 'all', namespaces: [`nosuch${i}`] });
      for (let polls = 0; ; polls++) {
        if (polls > 10_000) throw new Error(`job ${id} never finished`);
        const view = await jobs.job(id);
        if (view?.state === 'completed') break;
        if (view?.state === 'failed') {
          expect(view.failedReason, `job ${id} seen failed`).toBeDefined();
          break;
        }
      }
    }
  });

  it('GET /jobs/<unknown> → 404', async () => {
    const res = await call('/jobs/unknown', { token: true });
    expect(res.status).toBe(404);
    expect(ErrorJson.parse(res.json).error).toBe('not_found');
  });
});

describe('7. metrics and health', () => {
  it('/metrics exposes the cache, HTTP, queue and edge metrics', async () => {
    expect((await call('/products/5')).status).toBe(200); // one edge candidate at least
    const res = await call('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const name of [
      'cache_hits_total',
      'http_request_duration_seconds',
      'cachefleet_queue_jobs',
      'cache_edge_candidates_total',
    ]) {
      expect(res.text, name).toMatch(new RegExp(`^${name}(\\{|_bucket\\{| )`, 'm'));
    }
    expect(res.text).toMatch(/^cache_edge_candidates_total\{route="\/products\/:id",method="GET"\} [1-9]/m);
    expect(res.text).toMatch(/^cachefleet_queue_jobs\{queue="invalidate",state="completed"\} [1-9]/m);
    expect(res.text).toMatch(
      /^http_request_duration_seconds_count\{route="\/products\/:id",method="GET",status="200"\} [1-9]/m,
    );
  });

  it('echoes the caller x-request-id (or makes one) and counts each status of a route apart', async () => {
    const given = await call('/products/6', { headers: { 'x-request-id': 'trace-abc.123' } });
    expect(given.headers.get('x-request-id')).toBe('trace-abc.123');
    const made = await call('/products/6', { headers: { 'x-request-id': 'not a valid id!' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call('/products/999999')).status).toBe(404);
    const text = (await call('/metrics')).text;
    const count = (status: string) =>
      Number(
        new RegExp(
          `^http_request_duration_seconds_count\\{route="/products/:id",method="GET",status="${status}"\\} (\\d+)`,
          'm',
        ).exec(text)?.[1] ?? 0,
      );
    expect(count('200')).toBeGreaterThanOrEqual(2);
    expect(count('404')).toBeGreaterThanOrEqual(1);
  });

  it('/healthz and /readyz answer 200', async () => {
    const health = await call('/healthz');
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ ok: true });
    const ready = await call('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ ready: true, database: true });
  });
});

describe('9. critical warm at start', () => {
  it('API_CRITICAL_WARM=true enqueues a critical warm job in the warm queue', async () => {
    const prefix = `${QUEUE_PREFIX}crit`;
    const pod = await startExtraApi({ API_CRITICAL_WARM: 'true', QUEUE_PREFIX: prefix });
    expect(pod.config.criticalWarm).toBe(true);
    const jobs = jobClient(prefix);
    const found = await waitUntil('a critical warm job', async () => {
      const all = await jobs
        .queue('warm')
        .getJobs(['waiting', 'active', 'completed', 'delayed', 'prioritized']);
      return all.find((j) => j.name === 'warm') ?? undefined;
    });
    expect(found.data).toEqual({ payload: { type: 'critical' } });
    expect(await jobs.queue('warm').count()).toBe(1);
    // Nothing of the kind when it is off (the main pod of this file).
    expect(await jobClient(`${QUEUE_PREFIX}none`).queue('warm').count()).toBe(0);
  });
});

describe('8. degrade when Redis dies', () => {
  /** A request that must answer; a hung one is aborted after this long (a bound, not a timing check). */
  const BOUND_MS = 6_000;

  afterAll(async () => {
    if (!redis.running) await redis.restart();
  });

  it('with Redis killed, reads come from the database and the pod stays ready', async () => {
    await redis.kill();
    const before = await stats();
    for (const id of ['11', '1777', '1778']) {
      const res = await call(`/products/${id}`);
      expect(res.status, id).toBe(200);
      expect(ProductJson.parse(res.json).id).toBe(id);
    }
    const after = await stats();
    expect(after.l3.loads).toBeGreaterThanOrEqual(before.l3.loads + 2); // 1777, 1778 were never read
    const ready = await call('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ ready: true, database: true });
    expect((await call('/healthz')).status).toBe(200);
    await waitUntil('L2 seen unavailable', async () => ((await stats()).l2.available ? undefined : true));
    // A write still lands in the database and is read back.
    const patched = await call('/products/12', { method: 'PATCH', token: true, body: { stock: 321 } });
    expect(patched.status).toBe(200);
    expect(ProductJson.parse((await call('/products/12')).json).stock).toBe(321);
  });

  // BUG, fixed (libs/jobs/src/metrics.ts, registerQueueMetrics): the cachefleet_queue_jobs collector awaits
  // getJobCounts() on the queue connection (offline queue, maxRetriesPerRequest: null), so with the
  // queue Redis down GET /metrics never answers: every metric, the cache's outage counters included,
  // is lost for as long as Redis is. (Fixed.)
  it('GET /metrics still answers while Redis is down', async () => {
    expect(redis.running).toBe(false);
    const res = await fetch(`${api.url}/metrics`, { signal: AbortSignal.timeout(BOUND_MS) });
    expect(res.status).toBe(200);
  });

  // BUG, fixed (apps/api/src/admin.ts): enqueue and GET /jobs/:id wait on the queue connection's offline
  // queue, so with the queue Redis down the admin job routes hang instead of answering 503.
  it('POST /cache/invalidate answers (503) while Redis is down instead of hanging', async () => {
    expect(redis.running).toBe(false);
    const res = await fetch(`${api.url}/cache/invalidate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      // Harmless if it is enqueued once Redis is back: a product that does not exist.
      body: JSON.stringify({ namespace: 'product', keys: ['999998'] }),
      signal: AbortSignal.timeout(BOUND_MS),
    });
    expect(res.status).toBe(503);
  });

  it('with Redis back, L2 is available again and reads fill it', async () => {
    await redis.restart();
    await waitUntil('L2 available again', async () => ((await stats()).l2.available ? true : undefined), {
      timeoutMs: 15_000,
    });
    // Served through L2 again: a read fills the key in Redis (the restarted server starts empty).
    await waitUntil('a read filled L2', async () => {
      expect((await call('/products/1888')).status).toBe(200);
      return (await raw.exists(`${CACHE_PREFIX}${KEY_BASE}1888`)) === 1 ? true : undefined;
    });
    const before = await stats();
    expect((await call('/products/1889')).status).toBe(200);
    const after = await stats();
    expect(after.l2.misses).toBe(before.l2.misses + 1);
    expect(after.l3.loads).toBe(before.l3.loads + 1);
    expect(await raw.exists(`${CACHE_PREFIX}${KEY_BASE}1889`)).toBe(1);
    expect(ProductJson.parse((await call('/products/12')).json).stock).toBe(321);
    expect((await call('/metrics')).status).toBe(200);
  });
});

describe('10. embedded database', () => {
  it('without DATABASE_URL: PGlite in memory, seeded, shared as a postgres:// loopback URL', async () => {
    const pod = await startExtraApi({
      DATABASE_URL: undefined,
      PGLITE_DIR: 'memory://',
      SEED_COUNT: '500',
    });
    expect(pod.databaseUrl).toMatch(/^postgres:\/\/[^@]+@127\.0\.0\.1:\d+\//);
    const hit = await call('/products/500', { base: pod.url });
    expect(hit.status).toBe(200);
    expect(ProductJson.parse(hit.json).id).toBe('500');
    expect((await call('/products/501', { base: pod.url })).status).toBe(404);

    const shared = connectPg(pod.databaseUrl, { max: 1 });
    try {
      const { rows } = await shared.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${SCHEMA}".products`,
      );
      expect(rows[0]?.n).toBe(500);
    } finally {
      await shared.close();
    }
    await pod.close();
  }, 90_000);
});
