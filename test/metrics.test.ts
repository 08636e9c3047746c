/**
 * Issue 10, metrics: the live `/metrics` of real processes — one API pod
 * (`node --import tsx apps/api/src/main.ts`) and two workers (apps/worker/src/main.ts, the second
 * also running the change-capture reader) — on one private redis-server and the run's PostgreSQL.
 *
 *  1. `promtool check metrics` passes on the API's and on each worker's `/metrics` after traffic
 *     (promtool: PROMTOOL_BIN, found or installed by the set-up, test/setup/tools.ts).
 *  2. The metric families each process exports (minus prom-client's `process_*` / `nodejs_*`
 *     defaults, which must be there) are exactly the README's tables: the cache library's, the
 *     queue gauges', the API's for the API, the worker's and change capture's for the worker.
 *  3. The job metrics carry the job kind (`warm` `keys`, `invalidate` `keys`).
 *  4. The queue gauges come from one process of the three: the others export no series, the sum
 *     over all processes equals the queue's counts, the workers per queue are the two workers'; the holder SIGKILLed, another takes over once
 *     the lease expired; the next holder stopped with SIGTERM gives the lease up at once.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, type JobView, loadQueueConfig, QUEUE_NAMES } from '@cachefleet/jobs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startApiProc, startWorker, stopAllWorkers, type WorkerProc } from './fixtures/fleet-procs.js';
import { need, type RedisProcess, runCli, startRedis, testDatabaseUrl, waitUntil } from './helpers/index.js';
import { README_METRICS } from './readme-metrics.js';

const TAG = randomBytes(4).toString('hex');
const SCHEMA = `met_${TAG}`;
const CAPTURE_SCHEMA = `metc_${TAG}`;
const QUEUE_PREFIX = `metq${TAG}`;
const TOKEN = `metrics-test-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();
/** Short, so a takeover is quick; far longer than one round of three scrapes. */
const LEASE_MS = 6_000;

let redis: RedisProcess | undefined;
let raw: Redis | undefined;
let db: Db | undefined;
let jobs: JobClient | undefined;
let api: WorkerProc | undefined;
let worker: WorkerProc | undefined;
let captureWorker: WorkerProc | undefined;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 2 });
  raw.on('error', () => {});
  db = connectPg(DATABASE_URL, { max: 2 });
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: 200 });
  jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX }));
  const env = {
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: `met${TAG}:`,
    QUEUE_PREFIX,
    CATALOGUE_SCHEMA: SCHEMA,
    DATABASE_URL,
    SCHEDULES_ENABLED: 'false',
    METRICS_QUEUE_LEASE_MS: String(LEASE_MS),
    CACHE_TELEMETRY_INTERVAL_S: '1',
    LOG_LEVEL: 'info',
  };
  const readyTimeoutMs = 50_000;
  [api, worker, captureWorker] = await Promise.all([
    startApiProc({
      name: 'api',
      env: { ...env, API_PORT: '0', ADMIN_TOKEN: TOKEN, API_CRITICAL_WARM: 'false' },
      readyTimeoutMs,
    }),
    startWorker({ name: 'worker', env: { ...env, WORKER_HTTP_PORT: '0' }, readyTimeoutMs }),
    startWorker({
      name: 'capture-worker',
      queues: 'warm:1,invalidate:1,capture',
      env: { ...env, WORKER_HTTP_PORT: '0', CAPTURE_SCHEMA, CAPTURE_INSTALL: 'true' },
      readyTimeoutMs,
    }),
  ]);
  await traffic();
}, 120_000);

afterAll(async () => {
  await stopAllWorkers();
  await jobs?.close();
  raw?.disconnect();
  if (db !== undefined) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.query(`DROP SCHEMA IF EXISTS "${CAPTURE_SCHEMA}" CASCADE`);
    await db.close();
  }
  await redis?.stop();
});

function base(proc: WorkerProc): string {
  return `http://127.0.0.1:${proc.port}`;
}

async function scrape(proc: WorkerProc): Promise<string> {
  const res = await fetch(`${base(proc)}/metrics`);
  expect(res.status, `${proc.name} /metrics`).toBe(200);
  return res.text();
}

/** Polls a job until it completed or failed. */
function settled(id: string): Promise<JobView> {
  return waitUntil(
    `job ${id} to settle`,
    async (note) => {
      const j = await need(jobs, 'the job client').job(id);
      note(`state ${j?.state ?? 'absent'}`);
      return j?.state === 'completed' || j?.state === 'failed' ? j : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

/** Reads (a miss, a hit, a 304, a 404), an invalidation through the API, a keys warm. */
async function traffic(): Promise<void> {
  const url = base(need(api, 'the API'));
  const first = await fetch(`${url}/products/1`);
  expect(first.status).toBe(200);
  await first.text();
  const etag = first.headers.get('etag') ?? '';
  expect((await fetch(`${url}/products/1`, { headers: { 'if-none-match': etag } })).status).toBe(304);
  await (await fetch(`${url}/products/2`)).text();
  await (await fetch(`${url}/no/such/route`)).text();
  const invalidate = await fetch(`${url}/cache/invalidate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'product', keys: ['1'] }),
  });
  expect(invalidate.status).toBe(202);
  const { jobId } = (await invalidate.json()) as { jobId: string };
  const warm = await need(jobs, 'the job client').enqueue('warm', {
    type: 'keys',
    namespace: 'product',
    keys: ['1', '2', '3'],
  });
  for (const id of [jobId, warm.id]) expect((await settled(id)).state).toBe('completed');
}

/** Metric family names (`# TYPE` lines) of an exposition, in order, repeats kept. */
function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1] ?? '');
}

/** The value of one series (`name{labels}` exactly as exposed), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The samples of a family (its series lines). */
function seriesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const DEFAULTS = /^(process_|nodejs_)/;

const TABLES = README_METRICS;

/** What is in one list and not the other, both ways, sorted: `{}` when they agree. */
function difference(exported: readonly string[], documented: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const notDocumented = exported.filter((n) => !documented.includes(n)).sort();
  const notExported = documented.filter((n) => !exported.includes(n)).sort();
  if (notDocumented.length > 0) out['exported, not in the README'] = notDocumented;
  if (notExported.length > 0) out['in the README, not exported'] = notExported;
  return out;
}

describe('1–3. every process: promtool, the README tables, the defaults, the job kind', () => {
  it('promtool check metrics passes on the live /metrics of the API and of each worker', async () => {
    const promtool = process.env.PROMTOOL_BIN;
    if (promtool === undefined || promtool === '')
      throw new Error('PROMTOOL_BIN unset: run the tests through vitest (its set-up finds promtool)');
    for (const proc of [need(api, 'the API'), need(worker, 'the worker'), need(captureWorker, 'capture')]) {
      const text = await scrape(proc);
      const run = spawnSync(promtool, ['check', 'metrics'], {
        input: text,
        encoding: 'utf8',
        timeout: 20_000,
      });
      expect(
        { status: run.status, output: `${run.stdout}${run.stderr}`.trim() },
        `promtool check metrics on ${proc.name}'s /metrics`,
      ).toEqual({ status: 0, output: '' });
    }
  });

  it('each process exports exactly the families of its README tables, plus the process defaults once', async () => {
    const expected = {
      api: [...TABLES.cache, ...TABLES.queue, ...TABLES.api],
      'capture-worker': [...TABLES.cache, ...TABLES.queue, ...TABLES.worker, ...TABLES.capture],
      worker: [...TABLES.cache, ...TABLES.queue, ...TABLES.worker],
    };
    for (const proc of [need(api, 'the API'), need(captureWorker, 'capture'), need(worker, 'the worker')]) {
      const names = families(await scrape(proc));
      // Each family once (a second collectDefaultMetrics would throw; two registries would repeat).
      expect(
        names.filter((n, i) => names.indexOf(n) !== i),
        `${proc.name}: repeated families`,
      ).toEqual([]);
      for (const name of [
        'process_cpu_user_seconds_total',
        'process_resident_memory_bytes',
        'process_start_time_seconds',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_version_info',
      ])
        expect(names, `${proc.name}: default metric ${name}`).toContain(name);
      const own = names.filter((n) => !DEFAULTS.test(n));
      const documented = expected[proc.name as keyof typeof expected];
      expect(difference(own, documented), `${proc.name}'s /metrics against the README`).toEqual({});
      // One prefix for everything that is ours.
      expect(own.filter((n) => !n.startsWith('cachefleet_'))).toEqual([]);
    }
  });

  it('the API counts its traffic under the new names; the job metrics carry the job kind', async () => {
    const text = await scrape(need(api, 'the API'));
    expect(
      sample(
        text,
        'cachefleet_http_request_duration_seconds_count{route="/products/:id",method="GET",status="304"}',
      ),
    ).toBe(1);
    expect(
      sample(
        text,
        'cachefleet_http_request_duration_seconds_count{route="unmatched",method="GET",status="404"}',
      ),
    ).toBe(1);
    expect(sample(text, 'cachefleet_edge_etag_matches_total{route="/products/:id"}')).toBe(1);
    expect(
      sample(
        text,
        'cachefleet_cache_requests_total{impl="tiered",tier="l1",namespace="product",result="miss"}',
      ),
    ).toBeGreaterThanOrEqual(2);
    // Either worker may have run each job: the counts are summed over both.
    const texts = await Promise.all([
      scrape(need(worker, 'the worker')),
      scrape(need(captureWorker, 'capture')),
    ]);
    const total = (series: string) => texts.reduce((n, t) => n + (sample(t, series) ?? 0), 0);
    expect(
      total('cachefleet_job_duration_seconds_count{queue="warm",name="warm",kind="keys",status="completed"}'),
    ).toBe(1);
    expect(
      total(
        'cachefleet_job_duration_seconds_count{queue="invalidate",name="invalidate",kind="keys",status="completed"}',
      ),
    ).toBe(1);
  });
});

/** What the tests read of `GET /cache/stats?scope=fleet` (and of `status --json`'s `fleet`). */
const FleetBody = z.object({
  pods: z.array(
    z.object({ pod: z.string(), role: z.string(), bus: z.object({ connected: z.boolean() }).optional() }),
  ),
  namespaces: z.array(
    z.object({
      namespace: z.string(),
      pods: z.number(),
      l1: z.object({ hits: z.number(), misses: z.number() }),
      l2: z.object({ hits: z.number(), misses: z.number() }),
      loads: z.number(),
    }),
  ),
  redis: z.array(z.object({ role: z.string(), usedMemoryBytes: z.number(), connectedClients: z.number() })),
  sample: z
    .object({
      sampled: z.number(),
      namespaces: z.array(z.object({ namespace: z.string(), entries: z.number() })),
    })
    .optional(),
});

describe('3b. the fleet view (issue 13): every process in /cache/stats?scope=fleet and cachefleet status', () => {
  const fleetUrl = () => `${base(need(api, 'the API'))}/cache/stats?scope=fleet&samples=500`;

  it('lists the API pod and both workers by role, with the namespace counters and Redis INFO', async () => {
    const view = await waitUntil('the three processes in the fleet view', async (note) => {
      const res = await fetch(fleetUrl(), { headers: { authorization: `Bearer ${TOKEN}` } });
      note(`status ${res.status}`);
      if (res.status !== 200) return undefined;
      const body = FleetBody.parse(await res.json());
      const loads = body.namespaces.find((n) => n.namespace === 'product')?.loads ?? 0;
      note(`pods ${body.pods.map((p) => p.role).join(',')}, product loads ${loads}`);
      // The API's reads (traffic()) are in its next snapshot (one a second here).
      return body.pods.length === 3 && loads > 0 ? body : undefined;
    });
    expect(view.pods.map((p) => p.role).sort()).toEqual(['api', 'worker', 'worker']);
    for (const p of view.pods) expect(p.bus?.connected, p.pod).toBe(true);
    // The API read products (traffic()): its snapshot carries them.
    const product = view.namespaces.find((n) => n.namespace === 'product');
    expect(product?.loads).toBeGreaterThan(0);
    expect((product?.l1.hits ?? 0) + (product?.l1.misses ?? 0)).toBeGreaterThan(0);
    expect(view.redis.map((r) => r.role)).toEqual(['master']);
    expect(view.redis[0]?.connectedClients).toBeGreaterThanOrEqual(3);
    expect(view.sample?.namespaces.map((n) => n.namespace)).toContain('product');
  });

  it('one process exports the Redis gauges and the L2 estimates; every process counts its failovers', async () => {
    const procs = [
      need(api, 'the API'),
      need(worker, 'the worker'),
      need(captureWorker, 'the capture worker'),
    ];
    const texts = await Promise.all(procs.map(scrape));
    const active = texts.map((t) => sample(t, 'cachefleet_redis_exporter_active'));
    expect(active.filter((a) => a === 1)).toHaveLength(1);
    expect(active.filter((a) => a === 0)).toHaveLength(2);
    const holder = texts[active.indexOf(1)] ?? '';
    const used = seriesOf(holder, 'cachefleet_redis_memory_used_bytes');
    expect(used).toHaveLength(1);
    expect(used[0]).toMatch(/^cachefleet_redis_memory_used_bytes\{node="[^"]+",role="master"\} [1-9]\d*$/);
    expect(seriesOf(holder, 'cachefleet_redis_connected_clients')[0]).toMatch(/ ([3-9]|\d{2,})$/);
    expect(sample(holder, 'cachefleet_cache_l2_entries{namespace="product"}')).toBeGreaterThan(0);
    for (const [i, t] of texts.entries()) {
      expect(sample(t, 'cachefleet_redis_failover_events_total'), procs[i]?.name).toBe(0);
      if (active[i] === 1) continue;
      expect(seriesOf(t, 'cachefleet_redis_memory_used_bytes'), procs[i]?.name).toEqual([]);
      expect(seriesOf(t, 'cachefleet_cache_l2_entries'), procs[i]?.name).toEqual([]);
    }
  });

  it('is behind the admin token; a bad query is a 400 naming the field', async () => {
    const none = await fetch(fleetUrl());
    expect(none.status).toBe(401);
    await none.body?.cancel();
    const bad = await fetch(`${base(need(api, 'the API'))}/cache/stats?scope=galaxy&samples=-1`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(bad.status).toBe(400);
    const body = z.object({ error: z.string(), message: z.string() }).parse(await bad.json());
    expect(body.error).toBe('invalid_query');
    expect(body.message).toMatch(/scope/);
  });

  it('cachefleet status shows the same processes (text and --json), from the cache Redis itself', async () => {
    const env = {
      REDIS_URL: need(redis, 'redis').url,
      CACHE_KEY_PREFIX: `met${TAG}:`,
      QUEUE_PREFIX,
    };
    const json = await runCli(['status', '--json', '--samples', '100'], env);
    expect(json.code, json.stderr).toBe(0);
    const out = z.object({ fleet: FleetBody }).parse(JSON.parse(json.stdout));
    expect(out.fleet.pods.map((p) => p.role).sort()).toEqual(['api', 'worker', 'worker']);
    const text = await runCli(['status'], env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^POD\s+ROLE\s+HOST:PID/m);
    expect(text.stdout).toMatch(/^NAMESPACE\s+VERSIONS\s+PODS\s+L1 HIT/m);
    expect(text.stdout).toMatch(/^REDIS NODE\s+ROLE\s+MEMORY/m);
    expect(text.stdout.match(/^\S+\s+worker\s/gm)).toHaveLength(2);
  });
});

describe('4. the queue gauges: one exporter per fleet', () => {
  const LEASE_KEY = `${QUEUE_PREFIX}:__metrics:queue-exporter`;

  /** One scrape of each process still running: who exports, and what. */
  async function round(procs: readonly WorkerProc[]) {
    return Promise.all(
      procs.map(async (proc) => {
        const text = await scrape(proc);
        return {
          proc,
          text,
          active: sample(text, 'cachefleet_queue_exporter_active'),
          series: seriesOf(text, 'cachefleet_queue_jobs'),
        };
      }),
    );
  }

  /** The pid in the lease's value (`host:pid:random`), or undefined when nobody holds it. */
  async function leasePid(): Promise<number | undefined> {
    const value = await need(raw, 'redis').get(LEASE_KEY);
    return value === null ? undefined : Number(value.split(':')[1]);
  }

  it('exactly one process exports the counts, which match the queues; takeovers after SIGKILL and SIGTERM', async () => {
    const all = [need(api, 'the API'), need(worker, 'the worker'), need(captureWorker, 'capture')];
    const scraped = await round(all);
    const holders = scraped.filter((s) => s.active === 1);
    expect(
      holders.map((h) => h.proc.name),
      'processes reporting cachefleet_queue_exporter_active 1',
    ).toHaveLength(1);
    const holder = holders[0];
    if (holder === undefined) throw new Error('no holder');
    for (const other of scraped.filter((s) => s !== holder)) {
      expect(other.active, other.proc.name).toBe(0);
      expect(other.series, `${other.proc.name} exports no queue series`).toEqual([]);
    }
    expect(await leasePid()).toBe(holder.proc.pid);
    // Every queue, and the fleet-wide sum is the queue's own count (no double counting).
    const counts = await need(jobs, 'the job client').queue('warm').getJobCounts();
    for (const queue of QUEUE_NAMES)
      expect(
        holder.series.some((l) => l.includes(`queue="${queue}"`)),
        queue,
      ).toBe(true);
    const sum = (state: string) =>
      scraped.reduce(
        (n, s) => n + (sample(s.text, `cachefleet_queue_jobs{queue="warm",state="${state}"}`) ?? 0),
        0,
      );
    expect(sum('completed')).toBe(counts.completed);
    expect(sum('completed')).toBeGreaterThanOrEqual(1);
    // Workers per queue, from the same one process: both workers run warm and invalidate
    // (--queues), nothing runs the other queues; the others export no series.
    const workers = Object.fromEntries(
      QUEUE_NAMES.map((queue) => [queue, sample(holder.text, `cachefleet_queue_workers{queue="${queue}"}`)]),
    );
    expect(workers).toEqual({ warm: 2, invalidate: 2, migrate: 0, sweep: 0, backup: 0, tune: 0 });
    for (const other of scraped.filter((s) => s !== holder))
      expect(seriesOf(other.text, 'cachefleet_queue_workers'), other.proc.name).toEqual([]);

    // The holder dies without a word: once its lease expires, the next process scraped takes over.
    holder.proc.signal('SIGKILL');
    await holder.proc.exited;
    const rest = all.filter((p) => p !== holder.proc);
    const next = await waitUntil(
      'another process to export the queue gauges',
      async (note) => {
        const r = await round(rest);
        note(r.map((s) => `${s.proc.name}=${s.active}`).join(' '));
        const active = r.filter((s) => s.active === 1);
        if (active.length > 1) throw new Error(`two exporters: ${active.map((s) => s.proc.name).join(', ')}`);
        return active[0];
      },
      { timeoutMs: LEASE_MS * 4, intervalMs: 200 },
    );
    expect(next.series.length).toBeGreaterThan(0);
    expect(await leasePid()).toBe(next.proc.pid);

    // A graceful stop gives the lease up at once: the last process takes it at its first scrape.
    expect(await next.proc.stop(10_000)).toEqual({ code: 0, signal: null });
    expect(await leasePid()).toBeUndefined();
    const last = rest.find((p) => p !== next.proc);
    if (last === undefined) throw new Error('no third process');
    const [after] = await round([last]);
    expect(after?.active).toBe(1);
    expect(await leasePid()).toBe(last.pid);
  }, 90_000);
});
