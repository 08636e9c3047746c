/**
 * HTTP GET of a cached item under Zipf load (DESIGN target: ≥ 70% of a Fastify route returning a
 * constant JSON, p99 < 10 ms; the plan's 5,000 req/s as the peer figure).
 *
 * The servers run in a child process (http-child.ts): the API pod (`startApi`: PostgreSQL with
 * 100,000 seeded products in a schema of this run, the tiered cache on the bench's private Redis
 * under a prefix of this run) and a bare Fastify app. autocannon, here, drives 64 connections
 * (pipelining 1) at:
 *
 * - floor: `GET /constant` of the bare app, a constant product-like JSON;
 * - project: `GET /products/:id` of the API, read through the tiered cache;
 * - project: `GET /cached/:id` of the bare app, the same `cache.get` without the API's hooks (request
 *   ids, route metrics, edge ETags, rollout counter, per-request logger): what the cache itself costs;
 * - peer: `GET /direct/:id` of the bare app, the catalogue's query straight to PostgreSQL (no cache);
 * - peer: the plan's 5,000 req/s, a figure, not a measurement.
 *
 * Ids follow a Zipf law (s = 1) over 1…100,000 (rank → id through a fixed shuffle), drawn once from
 * a seeded generator; each row runs a warm-up, then the measured run. Before the load, the fleet's
 * own `warm {type:'all'}` job (the real worker runtime, `startWorker`, in this process, closed
 * before the load starts) puts every product into L2, as a warmed fleet has it: the cache row reads
 * a cached item, from L1 (the API's default 10,000 entries) or L2. Its hit rates per tier are the
 * difference of `GET /cache/stats` before and after the measured run.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import autocannon from 'autocannon';
import { z } from 'zod';
import { testDatabaseUrl } from '../../helpers/index.js';
import { ChildLines } from '../child.js';
import { errorMessage } from '../data.js';
import { errorRow, spread } from '../measure.js';
import type { Role, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'http';
const ITEMS = 100_000;
const ZIPF_S = 1.0;
/** Precomputed draws; a 10 s run at 20 k req/s takes 200,000 of them. */
const DRAWS = 1_000_000;
const CONNECTIONS = 64;
const DURATION_S = 10;
const WARMUP_S = 3;
/** Full size: each of the floor, API and cache.get rows measured this many times, in turn. */
const ROUNDS = 3;
const TARGET_RATIO = 0.7;
const TARGET_P99_MS = 10;
const PLAN_RPS = 5_000;
const POD_RATIO_FLOOR = 0.8;
const POD_P99_OF_FLOOR = 1.5;
const POD_RATIO_BARE = 0.95;
const CHILD = fileURLToPath(new URL('../http-child.ts', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const WARM_TIMEOUT_MS = 120_000;

export const httpChildConfigSchema = z.strictObject({
  redisPort: z.number().int().min(1).max(65535),
  databaseUrl: z.string().min(1),
  schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/),
  adminToken: z.string().min(16),
  /** Cache key prefix and queue prefix of this run: nothing of the other workloads is read. */
  prefix: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/),
});
type HttpChildConfig = z.infer<typeof httpChildConfigSchema>;

const readySchema = z.strictObject({ ready: z.literal(true), api: z.string(), bare: z.string() });

/** What the bench asks the child on its stdin (one JSON object a line; http-child.ts answers each). */
export const httpChildCommandSchema = z.union([
  z.strictObject({ cpu: z.literal(true) }),
  z.strictObject({ profile: z.literal('start') }),
  z.strictObject({ profile: z.literal('stop'), file: z.string().min(1) }),
]);
type HttpChildCommand = z.infer<typeof httpChildCommandSchema>;
const cpuAnswerSchema = z.strictObject({ cpu: z.number() });
const okAnswerSchema = z.strictObject({ ok: z.literal(true) });

/**
 * `BENCH_HTTP_CPU_PROFILE=<path>`: V8's CPU profiles of the server process during the measured runs
 * of the API row and of the bare `cache.get` row are written to `<path>-api.cpuprofile` and
 * `<path>-cached.cpuprofile` (docs/profile-api.md draws them as flame graphs).
 */
const PROFILE_ENV = 'BENCH_HTTP_CPU_PROFILE';

/** How much load: full size by duration; with `--n`, n requests a run (and fewer items to seed). */
interface Sizes {
  readonly items: number;
  /** Ids drawn in advance (the requests cycle through them). */
  readonly draws: number;
  readonly measured: { readonly duration: number } | { readonly amount: number };
  readonly warmup: { readonly duration: number } | { readonly amount: number };
  /** Measured runs of each row, taking turns (the rows' figures are the median round's). */
  readonly rounds: number;
}

function sizesOf(n: number | undefined): Sizes {
  if (n === undefined)
    return {
      items: ITEMS,
      draws: DRAWS,
      measured: { duration: DURATION_S },
      warmup: { duration: WARMUP_S },
      rounds: ROUNDS,
    };
  return {
    items: Math.min(ITEMS, Math.max(1_000, n * 2)),
    draws: Math.min(DRAWS, Math.max(10_000, n * 4)),
    measured: { amount: n },
    warmup: { amount: Math.max(CONNECTIONS, Math.floor(n / 4)) },
    rounds: 1,
  };
}

// ---------------------------------------------------------------------------------------------
// Zipf-distributed ids.

/** mulberry32: a small seeded generator, so every run draws the same ids. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `count` ids in 1…items, rank k drawn with probability ∝ 1/k^s (inverse CDF by binary search);
 * rank k is then id `shuffle[k]`, so the hot ids are spread over the table, not its first pages.
 */
export function zipfIds(items: number, count: number, s = ZIPF_S, seed = 0x5eed): Uint32Array {
  const random = generator(seed);
  const cdf = new Float64Array(items);
  let sum = 0;
  for (let k = 1; k <= items; k++) {
    sum += 1 / k ** s;
    cdf[k - 1] = sum;
  }
  const ids = new Uint32Array(items);
  for (let i = 0; i < items; i++) ids[i] = i + 1;
  for (let i = items - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = ids[i] ?? 0;
    ids[i] = ids[j] ?? 0;
    ids[j] = t;
  }
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    const u = random() * sum;
    let lo = 0;
    let hi = items - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] ?? 0) < u) lo = mid + 1;
      else hi = mid;
    }
    out[i] = ids[lo] ?? 1;
  }
  return out;
}

/** Share of the draws that fall on the `top` most frequent ids (what an L1 of that size could hold). */
function topShare(draws: Uint32Array, top: number): number {
  const counts = new Map<number, number>();
  for (const id of draws) counts.set(id, (counts.get(id) ?? 0) + 1);
  const sorted = [...counts.values()].sort((a, b) => b - a);
  let sum = 0;
  for (let i = 0; i < Math.min(top, sorted.length); i++) sum += sorted[i] ?? 0;
  return sum / draws.length;
}

// ---------------------------------------------------------------------------------------------
// Load runs.

interface Load {
  readonly rps: number;
  readonly requests: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  readonly non2xx: number;
  /** CPU of the server process per request over the run, µs (user + system; NaN when not read). */
  readonly cpuUs: number;
}

async function load(
  url: string,
  nextPath: () => string,
  size: { readonly duration: number } | { readonly amount: number },
): Promise<Load> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    pipelining: 1,
    timeout: 10,
    ...size,
    // autocannon notices that `amount` is reached only at its next sample tick (1 s by default),
    // which would stretch a short run to whole seconds.
    ...('amount' in size ? { sampleInt: 10 } : {}),
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => {
          req.path = nextPath();
          return req;
        },
      },
    ],
  });
  const seconds = result.duration > 0 ? result.duration : Number.NaN;
  return {
    rps: result.requests.total / seconds,
    requests: result.requests.total,
    seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpuUs: Number.NaN,
  };
}

/** A cursor over the draws: every call is the next id's path. */
function paths(draws: Uint32Array, prefix: string): () => string {
  let i = 0;
  return () => {
    const id = draws[i] ?? 1;
    i = i + 1 === draws.length ? 0 : i + 1;
    return `${prefix}${id}`;
  };
}

const statsSchema = z.object({
  tiers: z.object({
    l1: z.object({ hits: z.number(), misses: z.number() }),
    l2: z.object({ hits: z.number(), misses: z.number() }),
    l3: z.object({ loads: z.number() }),
  }),
});
type Stats = z.infer<typeof statsSchema>;

async function cacheStats(url: string, token: string): Promise<Stats> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return statsSchema.parse(await res.json());
}

interface TierRates {
  readonly l1: number;
  readonly l2: number;
  readonly loads: number;
  readonly reads: number;
}

function tierRates(before: Stats, after: Stats): TierRates {
  const d = (f: (s: Stats) => number) => f(after) - f(before);
  const l1Hits = d((s) => s.tiers.l1.hits);
  const l1Misses = d((s) => s.tiers.l1.misses);
  const l2Hits = d((s) => s.tiers.l2.hits);
  const l2Misses = d((s) => s.tiers.l2.misses);
  const rate = (h: number, m: number) => (h + m === 0 ? Number.NaN : h / (h + m));
  return {
    l1: rate(l1Hits, l1Misses),
    l2: rate(l2Hits, l2Misses),
    loads: d((s) => s.tiers.l3.loads),
    reads: l1Hits + l1Misses,
  };
}

/** The three routes must answer the same row for an id, or the comparison means nothing. */
async function checkSameRows(api: string, bare: string, ids: readonly number[]): Promise<void> {
  const get = async (url: string) => {
    const res = await fetch(url);
    return { url, status: res.status, body: await res.text() };
  };
  for (const id of ids) {
    const [first, ...others] = await Promise.all([
      get(`${bare}/direct/${id}`),
      get(`${api}/products/${id}`),
      get(`${bare}/cached/${id}`),
    ]);
    for (const other of others) {
      if (first === undefined || first.status !== 200 || other.status !== 200 || other.body !== first.body)
        throw new Error(
          `id ${id}: ${other.url} ${other.status} ${other.body.slice(0, 200)} ≠ ${first?.url} ${first?.status} ${first?.body.slice(0, 200)}`,
        );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// L2 warmed by the fleet.

/** Config of the API and the worker alike: the same Redis, key prefix, queues and catalogue. */
export function fleetEnv(config: HttpChildConfig): NodeJS.ProcessEnv {
  const redisUrl = `redis://127.0.0.1:${config.redisPort}`;
  return {
    DATABASE_URL: config.databaseUrl,
    CATALOGUE_SCHEMA: config.schema,
    CACHE_REDIS_URL: redisUrl,
    CACHE_KEY_PREFIX: `${config.prefix}:`,
    QUEUE_REDIS_URL: redisUrl,
    QUEUE_PREFIX: config.prefix,
    LOG_LEVEL: 'warn',
  };
}

/** Runs `warm {type:'all'}` on a real worker (in this process) and returns its result once done. */
async function warmAll(config: HttpChildConfig): Promise<{ result: unknown; ms: number }> {
  const [{ startWorker, loadWorkerConfig }, { JobClient, loadQueueConfig }, { pino }] = await Promise.all([
    import('@cachefleet/worker'),
    import('@cachefleet/jobs'),
    import('pino'),
  ]);
  const env: NodeJS.ProcessEnv = {
    ...fleetEnv(config),
    SCHEDULES_ENABLED: 'false',
    WORKER_QUEUES: 'warm:1',
    WORKER_HTTP_PORT: '0',
  };
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const worker = await startWorker(loadWorkerConfig(env, []), env, logger);
  const jobs = new JobClient(loadQueueConfig(env));
  try {
    const t0 = performance.now();
    const { id } = await jobs.enqueue('warm', { type: 'all' });
    const deadline = Date.now() + WARM_TIMEOUT_MS;
    for (;;) {
      const view = await jobs.job(id);
      if (view?.state === 'completed') return { result: view.result, ms: performance.now() - t0 };
      if (view?.state === 'failed') throw new Error(`warm all failed: ${view.failedReason ?? '?'}`);
      if (Date.now() > deadline)
        throw new Error(`warm all: still ${view?.state ?? 'unknown'} after ${WARM_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await jobs.close();
    await worker.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The child with the servers.

class Servers extends ChildLines {
  async ready(): Promise<{ api: string; bare: string }> {
    const line = await this.nextLine(READY_TIMEOUT_MS);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`unexpected http-child line: ${line.slice(0, 200)}`);
    }
    return readySchema.parse(parsed);
  }

  async ask(command: HttpChildCommand): Promise<unknown> {
    this.proc.stdin?.write(`${JSON.stringify(command)}\n`);
    const line = await this.nextLine(READY_TIMEOUT_MS);
    const answer: unknown = JSON.parse(line);
    if (typeof answer === 'object' && answer !== null && 'error' in answer)
      throw new Error(`http-child: ${String(answer.error)}`);
    return answer;
  }

  /** CPU time the server process has used so far, µs. */
  async cpu(): Promise<number> {
    return cpuAnswerSchema.parse(await this.ask({ cpu: true })).cpu;
  }

  async profile(command: HttpChildCommand & { profile: unknown }): Promise<void> {
    okAnswerSchema.parse(await this.ask(command));
  }

  async stop(): Promise<void> {
    this.proc.stdin?.end();
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Rows.

/** autocannon's latency histogram has a 1 ms resolution: whole numbers are shown as such. */
const ms = (v: number): string =>
  !Number.isFinite(v) ? '—' : Number.isInteger(v) || v >= 10 ? v.toFixed(0) : v.toFixed(2);
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '—');
const count = (v: number): string => v.toLocaleString('en-US');

function describe(l: Load): string {
  const cpu = Number.isFinite(l.cpuUs) ? `; server CPU ${l.cpuUs.toFixed(1)} µs/req` : '';
  return `p50 ${ms(l.p50)} / p99 ${ms(l.p99)} / max ${ms(l.max)} ms; ${count(l.requests)} req in ${l.seconds.toFixed(1)} s, errors ${l.errors}, non-2xx ${l.non2xx}${cpu}`;
}

function loadRow(name: string, role: Role, l: Load, extra: string): Row {
  const row: Row = { workload: NAME, name, role, opsPerSec: l.rps, extra: `${describe(l)}${extra}` };
  if (l.errors > 0 || l.non2xx > 0)
    return { ...row, error: `${l.errors} errors, ${l.non2xx} non-2xx: ${describe(l)}` };
  return row;
}

interface Running {
  readonly ctx: WorkloadContext;
  readonly sizes: Sizes;
  readonly draws: Uint32Array;
  readonly api: string;
  readonly bare: string;
  readonly token: string;
  readonly servers: Servers;
}

/**
 * The measured run of a row, with the server process's CPU per request over it (robust to a busy
 * machine, where req/s and latencies are not); `profile`: V8's CPU profile of that run, written there.
 */
async function measuredLoad(
  r: Running,
  url: string,
  nextPath: () => string,
  profile?: string,
): Promise<Load> {
  if (profile !== undefined) await r.servers.profile({ profile: 'start' });
  const cpu0 = await r.servers.cpu();
  const l = await load(url, nextPath, r.sizes.measured);
  const cpu1 = await r.servers.cpu();
  if (profile !== undefined) {
    await r.servers.profile({ profile: 'stop', file: profile });
    r.ctx.log(`${NAME}: CPU profile of the measured run written to ${profile}`);
  }
  return { ...l, cpuUs: l.requests > 0 ? (cpu1 - cpu0) / l.requests : Number.NaN };
}

/** One route the rounds measure. */
interface Target {
  readonly name: string;
  readonly role: Role;
  readonly url: string;
  readonly nextPath: () => string;
  /** Where that server's cache tells its hits per tier (before and after each measured run). */
  readonly stats?: string;
  /** Where to write a CPU profile of the first round's measured run, if anywhere. */
  readonly profile?: string;
}

interface Sample {
  readonly load: Load;
  readonly tiers?: TierRates;
}

async function sample(r: Running, t: Target, round: number): Promise<Sample> {
  r.ctx.log(`${NAME}: ${t.name}: round ${round + 1} of ${r.sizes.rounds}`);
  const before = t.stats === undefined ? undefined : await cacheStats(t.stats, r.token);
  const l = await measuredLoad(r, t.url, t.nextPath, round === 0 ? t.profile : undefined);
  if (t.stats === undefined || before === undefined) return { load: l };
  return { load: l, tiers: tierRates(before, await cacheStats(t.stats, r.token)) };
}

/** The round whose req/s is the median: its latencies and CPU belong to one real run. */
function medianSample(samples: readonly Sample[]): Sample {
  const { median } = spread(samples.map((s) => s.load.rps));
  const found = samples.find((s) => s.load.rps === median) ?? samples[0];
  if (found === undefined) throw new Error('no round was measured');
  return found;
}

const range = (values: readonly number[], digits: number, unit = ''): string => {
  const s = spread(values);
  return `${s.median.toFixed(digits)}${unit} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)}${unit})`;
};

/** A row from a target's rounds: the median round, with the spread of req/s and CPU per request. */
function roundsRow(t: Target, samples: readonly Sample[], extra: string): Row {
  const mid = medianSample(samples);
  const tiers =
    mid.tiers === undefined
      ? ''
      : `; L1 hit ${pct(mid.tiers.l1)}, L2 hit ${pct(mid.tiers.l2)} (of L1 misses), ${count(mid.tiers.loads)} loads from PostgreSQL in ${count(mid.tiers.reads)} reads`;
  const spreadText =
    samples.length > 1
      ? `; ${samples.length} rounds: req/s ${range(
          samples.map((s) => s.load.rps),
          0,
        )}, server CPU ${range(
          samples.map((s) => s.load.cpuUs),
          1,
          ' µs/req',
        )} (median, min–max; the latencies are the median round's)`
      : '';
  const bad = samples.find((s) => s.load.errors > 0 || s.load.non2xx > 0);
  const row = loadRow(t.name, t.role, bad?.load ?? mid.load, `${tiers}${spreadText}${extra}`);
  return { ...row, opsPerSec: mid.load.rps };
}

/** Per round, `f` of that round's two samples; their median, min and max. */
function perRound(a: readonly Sample[], b: readonly Sample[], f: (x: Load, y: Load) => number): number[] {
  return a.flatMap((s, i) => {
    const other = b[i];
    return other === undefined ? [] : [f(s.load, other.load)];
  });
}

/**
 * The targets, judged per round (noise that slows a whole round cancels out of a ratio) and then
 * over the rounds' median: the DESIGN's ≥ 0.70× floor and p99 < 10 ms; the pod's own (issue 15):
 * what the API's hooks, headers and logging add to the cache read must stay small: ≥ 0.80× the
 * floor's req/s, p99 ≤ 1.5× the floor's, ≥ 0.95× the bare `cache.get` route.
 */
function targets(api: readonly Sample[], bare: readonly Sample[], floor: readonly Sample[]): string {
  const vsFloor = spread(perRound(api, floor, (x, y) => x.rps / y.rps)).median;
  const p99 = spread(perRound(api, floor, (x, y) => x.p99 / y.p99)).median;
  const vsBare = spread(perRound(api, bare, (x, y) => x.rps / y.rps)).median;
  const cpu = spread(perRound(api, bare, (x, y) => x.cpuUs / y.cpuUs)).median;
  const apiP99 = medianSample(api).load.p99;
  const design = vsFloor >= TARGET_RATIO && apiP99 < TARGET_P99_MS ? 'met' : 'NOT met';
  const pod =
    vsFloor >= POD_RATIO_FLOOR && p99 <= POD_P99_OF_FLOOR && vsBare >= POD_RATIO_BARE ? 'met' : 'NOT met';
  return (
    `; per round (median): ${vsFloor.toFixed(2)}× floor, p99 ${p99.toFixed(2)}× floor's, ${vsBare.toFixed(2)}× the cache.get route, server CPU ${cpu.toFixed(2)}× the cache.get route's` +
    `; target ≥ ${TARGET_RATIO.toFixed(2)}× floor and p99 < ${TARGET_P99_MS} ms: ${design}` +
    `; pod targets ≥ ${POD_RATIO_FLOOR.toFixed(2)}× floor, p99 ≤ ${POD_P99_OF_FLOOR}× floor's, ≥ ${POD_RATIO_BARE.toFixed(2)}× the cache.get route: ${pod}`
  );
}

async function rows(r: Running): Promise<Row[]> {
  const size =
    'duration' in r.sizes.measured ? `${r.sizes.measured.duration} s` : `${r.sizes.measured.amount} req`;
  const shape = `${CONNECTIONS} connections, pipelining 1, ${size} a round after a warm-up; the three rows take turns in each round`;
  const profile = profileFile();
  const floor: Target = {
    name: 'Fastify GET /constant (constant JSON)',
    role: 'floor',
    url: `${r.bare}/constant`,
    nextPath: () => '/constant',
  };
  const api: Target = {
    name: 'cachefleet API GET /products/:id (tiered cache)',
    role: 'project',
    url: r.api,
    nextPath: paths(r.draws, '/products/'),
    stats: `${r.api}/cache/stats`,
    ...(profile !== undefined ? { profile: `${profile}-api.cpuprofile` } : {}),
  };
  const bare: Target = {
    name: 'Fastify GET /cached/:id (cache.get, no API hooks)',
    role: 'project',
    url: r.bare,
    nextPath: paths(r.draws, '/cached/'),
    stats: `${r.bare}/cached-stats`,
    ...(profile !== undefined ? { profile: `${profile}-cached.cpuprofile` } : {}),
  };
  const out: Row[] = [];
  const rotated = [floor, api, bare];
  const samples = new Map<Target, Sample[]>(rotated.map((t) => [t, []]));
  try {
    for (const t of rotated) {
      r.ctx.log(`${NAME}: ${t.name}: warm-up`);
      await load(t.url, t.nextPath, r.sizes.warmup);
    }
    for (let round = 0; round < r.sizes.rounds; round++)
      for (const t of rotated) samples.get(t)?.push(await sample(r, t, round));
    const of = (t: Target): Sample[] => samples.get(t) ?? [];
    out.push(
      roundsRow(floor, of(floor), `; ${shape}`),
      roundsRow(api, of(api), targets(of(api), of(bare), of(floor))),
      roundsRow(bare, of(bare), ''),
    );
  } catch (err) {
    for (const t of rotated) out.push(errorRow(NAME, t.name, t.role, errorMessage(err)));
  }

  const directName = 'Fastify GET /direct/:id (PostgreSQL, no cache)';
  try {
    const nextPath = paths(r.draws, '/direct/');
    r.ctx.log(`${NAME}: direct: warm-up`);
    await load(r.bare, nextPath, r.sizes.warmup);
    const measured = await measuredLoad(r, r.bare, nextPath);
    out.push(
      loadRow(directName, 'peer', measured, '; pg pool of 4 (as the API), the catalogue query; one run'),
    );
  } catch (err) {
    out.push(errorRow(NAME, directName, 'peer', errorMessage(err)));
  }

  out.push({
    workload: NAME,
    name: "the plan's figure",
    role: 'peer',
    opsPerSec: PLAN_RPS,
    extra: 'not measured: the req/s the plan asks of one pod',
  });
  return out;
}

function profileFile(): string | undefined {
  const file = process.env[PROFILE_ENV];
  return file === undefined || file.trim() === '' ? undefined : file;
}

export const http: Workload = {
  name: NAME,
  describe: `autocannon, ${CONNECTIONS} connections, GET of a product by Zipf id (s = ${ZIPF_S}) over ${count(ITEMS)} items (fewer with --n); servers in a child process; target ≥ ${TARGET_RATIO.toFixed(2)}× floor, p99 < ${TARGET_P99_MS} ms`,
  async run(ctx) {
    const sizes = sizesOf(ctx.n);
    const schema = `bench_http_${randomBytes(4).toString('hex')}`;
    const token = randomBytes(24).toString('base64url');
    const prefix = `${ctx.runId}-http`.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
    let db: Db | undefined;
    let servers: Servers | undefined;
    try {
      // The tests' PostgreSQL: the private server run.ts started (test/setup), or TEST_DATABASE_URL.
      const databaseUrl = testDatabaseUrl();
      db = connectPg(databaseUrl);
      await migrate(db, { schema });
      const t0 = performance.now();
      await seed(db, { schema, count: sizes.items });
      ctx.log(
        `${NAME}: ${count(sizes.items)} products seeded in ${schema} (${Math.round(performance.now() - t0)} ms)`,
      );
      const draws = zipfIds(sizes.items, sizes.draws);
      ctx.log(`${NAME}: the 10,000 hottest ids carry ${pct(topShare(draws, 10_000))} of the draws`);
      const config: HttpChildConfig = {
        redisPort: ctx.port,
        databaseUrl,
        schema,
        adminToken: token,
        prefix,
      };
      servers = new Servers(
        spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
      const warmed = await warmAll(config);
      ctx.log(
        `${NAME}: L2 warmed by the fleet's warm all job in ${Math.round(warmed.ms)} ms: ${JSON.stringify(warmed.result)}`,
      );
      const { api, bare } = await servers.ready();
      await checkSameRows(api, bare, [...draws.subarray(0, 5)]);
      return await rows({ ctx, sizes, draws, api, bare, token, servers });
    } catch (err) {
      return [errorRow(NAME, 'http load', 'project', errorMessage(err))];
    } finally {
      await servers?.stop();
      if (db !== undefined) {
        await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
        await db.close();
      }
    }
  },
};
