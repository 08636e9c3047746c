/**
 * Issue 17, part 2 and "Also": an API pod and a worker (both in process: `startApi`,
 * `startWorker`) on a real Sentinel set (test/helpers/sentinel.ts) for BOTH Redis roles, configured
 * only through the environment variables a user sets — CACHE_REDIS_MODE / _SENTINELS /
 * _SENTINEL_NAME / _DB and the QUEUE_REDIS_* twins — with the catalogue in the run's PostgreSQL.
 *
 *  1. a read is cached in the cache role's db, an invalidate job goes through the queue role's db
 *     and is completed by the worker;
 *  2. after a Sentinel failover both roles serve again (a new job completes, a PATCH is read back);
 *  3. every data node down past API_READY_REDIS_DOWN_MS / WORKER_READY_REDIS_DOWN_MS: both
 *     `/readyz` answer 503, and 200 again once Redis is back.
 */
import { randomBytes } from 'node:crypto';
import { type RunningApi, startApi } from '@cachefleet/api';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { need, type SentinelSet, startSentinelSet, testDatabaseUrl, waitUntil } from './helpers/index.js';

const TAG = randomBytes(4).toString('hex');
const SCHEMA = `sent_${TAG}`;
const TOKEN = `sentinel-test-token-${TAG}-0123456789`;
const CACHE_PREFIX = `st${TAG}:`;
const QUEUE_PREFIX = `stq${TAG}`;
const CACHE_DB = 1;
const QUEUE_DB = 2;
/** The readiness bound under test. */
const DOWN_MS = 1_500;
const DATABASE_URL = testDatabaseUrl();
const logger = pino({ level: 'silent' });

let set: SentinelSet | undefined;
let db: Db | undefined;
let api: RunningApi | undefined;
let worker: RunningWorker | undefined;

beforeAll(async () => {
  set = await startSentinelSet({ replicas: 1, downAfterMs: 1000 });
  db = connectPg(DATABASE_URL);
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: 50 });
  const sentinels = set.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
  const env: NodeJS.ProcessEnv = {
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_TOKEN: TOKEN,
    API_CRITICAL_WARM: 'false',
    DATABASE_URL,
    CATALOGUE_SCHEMA: SCHEMA,
    CACHE_REDIS_MODE: 'sentinel',
    CACHE_REDIS_SENTINELS: sentinels,
    CACHE_REDIS_SENTINEL_NAME: set.name,
    CACHE_REDIS_DB: String(CACHE_DB),
    CACHE_KEY_PREFIX: CACHE_PREFIX,
    QUEUE_REDIS_MODE: 'sentinel',
    QUEUE_REDIS_SENTINELS: sentinels,
    QUEUE_REDIS_SENTINEL_NAME: set.name,
    QUEUE_REDIS_DB: String(QUEUE_DB),
    QUEUE_PREFIX,
    API_READY_REDIS_DOWN_MS: String(DOWN_MS),
    WORKER_READY_REDIS_DOWN_MS: String(DOWN_MS),
    SCHEDULES_ENABLED: 'false',
    WORKER_QUEUES: 'warm:1,invalidate:1',
    WORKER_HTTP_PORT: '0',
    WORKER_SHUTDOWN_MS: '2000',
  };
  api = await startApi(env, logger);
  worker = await startWorker(loadWorkerConfig(env, []), env, logger);
}, 120_000);

afterAll(async () => {
  await worker?.close();
  await api?.close();
  if (db) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.close();
  }
  await set?.stop();
});

async function call(
  path: string,
  init: { method?: string; body?: unknown; token?: boolean } = {},
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${need(api, 'the API').url}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.token ? { authorization: `Bearer ${TOKEN}` } : {}),
      ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json };
}

/** Keys of `db` on the current master that start with `prefix` (SCAN, never KEYS). */
async function keysIn(dbNumber: number, prefix: string): Promise<string[]> {
  const master = await need(set, 'the Sentinel set').currentMaster();
  const r = new Redis({ host: master.host, port: master.port, db: dbNumber, lazyConnect: true });
  r.on('error', () => {});
  try {
    await r.connect();
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
    return found;
  } finally {
    r.disconnect();
  }
}

const Enqueued = z.object({ jobId: z.string() });
const JobView = z.looseObject({ state: z.string() });

/** Enqueues an invalidation through the API and waits for the worker to complete it. */
async function invalidateThroughWorker(id: string): Promise<void> {
  const enq = await call('/cache/invalidate', {
    method: 'POST',
    token: true,
    body: { namespace: 'product', keys: [id] },
  });
  expect(enq.status, JSON.stringify(enq.json)).toBe(202);
  const { jobId } = Enqueued.parse(enq.json);
  await waitUntil(
    `job ${jobId} completed`,
    async (note) => {
      const view = await call(`/jobs/${jobId}`, { token: true });
      const state = view.status === 200 ? JobView.parse(view.json).state : `HTTP ${view.status}`;
      note(state);
      if (state === 'failed') throw new Error(`job ${jobId} failed`);
      return state === 'completed' ? true : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
}

async function readyz(): Promise<{ api: number; worker: number }> {
  const w = await fetch(`http://127.0.0.1:${need(worker, 'the worker').port}/readyz`, {
    signal: AbortSignal.timeout(10_000),
  });
  return { api: (await call('/readyz')).status, worker: w.status };
}

it('1. the settings put both roles on the Sentinel set, each in its own db', async () => {
  expect((await call('/products/7')).status).toBe(200);
  expect((await call('/products/7')).status).toBe(200);
  expect((await keysIn(CACHE_DB, CACHE_PREFIX)).length).toBeGreaterThan(0);
  expect(await keysIn(0, CACHE_PREFIX)).toEqual([]);
  await invalidateThroughWorker('7');
  expect((await keysIn(QUEUE_DB, QUEUE_PREFIX)).length).toBeGreaterThan(0);
  expect(await keysIn(0, QUEUE_PREFIX)).toEqual([]);
  expect(await readyz()).toEqual({ api: 200, worker: 200 });
});

it('2. after a failover both roles serve again', async () => {
  const s = need(set, 'the Sentinel set');
  const before = await s.currentMaster();
  const after = await s.failover();
  expect(after.port).not.toBe(before.port);
  await s.waitSettled();
  await waitUntil(
    'a PATCH through the new master, read back',
    async (note) => {
      const patched = await call('/products/8', { method: 'PATCH', token: true, body: { stock: 77 } });
      note(`PATCH ${patched.status}`);
      if (patched.status !== 200) return undefined;
      const read = await call('/products/8');
      return z.object({ stock: z.number() }).parse(read.json).stock === 77 ? true : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200 },
  );
  await invalidateThroughWorker('8');
  await waitUntil('both ready', async () => {
    const r = await readyz();
    return r.api === 200 && r.worker === 200 ? true : undefined;
  });
});

it('3. Redis down past the bound: both /readyz answer 503, and 200 once it is back', async () => {
  const s = need(set, 'the Sentinel set');
  const nodes = s.dataNodes.filter((n) => n.running);
  await Promise.all(nodes.map((n) => n.kill()));
  try {
    const downAt = performance.now();
    await waitUntil(
      'both unready',
      async (note) => {
        const r = await readyz();
        note(JSON.stringify(r));
        return r.api === 503 && r.worker === 503 ? true : undefined;
      },
      { timeoutMs: DOWN_MS + 10_000, intervalMs: 100 },
    );
    // Not before the bound: a blip does not take the pod out.
    expect(performance.now() - downAt).toBeGreaterThanOrEqual(DOWN_MS);
  } finally {
    for (const n of nodes) await n.restart();
  }
  await s.waitSettled(30_000);
  await waitUntil(
    'both ready again',
    async (note) => {
      const r = await readyz();
      note(JSON.stringify(r));
      return r.api === 200 && r.worker === 200 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  await invalidateThroughWorker('9');
});
