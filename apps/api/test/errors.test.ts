/**
 * What a caller can get wrong, and what the pod says about its own faults (issue 9, bugs 1, 2, 4
 * and 5), on a real pod (harness.ts: PostgreSQL, a private redis-server):
 *
 *  1. a malformed `cf_admin` cookie is no token (401), never a 500; a 500 logs its cause with the
 *     request id and its body carries neither a stack nor the database's words; API_REQUEST_LOGS
 *  2. PATCH refusals the database would have made: a taken sku (409), a NUL, an over-long value (400)
 *  3. ids an invalidation names are checked against the namespace's id schema before enqueueing
 *  4. the dashboard's job routes given a BullMQ key name for an id: 404, never Redis' WRONGTYPE
 *  5. the token is checked before the body is read; bodies are bounded per route; an empty patch
 *
 * Each test pins a bug found from outside (issue 9); its comment says what it proves.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadApiConfig } from '../src/index.js';
import { startTestPod, type TestPod } from './harness.js';

const ErrorJson = z.strictObject({ error: z.string(), message: z.string() });

/** Words of a database or a runtime that must never reach a caller. */
const INTERNALS = [/\bat [^\n]*:\d+:\d+/, /SQLSTATE/i, /\b(23505|22021|42P01)\b/, /_key\b/, /relation/];

let pod: TestPod;

beforeAll(async () => {
  pod = await startTestPod();
});

afterAll(async () => {
  await pod?.close();
});

describe('1. a malformed admin cookie, and the 500s', () => {
  // BUG (issue 9.1): `cf_admin=%E0%A4%A` made decodeURIComponent throw "URI malformed" in the guard:
  // a 500 on every admin route and the dashboard, for anybody, without a token.
  it('a cookie that is not valid percent-encoding is no token: 401 on every admin route', async () => {
    for (const cookie of ['cf_admin=%E0%A4%A', 'cf_admin=%', 'a=1; cf_admin=%zz']) {
      for (const [method, path] of [
        ['GET', '/cache/stats'],
        ['GET', '/jobs/1'],
        ['GET', '/admin/queues'],
        ['GET', '/admin/queues/api/queues'],
        ['POST', '/cache/invalidate'],
        ['PATCH', '/products/1'],
      ] as const) {
        const res = await pod.call(path, { method, headers: { cookie } });
        expect(res.status, `${cookie} ${method} ${path}: ${res.text}`).toBe(401);
        expect(ErrorJson.parse(res.json).error).toBe('unauthorized');
      }
    }
  });

  // BUG (issue 9.1): a 500 showed Fastify's serialisation of the error (the database's code and
  // message) and the log said only "request failed", without the cause. Caused for real: the
  // table is dropped under a running pod, so the next write fails in PostgreSQL.
  it('a 500 answers a generic message with the request id and logs its cause under that id', async () => {
    const spare = await startTestPod();
    try {
      await spare.db.query(`DROP TABLE "${spare.schema}".products`);
      const res = await spare.call('/products/1', {
        method: 'PATCH',
        token: spare.token,
        body: { stock: 1 },
        headers: { 'x-request-id': 'trace-500-cause' },
      });
      expect(res.status).toBe(500);
      const body = ErrorJson.parse(res.json);
      expect(body.error).toBe('internal');
      expect(body.message).toContain('trace-500-cause');
      for (const word of INTERNALS) expect(res.text, String(word)).not.toMatch(word);
      const logged = spare.logs.filter((l) => l.reqId === 'trace-500-cause' && l.level === 50);
      expect(logged, JSON.stringify(spare.logs.slice(-5))).toHaveLength(1);
      const err = z.object({ message: z.string(), stack: z.string() }).parse(logged[0]?.err);
      expect(err.message).toMatch(/relation .* does not exist/);
      expect(err.stack).toMatch(/\bat /);
    } finally {
      await spare.close();
    }
  });
});

describe('1b. request logs (API_REQUEST_LOGS)', () => {
  const requestLines = (p: TestPod) =>
    p.logs.filter((l) => l.msg === 'request' || l.msg === 'request failed');

  it('default `errors`: no line for a request that went well', async () => {
    const before = requestLines(pod).length;
    expect((await pod.call('/healthz')).status).toBe(200);
    expect((await pod.call('/products/1')).status).toBe(200);
    expect(requestLines(pod).length).toBe(before);
  });

  it('`sampled`: one request in API_REQUEST_LOG_SAMPLE, with its id, path and status; never the query', async () => {
    const spare = await startTestPod({ env: { API_REQUEST_LOGS: 'sampled', API_REQUEST_LOG_SAMPLE: '3' } });
    try {
      for (let i = 0; i < 6; i++)
        await spare.call(`/admin/login?token=${spare.token}`, { headers: { 'x-request-id': `r${i}` } });
      const lines = requestLines(spare);
      expect(lines.map((l) => l.reqId)).toEqual(['r2', 'r5']);
      expect(lines[0]).toMatchObject({
        method: 'GET',
        path: '/admin/login',
        route: '/admin/login',
        status: 303,
      });
      expect(JSON.stringify(spare.logs)).not.toContain(spare.token);
    } finally {
      await spare.close();
    }
  });

  it('refuses a mode it does not know, naming the variable', () => {
    const token = 'x'.repeat(16);
    expect(() => loadApiConfig({ ADMIN_TOKEN: token, API_REQUEST_LOGS: 'loud' })).toThrow(
      /^API_REQUEST_LOGS: /,
    );
    expect(() => loadApiConfig({ ADMIN_TOKEN: token, API_REQUEST_LOG_SAMPLE: '0' })).toThrow(
      /^API_REQUEST_LOG_SAMPLE: /,
    );
    expect(loadApiConfig({ ADMIN_TOKEN: token }).requestLogs).toEqual({ mode: 'errors', sampleEvery: 100 });
  });
});

describe('2. PATCH values the database refuses', () => {
  // BUG (issue 9.2): a duplicate sku was a 500 carrying PostgreSQL's 23505 and the constraint name.
  it('a sku another product has → 409 naming sku, in our words', async () => {
    const res = await pod.call('/products/2', {
      method: 'PATCH',
      token: true,
      body: { sku: 'SKU-00000001' },
    });
    expect(res.status, res.text).toBe(409);
    const body = ErrorJson.parse(res.json);
    expect(body.error).toBe('conflict');
    expect(body.message).toMatch(/^sku: /);
    for (const word of INTERNALS) expect(res.text, String(word)).not.toMatch(word);
    expect((await pod.call('/products/2')).json).toMatchObject({ sku: 'SKU-00000002' });
  });

  // BUG (issue 9.2): a NUL in a text field was a 500 carrying 22021.
  it.each([
    [{ name: 'a\u0000b' }, 'name'],
    [{ sku: '\u0000' }, 'sku'],
    [{ category: 'x\u0000' }, 'category'],
    [{ sku: 'S'.repeat(65) }, 'sku'],
    [{ name: 'n'.repeat(257) }, 'name'],
    [{ category: 'c'.repeat(129) }, 'category'],
  ])('PATCH %j → 400 naming %s', async (body, field) => {
    const res = await pod.call('/products/3', { method: 'PATCH', token: true, body });
    expect(res.status, res.text).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toMatch(new RegExp(`^${field}: `));
    for (const word of INTERNALS) expect(res.text, String(word)).not.toMatch(word);
  });
});

describe('3. ids checked before anything is enqueued', () => {
  // BUG (issue 9.3): {keys: ['77777', 'not-an-id']} was accepted (202); the job then failed five
  // times in the worker and 77777 was never invalidated.
  it('an id the namespace refuses → 400 naming it; no job', async () => {
    const raw = new Redis(pod.redis.url);
    try {
      const jobsOf = () => raw.llen(`q${pod.schema}:invalidate:wait`);
      const before = await jobsOf();
      for (const [body, field] of [
        [{ namespace: 'product', keys: ['77777', 'not-an-id'] }, /keys\.1: not a product id/],
        [{ namespace: 'nosuch', keys: ['1'] }, /namespace: no namespace "nosuch"/],
      ] as const) {
        const res = await pod.call('/cache/invalidate', { method: 'POST', token: true, body });
        expect(res.status, res.text).toBe(400);
        const e = ErrorJson.parse(res.json);
        expect(e.error).toBe('invalid_body');
        expect(e.message).toMatch(/^E_JOB_INVALID_PAYLOAD: invalidate: /);
        expect(e.message).toMatch(field);
      }
      expect(await jobsOf()).toBe(before);
    } finally {
      raw.disconnect();
    }
  });
});

describe('4. job ids that are BullMQ key names', () => {
  // BUG (issue 9.4): bull-board reads `<prefix>:<queue>:<jobId>` as a job hash, so an id naming one
  // of the queue's own keys (a string, a stream, a list) made Redis answer WRONGTYPE: a 500.
  // The queue's keys are made for real (an enqueued job writes `wait` and `events`), except
  // `stalled-check`, which only a worker's stalled checker writes: set here as BullMQ does.
  it('→ 404 JSON on every job route of the dashboard, and GET /jobs/:id', async () => {
    const queued = await pod.call('/cache/prewarm', { method: 'POST', token: true, body: { type: 'all' } });
    expect(queued.status).toBe(202);
    const jobId = z.object({ jobId: z.string() }).parse(queued.json).jobId;
    const body = { namespace: 'product', keys: ['1'] };
    expect((await pod.call('/cache/invalidate', { method: 'POST', token: true, body })).status).toBe(202);
    const raw = new Redis(pod.redis.url);
    try {
      const prefix = `q${pod.schema}`;
      await raw.set(`${prefix}:warm:stalled-check`, String(Date.now()), 'PX', 60_000);
      expect(await raw.type(`${prefix}:warm:wait`)).toBe('list');
      expect(await raw.type(`${prefix}:invalidate:events`)).toBe('stream');
    } finally {
      raw.disconnect();
    }
    const base = '/admin/queues/api/queues';
    for (const [method, path] of [
      ['GET', `${base}/warm/stalled-check`],
      ['GET', `${base}/invalidate/events`],
      ['GET', `${base}/warm/wait`],
      ['GET', `${base}/warm/meta/logs`],
      ['GET', `${base}/warm/events/flow`],
      ['PUT', `${base}/warm/wait/retry`],
      ['PUT', `${base}/warm/events/remove-unprocessed-children`],
      ['PATCH', `${base}/warm/stalled-check/update-data`],
      ['GET', `/jobs/stalled-check`],
      ['GET', `/jobs/${jobId}:lock`],
    ] as const) {
      const res = await pod.call(path, { method, token: true, body: method === 'GET' ? undefined : {} });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(404);
      expect(ErrorJson.parse(res.json).error).toBe('not_found');
    }
    // Ids of our shapes still reach the dashboard: the job itself, and one that does not exist.
    expect((await pod.call(`${base}/warm/${jobId}`, { token: true })).status).toBe(200);
    expect((await pod.call(`${base}/warm/${jobId}-slice-0`, { token: true })).status).toBe(404);
  });
});

describe('5. the token before the body; an empty patch', () => {
  const writes = [
    ['POST', '/cache/invalidate'],
    ['POST', '/cache/prewarm'],
    ['PATCH', '/products/1'],
  ] as const;

  // BUG (issue 9.5): the guard ran as a preHandler, after the body (up to 1 MB) was parsed: a caller
  // without a token got 400, 413 or 415 for its body, and the pod parsed it first.
  it('without a token, whatever the body: 401', async () => {
    for (const [method, path] of writes) {
      for (const [body, type] of [
        ['{"a":', 'application/json'],
        ['x'.repeat(2_000_000), 'application/json'],
        ['hello', 'text/plain'],
      ] as const) {
        const res = await pod.call(path, { method, body, headers: { 'content-type': type } });
        expect(res.status, `${method} ${path} ${type} ${body.length}: ${res.text}`).toBe(401);
        expect(ErrorJson.parse(res.json).error).toBe('unauthorized');
      }
    }
  });

  it('a body larger than its route needs → 413 JSON: 16 KiB for a patch or a prewarm, 1 MiB for an invalidation', async () => {
    const big = { type: 'all', namespaces: Array.from({ length: 3_000 }, (_, i) => `ns${i}`) };
    for (const [path, method, body] of [
      ['/products/1', 'PATCH', { name: 'n'.repeat(20_000) }],
      ['/cache/prewarm', 'POST', big],
      [
        '/cache/invalidate',
        'POST',
        // 80,000 ids of 13 digits: ~1.3 MB, fewer ids than the payload allows.
        { namespace: 'product', keys: Array.from({ length: 80_000 }, (_, i) => `${1e12 + i}`) },
      ],
    ] as const) {
      const res = await pod.call(path, { method, token: true, body });
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(413);
      expect(ErrorJson.parse(res.json).error).toBe('payload_too_large');
    }
    // An invalidation of many ids (here 50,000, ~340 kB) is still taken.
    const keys = Array.from({ length: 50_000 }, (_, i) => `${i + 1}`);
    const res = await pod.call('/cache/invalidate', {
      method: 'POST',
      token: true,
      body: { namespace: 'product', keys },
    });
    expect(res.status, res.text).toBe(202);
  });

  // BUG (issue 9.5): PATCH with body `null` (or {}) was an update of nothing: 200, and updated_at
  // moved on.
  it('a PATCH that changes nothing (null, {}, no body) → 400, and the row is untouched', async () => {
    const before = await pod.call('/products/5');
    for (const body of ['null', '{}', undefined]) {
      const res = await pod.call('/products/5', {
        method: 'PATCH',
        token: true,
        ...(body !== undefined ? { body, headers: { 'content-type': 'application/json' } } : {}),
      });
      expect(res.status, `${String(body)}: ${res.text}`).toBe(400);
      expect(ErrorJson.parse(res.json).error).toBe('invalid_body');
    }
    expect((await pod.call('/products/5')).json).toEqual(before.json);
  });
});
