/**
 * Warming L2 (DESIGN target: ≥ 50% of `redis-benchmark SET -P 16` in keys/s), on the private Redis:
 *
 * - floor: the `redis-benchmark` binary, `-t set -P 16 -d 200` (50 connections, C);
 * - a bare ioredis floor: the same encoded values as pipelined `SET … PX` from Node, batches of 1,000;
 * - the library: `cache.fleet.warm(ns, ids)` in batches of 1,000 (impl `redis`, no L1) from a cold L2,
 *   then again over the existing entries (the fingerprint path), and once more for a namespace with
 *   a tag per entry (the catalogue's product has one);
 * - the worker: the real runtime (`startWorker`, in this process) runs a `warm {type:'all'}` enqueued
 *   through JobClient; timed from the enqueue until the completed event (job bookkeeping, cursor saves).
 *
 * The namespace's `loadMany` returns precomputed ~200-byte product values (zod-checked by the cache).
 * L2 is emptied with FLUSHDB between runs (the server is the bench's own); queues live in db 1.
 */
import { execFile } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { JobClient, JobName, PayloadInputOf, QueueName } from '@cachefleet/jobs';
import type { Cache, Namespace } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { errorMessage } from '../data.js';
import { bestOf, errorRow, type LoopResult } from '../measure.js';
import { formatOps, formatRatio } from '../report.js';
import type { Role, Row, Workload, WorkloadContext } from '../types.js';
import { productNamespace, products, VALUE_BYTES } from '../warm-definitions.js';

const NAME = 'warm';
const DEFAULT_N = 200_000;
const RUNS = 3;
const BATCH = 1_000;
const PIPELINE = 16;
const TARGET = 0.5;
/** The cache prefix of the fleet benches: keys are `cf:product:v1:<id>`, the library's default layout. */
export const FLEET_PREFIX = 'cf:';
/** The namespace's L2 TTL (3,600 s), for the ioredis floor's PX. */
const TTL_MS = 3_600_000;
/** Read at run time: run.ts's set-up (test/setup) sets it after this module is imported. */
const benchmarkBin = (): string => process.env.REDIS_BENCHMARK_BIN || 'redis-benchmark';
const DEFINITIONS = fileURLToPath(new URL('../warm-definitions.ts', import.meta.url));
/** The queue Redis is the same server, another database: FLUSHDB of the cache's db 0 leaves it alone. */
const QUEUE_DB = 1;

interface Measured extends LoopResult {
  readonly note?: string;
  /** CPU the Redis main thread spent during the run, µs. */
  readonly cpuUs?: number;
  /** CPU this process spent during the run (all its threads), µs. */
  readonly nodeCpuUs?: number;
}

const keyOf = (id: string): string => `${FLEET_PREFIX}product:v1:${id}`;

// ---------------------------------------------------------------------------------------------
// The real worker runtime, in this process (shared with the bulk-invalidate workload).

export interface FinishedJob {
  readonly result: unknown;
  /** From just before the enqueue until the completed event arrived, ms. */
  readonly wallMs: number;
  /** finishedOn - processedOn as BullMQ recorded them (the last attempt of the job), ms. */
  readonly processingMs: number;
}

export interface BenchWorker {
  readonly jobs: JobClient;
  /** Enqueues through JobClient and waits for the job's completed event (throws if it failed). */
  run<N extends JobName>(name: N, payload: PayloadInputOf<N>, timeoutMs: number): Promise<FinishedJob>;
  close(): Promise<void>;
}

export async function startBenchWorker(
  port: number,
  runId: string,
  queues: string,
  productCount: number,
  /** Another definitions module (a path), and more settings (the lifecycle benches). */
  more: { readonly definitions?: string; readonly env?: Readonly<Record<string, string>> } = {},
): Promise<BenchWorker> {
  const [{ startWorker, loadWorkerConfig }, { JobClient, loadQueueConfig, JOBS }, { QueueEvents }, { pino }] =
    await Promise.all([
      import('@cachefleet/worker'),
      import('@cachefleet/jobs'),
      import('bullmq'),
      import('pino'),
    ]);
  const env: NodeJS.ProcessEnv = {
    CACHE_IMPL: 'redis',
    CACHE_REDIS_URL: `redis://127.0.0.1:${port}`,
    CACHE_KEY_PREFIX: FLEET_PREFIX,
    QUEUE_REDIS_URL: `redis://127.0.0.1:${port}/${QUEUE_DB}`,
    QUEUE_PREFIX: `bench-${runId.replace(/[^A-Za-z0-9_-]/g, '')}`,
    SCHEDULES_ENABLED: 'false',
    WORKER_QUEUES: queues,
    WORKER_HTTP_PORT: '0',
    WORKER_DEFINITIONS: pathToFileURL(more.definitions ?? DEFINITIONS).href,
    BENCH_PRODUCTS: String(productCount),
    ...more.env,
  };
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const worker = await startWorker(loadWorkerConfig(env, []), env, logger);
  let queueConfig: ReturnType<typeof loadQueueConfig>;
  let jobs: JobClient;
  try {
    queueConfig = loadQueueConfig(env);
    jobs = new JobClient(queueConfig);
  } catch (err) {
    await worker.close();
    throw err;
  }
  const events = new Map<QueueName, InstanceType<typeof QueueEvents>>();
  const eventsOf = async (queue: QueueName): Promise<InstanceType<typeof QueueEvents>> => {
    let e = events.get(queue);
    if (e === undefined) {
      e = new QueueEvents(queue, {
        connection: { host: '127.0.0.1', port, db: QUEUE_DB },
        prefix: queueConfig.prefix,
      });
      e.on('error', () => {});
      events.set(queue, e);
      await e.waitUntilReady();
    }
    return e;
  };
  return {
    jobs,
    async run(name, payload, timeoutMs) {
      const queue = JOBS[name].queue;
      const queueEvents = await eventsOf(queue);
      const t0 = performance.now();
      const enqueued = await jobs.enqueue(name, payload);
      if (enqueued.deduplicated) throw new Error(`${name}: deduplicated into job ${enqueued.id}`);
      const job = await jobs.queue(queue).getJob(enqueued.id);
      if (job === undefined) throw new Error(`${name}: job ${enqueued.id} not found`);
      const result: unknown = await job.waitUntilFinished(queueEvents, timeoutMs);
      const wallMs = performance.now() - t0;
      const done = await jobs.queue(queue).getJob(enqueued.id);
      const processingMs = (done?.finishedOn ?? Number.NaN) - (done?.processedOn ?? Number.NaN);
      return { result, wallMs, processingMs };
    },
    async close() {
      await Promise.all([...events.values()].map((e) => e.close()));
      await jobs.close();
      await worker.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Rows.

function runBenchmark(port: number, n: number): Promise<string> {
  const args = ['-h', '127.0.0.1', '-p', String(port), '-t', 'set', '-P', String(PIPELINE)];
  args.push('-n', String(n), '-r', '1000000', '-q', '-d', String(VALUE_BYTES));
  return new Promise((resolve, reject) => {
    execFile(benchmarkBin(), args, { timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${benchmarkBin()} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** `SET: 869565.19 requests per second, p50=0.839 msec` (after `\r` progress lines). */
function parseBenchmark(stdout: string): number {
  const all = [...stdout.matchAll(/SET: ([\d.]+) requests per second/g)];
  const rps = Number(all[all.length - 1]?.[1]);
  if (!(rps > 0)) throw new Error(`no SET rate in redis-benchmark output: ${stdout.slice(-200)}`);
  return rps;
}

async function floorBenchmark(port: number, n: number): Promise<Measured> {
  return { opsPerSec: parseBenchmark(await runBenchmark(port, n)), bad: 0 };
}

async function floorIoredis(
  client: Redis,
  keys: readonly string[],
  wires: readonly string[],
): Promise<Measured> {
  const n = keys.length;
  let bad = 0;
  const t0 = performance.now();
  for (let at = 0; at < n; at += BATCH) {
    const p = client.pipeline();
    for (let i = at; i < Math.min(at + BATCH, n); i++)
      p.set(keys[i] as string, wires[i] as string, 'PX', TTL_MS);
    const replies = (await p.exec()) ?? [];
    for (const [error, reply] of replies) if (error !== null || reply !== 'OK') bad++;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { opsPerSec: n / seconds, bad };
}

export async function openCache(port: number): Promise<Cache> {
  const { createCache } = await import('@cachefleet/tiered-cache');
  const cache = createCache({
    impl: 'redis',
    redis: { mode: 'single', url: `redis://127.0.0.1:${port}` },
    prefix: FLEET_PREFIX,
    hotKeys: { enabled: false },
  });
  await cache.start();
  const status = await cache.store.health();
  if (!status.ok) {
    await cache.close();
    throw new Error(`cache did not reach Redis: ${status.detail ?? 'unhealthy'}`);
  }
  return cache;
}

/** Warms ids 1…n in batches of BATCH, one awaited `fleet.warm` at a time (as the warm job does). */
async function libraryWarm(cache: Cache, ns: Namespace<unknown>, ids: readonly string[]): Promise<Measured> {
  let written = 0;
  let changed = 0;
  const t0 = performance.now();
  for (let at = 0; at < ids.length; at += BATCH) {
    const r = await cache.fleet.warm(ns, ids.slice(at, at + BATCH));
    if (!r.ok) throw r.error;
    written += r.value.written;
    changed += r.value.changed;
  }
  const seconds = (performance.now() - t0) / 1000;
  const note = changed > 0 ? `${changed} left as changed` : undefined;
  return { opsPerSec: ids.length / seconds, bad: ids.length - written, ...(note ? { note } : {}) };
}

/** CPU seconds the Redis main thread has used (INFO cpu): immune to the time it waited for a core. */
export async function redisCpuSeconds(admin: Redis): Promise<number> {
  const info = await admin.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  const main = field('used_cpu_user_main_thread') + field('used_cpu_sys_main_thread');
  return Number.isFinite(main) ? main : field('used_cpu_user') + field('used_cpu_sys');
}

interface RowSpec {
  readonly name: string;
  readonly role: Role;
  readonly note: string;
  /** FLUSHDB before each run (not timed). */
  readonly cold: boolean;
  once(): Promise<Measured>;
}

/** Best of RUNS; Redis's CPU per key is that of the best run. */
async function measureRow(ctx: WorkloadContext, admin: Redis, spec: RowSpec, n: number): Promise<Row> {
  ctx.log(`${NAME}: ${spec.name} (n=${n})`);
  try {
    const { best, bad, all } = await bestOf(RUNS, async () => {
      if (spec.cold) await admin.flushdb();
      const cpu0 = await redisCpuSeconds(admin);
      const node0 = process.cpuUsage();
      const m = await spec.once();
      const node = process.cpuUsage(node0);
      const cpuUs = ((await redisCpuSeconds(admin)) - cpu0) * 1e6;
      return { ...m, cpuUs, nodeCpuUs: node.user + node.system };
    });
    const perKey = (best.cpuUs ?? Number.NaN) / n;
    const parts = [
      spec.note,
      `CPU a key: Redis main thread ${perKey.toFixed(2)} µs (one core: ≤ ${formatOps(1e6 / perKey)} keys/s), bench process ${((best.nodeCpuUs ?? Number.NaN) / n).toFixed(2)} µs`,
    ];
    if (best.note !== undefined) parts.push(best.note);
    if (bad > 0) parts.push(`${bad} NOT WRITTEN (invalid)`);
    return {
      workload: NAME,
      name: spec.name,
      role: spec.role,
      opsPerSec: best.opsPerSec,
      extra: parts.join('; '),
      runs: all,
    };
  } catch (err) {
    return errorRow(NAME, spec.name, spec.role, errorMessage(err));
  }
}

const WORKER_ROW = 'cachefleet worker: warm {type:all} job, end to end';

export const warm: Workload = {
  name: NAME,
  describe: `warm N ids (default ${DEFAULT_N.toLocaleString('en-US')}, --n) into L2 (${VALUE_BYTES}-byte JSON product values, batches of ${BATCH}), keys/s, best of ${RUNS}; cold L2 (FLUSHDB) unless said; DESIGN target ≥ ${TARGET}× the redis-benchmark floor`,
  async run(ctx: WorkloadContext) {
    const n = ctx.n ?? DEFAULT_N;
    ctx.log(
      `${NAME}: load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    const values = products(n).slice(0, n);
    const ids = values.map((v) => v.id);
    const keys = ids.map(keyOf);
    // Encoded as the library encodes them (JSON below the compression threshold), before timing.
    const wires = values.map((v) => JSON.stringify(v));
    const lastKey = keys[keys.length - 1] ?? '';
    const lastWire = wires[wires.length - 1] ?? '';
    const admin = new Redis({ host: '127.0.0.1', port: ctx.port, lazyConnect: true });
    const client = new Redis({ host: '127.0.0.1', port: ctx.port, lazyConnect: true });
    await admin.connect();
    await client.connect();
    /** One entry read back raw from L2 must be the value's JSON. */
    const checked = async (m: Measured): Promise<Measured> => {
      const raw = await admin.get(lastKey);
      if (raw !== lastWire) throw new Error(`${lastKey} holds ${String(raw).slice(0, 80)}`);
      return m;
    };
    const held: { cache?: Cache; worker?: BenchWorker } = {};
    const cache = async (): Promise<Cache> => {
      held.cache ??= await openCache(ctx.port);
      return held.cache;
    };
    const product = productNamespace(n) as Namespace<unknown>;
    const tagged = productNamespace(n, { name: 'tagged', tagged: true }) as Namespace<unknown>;
    const specs: RowSpec[] = [
      {
        name: `redis-benchmark SET -P ${PIPELINE} -d ${VALUE_BYTES}`,
        role: 'floor',
        note: `50 connections, -r 1000000, n=${n}`,
        cold: true,
        once: () => floorBenchmark(ctx.port, n),
      },
      {
        name: 'ioredis pipelined SET PX (same values)',
        role: 'floor',
        note: `1 connection, pipelines of ${BATCH} awaited in turn, values pre-encoded`,
        cold: true,
        once: async () => checked(await floorIoredis(client, keys, wires)),
      },
      {
        name: 'cachefleet fleet.warm, cold L2',
        role: 'project',
        note: 'impl redis; per batch: MGET snapshot + loadMany + zod + 2 warm-absent-n.lua calls (SET NX a key)',
        cold: true,
        once: async () => checked(await libraryWarm(await cache(), product, ids)),
      },
      {
        name: 'cachefleet fleet.warm, re-warm (entries exist)',
        role: 'project',
        note: 'same values over live entries: 2 warm-n.lua calls, compared as equal in Node and in the script (no hashing)',
        cold: false,
        once: async () => checked(await libraryWarm(await cache(), product, ids)),
      },
      {
        name: 'cachefleet fleet.warm, cold, 1 tag per entry',
        role: 'project',
        note: 'as the catalogue product (category tag): + 1 tag-add-many script per tag of a batch',
        cold: true,
        once: async () => libraryWarm(await cache(), tagged, ids),
      },
      {
        name: WORKER_ROW,
        role: 'project',
        note: `startWorker in this process (warm:2), JobClient.enqueue → completed event; 4 batches of ${BATCH} in flight, cursor saved + progress every 100 ms`,
        cold: true,
        async once() {
          if (held.cache !== undefined) await held.cache.close();
          held.cache = undefined;
          held.worker ??= await startBenchWorker(ctx.port, ctx.runId, 'warm:2', n);
          const done = await held.worker.run('warm', { type: 'all' }, 600_000);
          const written = writtenOf(done.result);
          const note = `job processing ${(done.processingMs / 1000).toFixed(2)} s of ${(done.wallMs / 1000).toFixed(2)} s`;
          return checked({ opsPerSec: n / (done.wallMs / 1000), bad: n - written, note });
        },
      },
    ];
    const rows: Row[] = [];
    try {
      for (const spec of specs) rows.push(await measureRow(ctx, admin, spec, n));
    } finally {
      await held.cache?.close();
      await held.worker?.close();
      await admin.flushdb().catch(() => {});
      admin.disconnect();
      client.disconnect();
    }
    const floor = rows[0]?.opsPerSec ?? null;
    const ioFloor = rows[1]?.opsPerSec ?? null;
    return rows.map((row) => withTarget(row, floor, ioFloor));
  },
};

function writtenOf(result: unknown): number {
  if (
    typeof result === 'object' &&
    result !== null &&
    'written' in result &&
    typeof result.written === 'number'
  )
    return result.written;
  throw new Error(`unexpected warm result: ${JSON.stringify(result)}`);
}

/** Project rows: the DESIGN target against the redis-benchmark floor, and the ioredis floor's ratio. */
function withTarget(row: Row, floor: number | null, ioFloor: number | null): Row {
  if (row.role !== 'project' || row.opsPerSec === null || row.error !== undefined) return row;
  const parts: string[] = [];
  if (floor !== null && floor > 0) {
    const r = row.opsPerSec / floor;
    parts.push(`target ≥ ${TARGET}× redis-benchmark: ${r >= TARGET ? 'met' : 'MISSED'} (${formatRatio(r)})`);
  }
  if (ioFloor !== null && ioFloor > 0)
    parts.push(`${formatRatio(row.opsPerSec / ioFloor)} of the ioredis floor`);
  return { ...row, extra: [...parts, row.extra].join('; ') };
}
