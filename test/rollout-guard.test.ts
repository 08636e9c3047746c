/**
 * The rollout guard end to end (issue 13, docs/tuning.md "Rollout guard"), with real processes: an
 * API pod (apps/api/src/main.ts, CACHE_ROLLOUT=product=100 in its env), a worker serving the tune
 * queue, the `cachefleet` CLI, one real Redis and PostgreSQL.
 *
 * The operator promotes product to 50 % with `cachefleet rollout`; the tuner records the stage's
 * baseline. Then a real fault that only the cache cohort meets: stock goes negative in the
 * database (oversold; the table has no CHECK), which the control cohort's straight read passes on
 * but the cache's schema refuses (E_CACHE_INVALID_VALUE → 503). The next tune tick sees the cache
 * cohort's error rate in the API pod's snapshot and lowers the stage to the previous one (10 %);
 * the API pod applies it live from the config event (a user between buckets 10 and 50 moves to
 * the control cohort and gets 200 again), the audit stream and the decisions counter show it.
 */
import { randomBytes } from 'node:crypto';
import { bucketOf } from '@cachefleet/api';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig, type TuneResult, tuneResultSchema } from '@cachefleet/jobs';
import { cacheKeys } from '@cachefleet/redis';
import { auditEntrySchema, podSnapshotSchema } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startApiProc, startWorker, stopAllWorkers, type WorkerProc } from './fixtures/fleet-procs.js';
import {
  jobSettled,
  need,
  type RedisProcess,
  runCli,
  startRedis,
  testDatabaseUrl,
  waitUntil,
} from './helpers/index.js';

const TAG = randomBytes(4).toString('hex');
const SCHEMA = `rg_${TAG}`;
const PREFIX = `rg${TAG}:`;
const QUEUE_PREFIX = `rgq${TAG}`;
const TOKEN = `rollout-guard-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();
const keys = cacheKeys(PREFIX);

let redis: RedisProcess | undefined;
let raw: Redis | undefined;
let db: Db | undefined;
let jobs: JobClient | undefined;
let api: WorkerProc | undefined;
let worker: WorkerProc | undefined;
let env: Record<string, string> = {};

/** Users by bucket: always in the cache cohort at 10 %, in it at 50 % only, never at 50 %. */
const users = (from: number, to: number, n: number): string[] => {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const b = bucketOf('product', `u${i}`);
    if (b >= from && b < to) out.push(`u${i}`);
  }
  return out;
};
const LOW = users(0, 10, 5);
const MIDDLE = users(10, 50, 5);
const HIGH = users(50, 100, 5);

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 2 });
  raw.on('error', () => {});
  db = connectPg(DATABASE_URL, { max: 2 });
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: 400 });
  jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX }));
  env = {
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: PREFIX,
    QUEUE_PREFIX,
    CATALOGUE_SCHEMA: SCHEMA,
    DATABASE_URL,
    SCHEDULES_ENABLED: 'false',
    CACHE_TELEMETRY_INTERVAL_S: '1',
    // The env says everyone; the stored stage overrides it.
    CACHE_ROLLOUT: 'product=100',
    TUNE_MIN_READS: '20',
    TUNE_ROLLOUT_MIN_REQUESTS: '20',
    LOG_LEVEL: 'info',
  };
  const readyTimeoutMs = 50_000;
  [api, worker] = await Promise.all([
    startApiProc({
      name: 'api',
      env: { ...env, API_PORT: '0', ADMIN_TOKEN: TOKEN, API_CRITICAL_WARM: 'false' },
      readyTimeoutMs,
    }),
    startWorker({ name: 'worker', queues: 'tune:1', env: { ...env, WORKER_HTTP_PORT: '0' }, readyTimeoutMs }),
  ]);
}, 120_000);

afterAll(async () => {
  await stopAllWorkers();
  await jobs?.close();
  raw?.disconnect();
  if (db !== undefined) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.close();
  }
  await redis?.stop();
});

async function get(user: string, id: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${need(api, 'api').port}/products/${id}`, {
    headers: { 'x-user-id': user },
  });
  await res.arrayBuffer();
  return res.status;
}

async function tick(): Promise<TuneResult> {
  const j = need(jobs, 'jobs');
  const job = await j.enqueue('tune', { dryRun: false });
  const end = await jobSettled(j, job.id);
  expect(end.state, end.failedReason).toBe('completed');
  const r = tuneResultSchema.parse(end.result);
  expect(r.skipped).toBe(false);
  return r;
}

/** The API pod's snapshot in Redis once it shows `ok` (published every second). */
async function apiSnapshot(what: string, ok: (s: z.output<typeof podSnapshotSchema>) => boolean) {
  const r = need(raw, 'raw');
  return waitUntil(what, async () => {
    for (const pod of await r.zrange(keys.pods, 0, -1)) {
      const text = await r.get(keys.pod(pod));
      const s = text === null ? undefined : podSnapshotSchema.parse(JSON.parse(text));
      if (s?.role === 'api' && ok(s)) return s;
    }
    return undefined;
  });
}
const cohort = (s: z.output<typeof podSnapshotSchema>, c: 'cache' | 'control') =>
  s.cohorts?.find((x) => x.namespace === 'product' && x.cohort === c) ?? { requests: 0, errors: 0 };

/** The API pod's log lines saying it changed product's percentage to `to`. */
function applied(to: number, why: string): Promise<unknown> {
  const line = z.looseObject({
    msg: z.literal('rollout percentage changed'),
    to: z.literal(to),
    why: z.literal(why),
  });
  return waitUntil(`api applies ${to} % (${why})`, async () =>
    need(api, 'api').logs.find((l) => line.safeParse(l).success),
  );
}

const guarded = (r: TuneResult) => r.decisions.filter((d) => d.rule === 'rollout-guard');

describe('rollout guard', () => {
  it('refuses bad operator input with exit 2', async () => {
    const [over, unknown] = await Promise.all([
      runCli(['rollout', 'product', '150'], env),
      runCli(['rollout', 'nope', '10'], env),
    ]);
    expect(over.code, over.stderr).toBe(2);
    expect(over.stderr).toMatch(/E_CLI_USAGE: <percent>/);
    expect(unknown.code, unknown.stderr).toBe(2);
    expect(unknown.stderr).toMatch(/not a defined namespace/);
    expect(await need(raw, 'raw').hlen(keys.tuneRollout)).toBe(0);
  });

  it('lowers a 50 % stage whose cache cohort fails to 10 %, and the API pod applies it live', async () => {
    // Before any stage: the env's 100 %, every user through the cache; the tuner's first window.
    await tick();
    for (let id = 1; id <= 30; id++)
      for (const u of [...LOW, ...MIDDLE, ...HIGH].slice(0, 3)) await get(u, id);
    await apiSnapshot('30 × 3 reads in the snapshot', (s) => cohort(s, 'cache').requests >= 90);
    const before = await tick();
    // (The other rules may speak: few reads yet, all L1 — not this one.)
    expect(guarded(before)).toEqual([]);

    // The operator promotes... well, sets 50 % (from the env's 100 %: the stored stage says it).
    const promote = await runCli(['rollout', 'product', '50'], env);
    expect(promote.code, promote.stderr).toBe(0);
    expect(promote.stdout).toMatch(/product: -% -> 50%/);
    await applied(50, 'event');
    expect(await get(HIGH[0] ?? '', 1)).toBe(200); // now control: straight to the database
    // The next tick records the stage's baseline (the window before it) and judges nothing yet.
    expect(guarded(await tick())).toEqual([]);
    const list = await runCli(['rollout', '--json'], env);
    const stages = z
      .object({
        stages: z.record(z.string(), z.object({ percent: z.number(), baseline: z.number().nullable() })),
      })
      .parse(JSON.parse(list.stdout));
    expect(stages.stages.product?.percent).toBe(50);
    expect(stages.stages.product?.baseline).toBeGreaterThan(0.5);

    // The fault: oversold stock goes negative. Fresh ids (not cached) for every request.
    await need(db, 'db').query(`UPDATE "${SCHEMA}".products SET stock = -1 WHERE id > 100`);
    const start = await apiSnapshot('the snapshot before the fault', () => true);
    let id = 101;
    const statuses = { low: [] as number[], middle: [] as number[], high: [] as number[] };
    for (let i = 0; i < 12; i++) {
      for (const u of LOW) statuses.low.push(await get(u, id++));
      for (const u of MIDDLE) statuses.middle.push(await get(u, id++));
      for (const u of HIGH) statuses.high.push(await get(u, id++));
    }
    // The cache cohort (buckets < 50) gets 503; the control cohort reads the rows as they are.
    expect(new Set([...statuses.low, ...statuses.middle])).toEqual(new Set([503]));
    expect(new Set(statuses.high)).toEqual(new Set([200]));
    await apiSnapshot('120 cache-cohort errors in the snapshot', (s) => {
      return cohort(s, 'cache').errors - cohort(start, 'cache').errors >= 120;
    });

    const r = await tick();
    expect(guarded(r)).toEqual([
      expect.objectContaining({
        namespace: 'product',
        rule: 'rollout-guard',
        action: 'rollback',
        setting: 'rolloutPercent',
        before: 50,
        after: 10,
        inputs: expect.objectContaining({ errorRate: 1 }),
      }),
    ]);

    // Live: a middle user is control now (200 from the database); a low one is still cache (503).
    await applied(10, 'event');
    const shifted = await apiSnapshot('the snapshot after the rollback', () => true);
    expect(await get(MIDDLE[0] ?? '', id++)).toBe(200);
    expect(await get(LOW[0] ?? '', id++)).toBe(503);
    await apiSnapshot('the middle user counted as control', (s) => {
      return cohort(s, 'control').requests === cohort(shifted, 'control').requests + 1;
    });

    // Stored, audited, counted.
    const after = z
      .object({
        stages: z.record(z.string(), z.object({ percent: z.number(), previous: z.number(), by: z.string() })),
      })
      .parse(JSON.parse((await runCli(['rollout', '--json'], env)).stdout));
    expect(after.stages.product).toMatchObject({
      percent: 10,
      previous: 50,
      by: expect.stringMatching(/^tuner:/),
    });
    const audit = (await need(raw, 'raw').xrange(keys.tuneAudit, '-', '+'))
      .map(([, f]) => auditEntrySchema.parse(JSON.parse(f[1] ?? '')))
      .filter((e) => e.setting === 'rolloutPercent');
    expect(
      audit.map((e) => [e.rule, e.action, e.before ?? null, e.after ?? null, e.by.split(':')[0]]),
    ).toEqual([
      ['operator', 'promote', null, 50, 'operator'],
      ['rollout-guard', 'rollback', 50, 10, 'tuner'],
    ]);
    const metrics = await (await fetch(`http://127.0.0.1:${need(worker, 'worker').port}/metrics`)).text();
    expect(metrics).toMatch(
      /cachefleet_tune_decisions_total\{rule="rollout-guard",action="rollback",mode="applied"\} 1\b/,
    );
    expect(
      need(worker, 'worker').logs.some(
        (l) => l.level === 40 && l.msg === 'tune applied: rollout-guard rollback product 50% -> 10%',
      ),
    ).toBe(true);
  }, 120_000);
});
