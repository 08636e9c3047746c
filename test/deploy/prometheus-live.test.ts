/**
 * Issue 14, a real Prometheus: Debian's `prometheus` (PROMETHEUS_BIN, found or installed by the
 * set-up) scrapes a running API pod and a running worker on loopback every second and evaluates the
 * shipped rules (deploy/prometheus/rules.yaml); the test reads its HTTP API.
 *
 * Processes: a cache Redis and a queue Redis (two private redis-servers, so killing the cache one
 * leaves the queues running), the run's PostgreSQL, an API pod (apps/api/src/main.ts) and a worker
 * (apps/worker/src/main.ts, `--queues warm:2,invalidate:2,migrate:1,capture`: no worker serves `sweep`).
 *
 * Rule timings: the server loads a copy of the shipped file made by shortenRules
 * (test/deploy/prometheus-server.ts) in which every `for:` and every range window is divided by 60
 * (a minute becomes a second: `rate(…[5m])` → `[5s]`, `for: 10m` → `10s`), a `for:` being at least
 * 3 s so an alert is pending for a few 1 s evaluations before it fires. Nothing else differs; the
 * exact timings are covered by `promtool test rules` (test/deploy/prometheus.test.ts).
 *
 *  1. Both targets are up, every shipped rule loads and evaluates without error, and every recording
 *     rule returns data after traffic (reads, a warm, an invalidation, a failed job, a change the
 *     capture reader turns into invalidations).
 *  2. The cache Redis SIGKILLed while reads of products not yet cached go through the API:
 *     CachefleetL2BreakerOpen, CachefleetBusDisconnected and CachefleetHitRateLow go pending, then
 *     firing (Prometheus' own ALERTS series shows the pending phase), and resolve once the same
 *     Redis is restarted and reads hit again.
 *  3. A `sweep` job waits on a queue no worker serves: CachefleetQueueNotDraining goes pending, then
 *     fires, for queue="sweep" only.
 *  4. Every panel query of every deploy/grafana/dashboards/*.json names only series Prometheus has
 *     (scraped or recorded) and returns at least one series (variables substituted:
 *     test/deploy/dashboards.ts); no dashboard file is a failure.
 *
 * Waits have deadlines; nothing asserts how long a step took.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig } from '@cachefleet/jobs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { startApiProc, startWorker, stopAllWorkers, type WorkerProc } from '../fixtures/fleet-procs.js';
import {
  delay,
  jobSettled,
  need,
  type RedisProcess,
  startRedis,
  testDatabaseUrl,
  waitUntil,
} from '../helpers/index.js';
import { dashboardQueries } from './dashboards.js';
import { type PrometheusServer, shortenRules, startPrometheus } from './prometheus-server.js';
import { metricNames } from './promql.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SHIPPED_RULES = join(ROOT, 'deploy', 'prometheus', 'rules.yaml');
/** Where the dashboards are looked for (the Grafana provisioning folder of deploy/). */
const DASHBOARDS = join(ROOT, 'deploy', 'grafana', 'dashboards');

const TAG = randomBytes(4).toString('hex');
const SCHEMA = `prom_${TAG}`;
const CAPTURE_SCHEMA = `promc_${TAG}`;
const QUEUE_PREFIX = `promq${TAG}`;
const TOKEN = `prometheus-live-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();
/** Products seeded; the outage reads products FRESH_FROM and up, never read before. */
const PRODUCTS = 6_000;
const FRESH_FROM = 1_000;

let cacheRedis: RedisProcess | undefined;
let queueRedis: RedisProcess | undefined;
let db: Db | undefined;
let jobs: JobClient | undefined;
let api: WorkerProc | undefined;
let worker: WorkerProc | undefined;
let prom: PrometheusServer | undefined;
let sweepEnqueuedAt = 0;

const shipped = readFileSync(SHIPPED_RULES, 'utf8');
const shippedRuleCount = z
  .object({ groups: z.array(z.object({ rules: z.array(z.unknown()) })) })
  .parse(parse(shipped))
  .groups.reduce((n, g) => n + g.rules.length, 0);

beforeAll(async () => {
  // The cache Redis has a maxmemory, as shipped (its pressure gauge exists only then).
  [cacheRedis, queueRedis] = await Promise.all([
    startRedis({ args: ['--maxmemory', '256mb'] }),
    startRedis(),
  ]);
  db = connectPg(DATABASE_URL, { max: 2 });
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: PRODUCTS });
  jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: queueRedis.url, QUEUE_PREFIX }));
  const env = {
    CACHE_REDIS_URL: cacheRedis.url,
    QUEUE_REDIS_URL: queueRedis.url,
    CACHE_KEY_PREFIX: `prom${TAG}:`,
    QUEUE_PREFIX,
    CATALOGUE_SCHEMA: SCHEMA,
    DATABASE_URL,
    SCHEDULES_ENABLED: 'false',
    CACHE_TELEMETRY_INTERVAL_S: '1',
    LOG_LEVEL: 'info',
  };
  const readyTimeoutMs = 50_000;
  [api, worker] = await Promise.all([
    startApiProc({
      name: 'api',
      env: { ...env, API_PORT: '0', ADMIN_TOKEN: TOKEN, API_CRITICAL_WARM: 'false' },
      readyTimeoutMs,
    }),
    startWorker({
      name: 'worker',
      queues: 'warm:2,invalidate:2,migrate:1,capture',
      env: { ...env, WORKER_HTTP_PORT: '0', CAPTURE_SCHEMA, CAPTURE_INSTALL: 'true', CAPTURE_POLL_MS: '100' },
      readyTimeoutMs,
    }),
  ]);
  prom = await startPrometheus({
    rules: shortenRules(shipped, { divisor: 60, minForMs: 3_000 }),
    jobs: [
      { job: 'api', targets: [`127.0.0.1:${api.port}`] },
      { job: 'worker', targets: [`127.0.0.1:${worker.port}`] },
    ],
  });
  // A job on a queue no worker serves (case 3) waits from now on.
  sweepEnqueuedAt = Date.now();
  await jobs.enqueue('sweep', { namespace: 'product' });
  await traffic();
}, 120_000);

afterAll(async () => {
  await prom?.stop();
  await stopAllWorkers();
  await jobs?.close();
  if (db !== undefined) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.query(`DROP SCHEMA IF EXISTS "${CAPTURE_SCHEMA}" CASCADE`);
    await db.close();
  }
  await Promise.all([cacheRedis?.stop(), queueRedis?.stop()]);
});

function apiUrl(): string {
  return `http://127.0.0.1:${need(api, 'the API').port}`;
}

async function read(id: number): Promise<number> {
  const res = await fetch(`${apiUrl()}/products/${id}`);
  await res.text();
  return res.status;
}

const settled = (id: string) => jobSettled(need(jobs, 'the job client'), id, 30_000);

/**
 * Reads (misses, then hits), an invalidation through the API, a keys warm, a whole-namespace
 * invalidation, a job that fails (an unknown namespace), and a database change the capture reader
 * turns into an invalidation.
 */
async function traffic(): Promise<void> {
  for (const id of [1, 2, 3, 1, 2, 3, 4]) expect(await read(id)).toBe(200);
  const invalidate = await fetch(`${apiUrl()}/cache/invalidate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'product', keys: ['1'] }),
  });
  expect(invalidate.status).toBe(202);
  const { jobId } = z.object({ jobId: z.string() }).parse(await invalidate.json());
  const client = need(jobs, 'the job client');
  const warm = await client.enqueue('warm', { type: 'keys', namespace: 'product', keys: ['5', '6'] });
  const failing = await client.enqueue('invalidate', { scope: 'keys', namespace: 'nosuch', keys: ['1'] });
  expect((await settled(jobId)).state).toBe('completed');
  expect((await settled(warm.id)).state).toBe('completed');
  // A whole-namespace invalidation (cachefleet_cache_invalidations_total), after the warm.
  const whole = await client.enqueue('invalidate', { scope: 'namespace', namespace: 'product' });
  expect((await settled(whole.id)).state).toBe('completed');
  expect((await settled(failing.id)).state).toBe('failed');
  await need(db, 'the database').query(
    `UPDATE "${SCHEMA}".products SET price_cents = price_cents + 1 WHERE id = 7`,
  );
}

/** Waits until Prometheus scraped both targets successfully after `since` (ms). */
async function scrapedSince(since: number): Promise<void> {
  const p = need(prom, 'prometheus');
  await waitUntil('both targets scraped after the traffic', async (note) => {
    const last = await p.query('timestamp(up == 1)');
    note(JSON.stringify(last));
    return last.length === 2 && last.every((s) => Number(s.value) * 1_000 > since) ? true : undefined;
  });
}

/** Was the alert pending at some evaluation since `since` (ms)? Prometheus' own ALERTS series says. */
async function wasPending(
  name: string,
  labels: Readonly<Record<string, string>>,
  since: number,
): Promise<boolean> {
  const windowS = Math.ceil((Date.now() - since) / 1_000) + 1;
  const matchers = Object.entries({ alertname: name, alertstate: 'pending', ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',');
  return (await need(prom, 'prometheus').query(`max_over_time(ALERTS{${matchers}}[${windowS}s])`)).length > 0;
}

describe('1. scrapes and rules', () => {
  it('both targets are up and every shipped rule evaluates without error', async () => {
    const p = need(prom, 'prometheus');
    const up = await waitUntil('both targets up', async (note) => {
      const s = await p.query('up == 1');
      note(JSON.stringify(s));
      return s.length === 2 ? s : undefined;
    });
    expect(up.map((s) => s.metric.job).sort()).toEqual(['api', 'worker']);
    const rules = await waitUntil('every rule evaluated', async (note) => {
      const all = await p.rules();
      note(all.map((r) => `${r.name}: ${r.health}`).join(', '));
      return all.length === shippedRuleCount && all.every((r) => r.health !== 'unknown') ? all : undefined;
    });
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
  });

  it('every recording rule returns data', async () => {
    const p = need(prom, 'prometheus');
    const records = (await p.rules()).filter((r) => r.type === 'recording').map((r) => r.name);
    expect(records.length).toBeGreaterThan(5);
    const empty = await waitUntil(
      'every recording rule to return data',
      async (note) => {
        const missing: string[] = [];
        for (const name of new Set(records)) if ((await p.query(name)).length === 0) missing.push(name);
        note(`no data yet: ${missing.join(', ')}`);
        return missing.length === 0 ? missing : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    expect(empty).toEqual([]);
  }, 40_000);
});

describe('2. the cache Redis killed while reads go through the API', () => {
  it('L2 breaker open, bus disconnected and hit rate low go pending → firing, and resolve after Redis returns', async () => {
    const p = need(prom, 'prometheus');
    const redis = need(cacheRedis, 'the cache Redis');
    // Per alert, the labels of the series it must fire for: the API pod (the worker has no L1, so
    // no bus alert), and the namespace read.
    const expected = [
      ['CachefleetL2BreakerOpen', { job: 'api' }],
      ['CachefleetBusDisconnected', { job: 'api' }],
      ['CachefleetHitRateLow', { namespace: 'product' }],
    ] as const;
    // During the outage every read is of a product never read before (an L1 miss, and L2 is down:
    // the loader answers), so the hit rate falls; afterwards the same ten products (L1 hits).
    const now: { phase: 'outage' | 'after' | 'done' } = { phase: 'outage' };
    let reads = 0;
    const reader = (async () => {
      for (let i = 0; now.phase !== 'done'; i++) {
        const id = now.phase === 'outage' ? FRESH_FROM + (i % (PRODUCTS - FRESH_FROM)) : 1 + (i % 10);
        // Through the outage too: from L1 or the database, never an error.
        expect(await read(id)).toBe(200);
        reads++;
      }
    })();
    let killed = false;
    try {
      // None active before (the first reads' misses may have made the hit rate pending for a while).
      for (const [name, labels] of expected) await p.waitForNoAlert(name, { labels, timeoutMs: 20_000 });
      const killedAt = Date.now();
      await redis.kill();
      killed = true;
      for (const [name, labels] of expected) {
        const firing = await p.waitForAlert(name, 'firing', { labels, timeoutMs: 40_000 });
        expect(Date.parse(firing.activeAt), `${name} became active after the kill`).toBeGreaterThanOrEqual(
          killedAt - 1_000,
        );
        expect(firing.annotations.runbook_url).toBe(`docs/runbook.md#${name.toLowerCase()}`);
        expect(await wasPending(name, labels, killedAt), `${name} was pending before it fired`).toBe(true);
      }
      await redis.restart();
      killed = false;
      now.phase = 'after';
      for (const [name, labels] of expected) await p.waitForNoAlert(name, { labels, timeoutMs: 30_000 });
    } finally {
      now.phase = 'done';
      // A failure above must not leave the cache Redis down for the next tests (a CI run where one
      // alert stayed pending here then failed the dashboards' jobs too).
      if (killed) await redis.restart();
      await reader;
    }
    expect(reads).toBeGreaterThan(0);
  }, 90_000);
});

describe('3. a queue with no worker', () => {
  it('CachefleetQueueNotDraining goes pending → firing for that queue only', async () => {
    const p = need(prom, 'prometheus');
    const firing = await p.waitForAlert('CachefleetQueueNotDraining', 'firing', {
      labels: { queue: 'sweep' },
      timeoutMs: 40_000,
    });
    expect(Number(firing.value), 'jobs waiting').toBe(1);
    expect(Date.parse(firing.activeAt)).toBeGreaterThanOrEqual(sweepEnqueuedAt - 1_000);
    expect(await wasPending('CachefleetQueueNotDraining', { queue: 'sweep' }, sweepEnqueuedAt)).toBe(true);
    const others = (await p.alerts()).filter(
      (a) => a.labels.alertname === 'CachefleetQueueNotDraining' && a.labels.queue !== 'sweep',
    );
    expect(others).toEqual([]);
  });

  it('CachefleetQueueNoWorkers fires for the queues no worker serves, not for the served ones', async () => {
    const p = need(prom, 'prometheus');
    await p.waitForAlert('CachefleetQueueNoWorkers', 'firing', {
      labels: { queue: 'sweep' },
      timeoutMs: 40_000,
    });
    const named = (await p.alerts())
      .filter((a) => a.labels.alertname === 'CachefleetQueueNoWorkers')
      .map((a) => a.labels.queue);
    for (const served of ['warm', 'invalidate', 'migrate']) expect(named).not.toContain(served);
  });
});

describe('4. the dashboards', () => {
  it('every panel query of deploy/grafana/dashboards/*.json returns data', async () => {
    const p = need(prom, 'prometheus');
    // Every variable at "All" (its allValue, `.+`), as Grafana opens the dashboard; the built-ins
    // fit this server's 1 s scrapes: 15 s windows hold several, 5 m covers the whole run.
    const queries = dashboardQueries(DASHBOARDS, { rateInterval: '15s', interval: '15s', range: '5m' });
    if (queries.length === 0)
      throw new Error(
        `no dashboard: ${DASHBOARDS} holds no panel query (the Grafana dashboards are missing)`,
      );
    await traffic();
    await scrapedSince(Date.now());
    const pending = new Map<string, string>();
    for (const q of queries) pending.set(`${q.dashboard} › ${q.panel} (${q.refId}): ${q.expr}`, q.expr);
    expect(pending.size, 'panel queries found').toBeGreaterThan(0);
    const exprs = [...pending.values()];
    // Asked again until each has answered once, for a few seconds: the rate windows need two
    // scrapes of this traffic. A query Prometheus refuses keeps its error.
    const deadline = Date.now() + 15_000;
    const why = new Map<string, string>();
    for (;;) {
      for (const [where, expr] of pending) {
        const answer = await p.query(expr).then(
          (series) => (series.length > 0 ? undefined : 'no series'),
          (err: unknown) => (err instanceof Error ? err.message : String(err)),
        );
        if (answer === undefined) pending.delete(where);
        else why.set(where, answer);
      }
      if (pending.size === 0 || Date.now() > deadline) break;
      await delay(500);
    }
    // Every name a query selects is a series Prometheus scraped from the processes or recorded by
    // the shipped rules (a name behind `or` would not stop a query from returning data).
    const unknown: string[] = [];
    for (const name of new Set(exprs.flatMap(metricNames)))
      if ((await p.query(`group({__name__="${name}"})`)).length === 0) unknown.push(name);
    expect({
      'panel queries that returned no series': [...pending.keys()].map(
        (where) => `${where} → ${why.get(where)}`,
      ),
      'names no process exports and no rule records': unknown,
    }).toEqual({
      'panel queries that returned no series': [],
      'names no process exports and no rule records': [],
    });
  }, 120_000);
});
