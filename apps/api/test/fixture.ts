/**
 * The API pod of apps/api's end-to-end files (products, admin, jobs, operations), in process:
 * `startApi` from the environment (real HTTP on a free port), PostgreSQL for the catalogue (a schema
 * of its own, 2,000 products, dropped at the end), a private redis-server as the cache and queue Redis,
 * and a real worker (`startWorker`) serving the queues. No mocks. Each file calls `useApiSuite()`
 * once at its top: vitest runs each file in its own module graph, so each gets its own pod, Redis
 * and schema, and no file depends on another's order.
 */
import { randomBytes } from 'node:crypto';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig } from '@cachefleet/jobs';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from '@cachefleet/test';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect } from 'vitest';
import { z } from 'zod';
import { type RunningApi, startApi } from '../src/index.js';
import { type CallOptions as PodCallOptions, type Response, request } from './harness.js';
export const TAG = randomBytes(4).toString('hex');
export const SCHEMA = `api_${TAG}`;
export const PRODUCTS = 2_000;
export const TOKEN = `api-test-token-${TAG}-0123456789`;
export const DATABASE_URL = testDatabaseUrl();
export const CACHE_PREFIX = `api${TAG}:`;
export const QUEUE_PREFIX = `apiq${TAG}`;
export const KEY_BASE = 'product:v1:';
export const logger = pino({ level: 'silent' });

export let redis: RedisProcess;
export let raw: Redis;
export let db: Db;
export let api: RunningApi;
export let worker: RunningWorker;
/** Every API started by a test, closed in afterAll (also when the test failed). */
export const extraApis: RunningApi[] = [];
export const clients: JobClient[] = [];
export let seq = 0;

/** The environment of an API pod of this file; `extra` overrides (undefined removes a variable). */
export function apiEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
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
export async function startExtraApi(extra: Record<string, string | undefined>): Promise<RunningApi> {
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

export function jobClient(prefix: string): JobClient {
  const c = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: prefix }));
  clients.push(c);
  return c;
}

/** `base`: another pod of this file (default: the file's pod). */
export interface CallOptions extends PodCallOptions {
  readonly base?: string;
}

export function call(path: string, options: CallOptions = {}): Promise<Response> {
  return request(options.base ?? api.url, TOKEN, path, options);
}

export const ProductJson = z.object({
  id: z.string(),
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  price_cents: z.number(),
  stock: z.number(),
  updated_at: z.string(),
});
export const ErrorJson = z.object({ error: z.string(), message: z.string() });
export const Stats = z.object({
  tiers: z.object({
    l1: z.object({ hits: z.number(), misses: z.number(), entries: z.number() }),
    l2: z.object({ hits: z.number(), misses: z.number(), available: z.boolean() }),
    l3: z.object({ loads: z.number() }),
  }),
});
export const Enqueued = z.object({ jobId: z.string(), deduplicated: z.boolean(), follow: z.string() });
export const JobJson = z.object({
  id: z.string(),
  queue: z.string(),
  name: z.string(),
  state: z.string(),
  progress: z.unknown(),
  payload: z.unknown(),
  result: z.unknown(),
  children: z.array(z.object({ id: z.string(), name: z.string(), state: z.string(), progress: z.unknown() })),
});
export type JobJson = z.infer<typeof JobJson>;

export async function stats(base = api.url): Promise<z.infer<typeof Stats>['tiers']> {
  const res = await call('/cache/stats', { token: true, base });
  expect(res.status).toBe(200);
  return Stats.parse(res.json).tiers;
}

/**
 * Polls GET /jobs/:id until the job is completed with its result (fails fast if it failed). A view
 * `completed` without a result is polled again: see the JobClient.job race in jobs.test.ts.
 */
export async function finished(jobId: string, base = api.url): Promise<JobJson> {
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
export async function l2Keys(match: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${CACHE_PREFIX}${match}`, 'COUNT', 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

/** Starts the pod, its Redis, schema and worker before the file's tests; stops them after. */
export function useApiSuite(): void {
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
}
