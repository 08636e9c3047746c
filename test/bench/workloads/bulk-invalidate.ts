/**
 * A pattern invalidation of 1,000,000 L2 keys (`cf:product:v1:<id>`) beside 100,000 keys of another
 * namespace that must survive, on the private Redis:
 *
 * - contrast (the floor of throughput): `DEL` of every key in one call, which blocks Redis;
 * - the library: `fleet.beginWalk` + `unlinkStep` (SCAN + UNLINK, COUNT 1000) on every master until
 *   its cursor is back at 0 + `fleet.endWalk`;
 * - the worker: the real runtime in this process runs `invalidate {scope:'pattern', pattern:'*'}`
 *   enqueued through JobClient (fence → one slice job per master → announce), until completed.
 *
 * Meanwhile a reader in a child process GETs a key of the other namespace, one at a time, and the
 * rows show its latency beside the same reader on an idle Redis: the walk must not block Redis.
 * Redis's SLOWLOG (threshold 1 ms) tells how long its longest command ran during each row.
 * Afterwards no product key may remain and every key of the other namespace must (else the row fails).
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Cache, Namespace, Result } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { ChildLines } from '../child.js';
import { errorMessage, forEachLimit, sleep } from '../data.js';
import { errorRow } from '../measure.js';
import type { Role, Row, Workload, WorkloadContext } from '../types.js';
import { productNamespace } from '../warm-definitions.js';
import { type BenchWorker, FLEET_PREFIX, openCache, redisCpuSeconds, startBenchWorker } from './warm.js';

const NAME = 'bulk-invalidate';
const DEFAULT_KEYS = 1_000_000;
const MAX_KEYS = 5_000_000;
/** COUNT of each SCAN step: the worker's slice jobs use 1,000. */
const STEP_COUNT = 1_000;
const SMALL_STEP_COUNT = 200;
const FILL_BATCH = 10_000;
const FILL_WIDTH = 2;
const TTL_MS = 3_600_000;
/** Commands at least this long are kept by SLOWLOG during a row, µs. */
const SLOW_US = 1_000;
/** Entries SLOWLOG keeps: enough for every command of a 1M-key walk. */
const SLOWLOG_LEN = 100_000;
const READY_TIMEOUT_MS = 30_000;
const JOB_TIMEOUT_MS = 30 * 60_000;
const CHILD = fileURLToPath(new URL('../bulk-reader-child.ts', import.meta.url));

const PRODUCT = `${FLEET_PREFIX}product:v1:`;
const OTHER = `${FLEET_PREFIX}other:v1:`;
const READER_KEY = `${OTHER}1`;

/** What the reader reports for one window (latencies in ms). */
export interface ReaderStats {
  readonly count: number;
  readonly seconds: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  /** GETs that took 10 ms or more. */
  readonly over10: number;
  /** GETs that found no value (the reader's key must survive). */
  readonly missing: number;
}

const statsSchema = z.object({
  count: z.number(),
  seconds: z.number(),
  p50: z.number().nullable(),
  p99: z.number().nullable(),
  p999: z.number().nullable(),
  max: z.number().nullable(),
  over10: z.number(),
  missing: z.number(),
});

const num = (v: number | null): number => v ?? Number.NaN;

function parseJsonLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`unexpected reader line: ${line.slice(0, 200)}`);
  }
}

/** The reader child: `window(op)` runs `op` while the reader times its GETs. */
export class Reader extends ChildLines {
  async ready(): Promise<void> {
    const line = await this.nextLine(READY_TIMEOUT_MS);
    if (!z.object({ ready: z.literal(true) }).safeParse(parseJsonLine(line)).success) {
      throw new Error(`unexpected reader line: ${line.slice(0, 200)}`);
    }
  }

  async window<T>(op: () => Promise<T>): Promise<{ value: T; stats: ReaderStats }> {
    this.proc.stdin?.write('start\n');
    await this.nextLine(READY_TIMEOUT_MS);
    let value: T;
    try {
      value = await op();
    } finally {
      this.proc.stdin?.write('stop\n');
    }
    const s = statsSchema.parse(parseJsonLine(await this.nextLine(READY_TIMEOUT_MS)));
    // JSON turns NaN into null.
    const stats: ReaderStats = { ...s, p50: num(s.p50), p99: num(s.p99), p999: num(s.p999), max: num(s.max) };
    return { value, stats };
  }

  async stop(): Promise<void> {
    this.proc.stdin?.end();
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

const ms = (v: number): string => (Number.isFinite(v) ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) : '—');
const count = (v: number): string => v.toLocaleString('en-US');

export function describeReader(s: ReaderStats): string {
  const parts = [
    `reader GET p50 ${ms(s.p50)} / p99 ${ms(s.p99)} / p99.9 ${ms(s.p999)} / max ${ms(s.max)} ms (${count(s.count)} GETs in ${s.seconds.toFixed(2)} s, ${s.over10} ≥ 10 ms)`,
  ];
  if (s.missing > 0) parts.push(`${s.missing} READS FOUND NOTHING`);
  return parts.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Redis-side facts: fill, count, SLOWLOG.

/**
 * Sets `<base><i>` for i in 1…n to a small JSON value with the namespace's TTL. Server side, 10,000
 * keys per script call (a private single node: undeclared keys are fine): a 1M-key fill takes a few
 * seconds instead of the ~10 µs a command that ioredis costs in Node.
 */
const FILL_LUA = `
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  redis.call('SET', ARGV[1] .. i, '{"id":"' .. i .. '","v":' .. (i % 1000) .. '}', 'PX', ARGV[4])
end
return 1`;

export async function fill(client: Redis, base: string, n: number): Promise<void> {
  const starts: number[] = [];
  for (let at = 1; at <= n; at += FILL_BATCH) starts.push(at);
  await forEachLimit(starts, FILL_WIDTH, async (from) => {
    const to = Math.min(from + FILL_BATCH - 1, n);
    await client.eval(FILL_LUA, 0, base, String(from), String(to), String(TTL_MS));
  });
}

/** Keys matching `base*`, counted with SCAN (never KEYS). */
export async function countKeys(client: Redis, base: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${base}*`, 'COUNT', 10_000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

interface Slow {
  readonly count: number;
  /** Of those, commands that ran 5 ms or more. */
  readonly over5: number;
  readonly longestUs: number;
  readonly command: string;
}

async function slowlogReset(admin: Redis): Promise<void> {
  await admin.slowlog('RESET');
}

async function slowlogRead(admin: Redis): Promise<Slow> {
  const entries: unknown = await admin.slowlog('GET', -1);
  let n = 0;
  let over5 = 0;
  let longestUs = 0;
  let command = '';
  if (Array.isArray(entries)) {
    for (const e of entries) {
      if (!Array.isArray(e)) continue;
      const us = Number(e[2]);
      const args: unknown = e[3];
      const name = Array.isArray(args) ? String(args[0]).toUpperCase() : '?';
      // SLOWLOG itself and the counts below are ours, not the row's.
      if (name === 'SLOWLOG') continue;
      n++;
      if (us >= 5_000) over5++;
      if (us > longestUs) {
        longestUs = us;
        command = Array.isArray(args) ? `${name}, ${argCount(args)} args` : name;
      }
    }
  }
  return { count: n, over5, longestUs, command };
}

/** SLOWLOG keeps 31 arguments and then `... (N more arguments)`. */
function argCount(args: readonly unknown[]): number {
  const more = /\((\d+) more arguments\)/.exec(String(args[args.length - 1]));
  return more ? args.length - 2 + Number(more[1]) : args.length - 1;
}

function describeSlow(s: Slow): string {
  if (s.count === 0) return `SLOWLOG: no command ≥ ${SLOW_US / 1000} ms`;
  return `SLOWLOG: ${count(s.count)} command(s) ≥ ${SLOW_US / 1000} ms (${count(s.over5)} ≥ 5 ms), longest ${ms(s.longestUs / 1000)} ms (${s.command})`;
}

// ---------------------------------------------------------------------------------------------
// The rows.

function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

interface Walked {
  readonly removed: number;
  readonly note: string;
}

async function libraryWalk(cache: Cache, ns: Namespace<unknown>, stepCount: number): Promise<Walked> {
  const match = unwrap(await cache.fleet.beginWalk(ns, '*'));
  const masters = unwrap(cache.fleet.masters());
  let steps = 0;
  let slowestStep = 0;
  const unlinked = await Promise.all(
    masters.map(async (master) => {
      let cursor = '0';
      let total = 0;
      do {
        const t0 = performance.now();
        const step = unwrap(await cache.fleet.unlinkStep(master, match, cursor, stepCount));
        slowestStep = Math.max(slowestStep, performance.now() - t0);
        steps++;
        cursor = step.cursor;
        total += step.unlinked;
      } while (cursor !== '0');
      return total;
    }),
  );
  unwrap(await cache.fleet.endWalk(ns, '*'));
  const removed = unlinked.reduce((a, b) => a + b, 0);
  return {
    removed,
    note: `${masters.length} master(s), ${count(steps)} steps of COUNT ${stepCount}, slowest step ${ms(slowestStep)} ms`,
  };
}

function removedOf(result: unknown): Walked {
  const parsed = z
    .object({ removed: z.number(), slices: z.number().optional(), scanned: z.number().optional() })
    .safeParse(result);
  if (!parsed.success) throw new Error(`unexpected invalidate result: ${JSON.stringify(result)}`);
  const r = parsed.data;
  return {
    removed: r.removed,
    note: `${r.slices ?? '?'} slice job(s), ${count(r.scanned ?? 0)} keys scanned`,
  };
}

interface Sizes {
  readonly keys: number;
  readonly other: number;
  readonly idleMs: number;
}

function sizesOf(n: number | undefined): Sizes {
  if (n === undefined) return { keys: DEFAULT_KEYS, other: DEFAULT_KEYS / 10, idleMs: 2_000 };
  const keys = Math.min(MAX_KEYS, Math.max(n * 5, 10_000));
  return { keys, other: Math.max(1_000, Math.floor(keys / 10)), idleMs: keys >= 100_000 ? 2_000 : 500 };
}

interface Setup {
  readonly ctx: WorkloadContext;
  readonly sizes: Sizes;
  readonly admin: Redis;
  readonly reader: Reader;
}

/**
 * Fills the product keys, runs `op` inside a reader window with SLOWLOG reset, then checks the
 * result in Redis: no product key left, every other key still there. A failed check fails the row.
 */
async function measured(
  s: Setup,
  name: string,
  role: Role,
  op: () => Promise<Walked>,
  prepare?: () => Promise<void>,
): Promise<Row> {
  const { ctx, sizes, admin, reader } = s;
  try {
    const f0 = performance.now();
    await fill(admin, PRODUCT, sizes.keys);
    ctx.log(
      `${NAME}: ${count(sizes.keys)} product keys filled in ${((performance.now() - f0) / 1000).toFixed(1)} s; ${name}`,
    );
    await prepare?.();
    await slowlogReset(admin);
    const cpu0 = await redisCpuSeconds(admin);
    let seconds = 0;
    const { value, stats } = await reader.window(async () => {
      const t0 = performance.now();
      const walked = await op();
      seconds = (performance.now() - t0) / 1000;
      return walked;
    });
    const cpu = (await redisCpuSeconds(admin)) - cpu0;
    const slow = await slowlogRead(admin);
    const left = await countKeys(admin, PRODUCT);
    const others = await countKeys(admin, OTHER);
    const parts = [
      `${ms(seconds * 1000)} ms for ${count(sizes.keys)} keys`,
      describeReader(stats),
      describeSlow(slow),
      `Redis main thread ${cpu.toFixed(2)} s CPU (with the reader's GETs)`,
      value.note,
      `after: ${count(left)} product keys left, ${count(others)}/${count(sizes.other)} other-namespace keys kept`,
    ];
    const problems: string[] = [];
    if (left !== 0) problems.push(`${count(left)} product keys REMAIN`);
    if (others !== sizes.other)
      problems.push(`other namespace has ${count(others)} keys, not ${count(sizes.other)}`);
    if (value.removed !== sizes.keys)
      problems.push(`removed ${count(value.removed)}, not ${count(sizes.keys)}`);
    if (stats.missing > 0) problems.push(`the reader's key vanished ${stats.missing} times`);
    const row: Row = { workload: NAME, name, role, opsPerSec: sizes.keys / seconds, extra: parts.join('; ') };
    return problems.length === 0 ? row : { ...row, error: `${problems.join('; ')} — ${parts.join('; ')}` };
  } catch (err) {
    return errorRow(NAME, name, role, errorMessage(err));
  }
}

async function rows(s: Setup): Promise<Row[]> {
  const { ctx, sizes, admin, reader } = s;
  const keys = count(sizes.keys);
  ctx.log(`${NAME}: reader on an idle Redis for ${sizes.idleMs} ms`);
  const idle = await reader.window(() => sleep(sizes.idleMs));
  const idleRow: Row = {
    workload: NAME,
    name: 'reader alone, idle Redis (latency floor)',
    role: 'floor',
    opsPerSec: null,
    extra: `${describeReader(idle.stats)}; 1 GET at a time, awaited, ioredis, in a child process`,
  };

  // Built before the timing: the row times the call (sending 1 command, Redis running it).
  const all: string[] = [];
  for (let i = 1; i <= sizes.keys; i++) all.push(`${PRODUCT}${i}`);
  const delRow = await measured(s, `DEL of ${keys} keys in one call (contrast)`, 'floor', async () => {
    const removed = await admin.del(all);
    return { removed, note: 'one command: Redis serves nobody else until it is done' };
  });
  all.length = 0;

  const held: { cache?: Cache; worker?: BenchWorker } = {};
  const ns = productNamespace(1) as Namespace<unknown>;
  const libraryRows: Row[] = [];
  // COUNT 1000 is what the worker's slice jobs use; a smaller COUNT shows the latency/throughput trade.
  for (const stepCount of [STEP_COUNT, SMALL_STEP_COUNT]) {
    libraryRows.push(
      await measured(
        s,
        `cachefleet beginWalk + unlinkStep(${stepCount}) + endWalk`,
        'project',
        async () => {
          if (held.cache === undefined) throw new Error('no cache');
          return libraryWalk(held.cache, ns, stepCount);
        },
        async () => {
          held.cache ??= await openCache(ctx.port);
        },
      ),
    );
  }
  await held.cache?.close();

  const workerRow = await measured(
    s,
    "cachefleet worker: invalidate {scope:'pattern', pattern:'*'} job",
    'project',
    async () => {
      if (held.worker === undefined) throw new Error('no worker');
      const done = await held.worker.run(
        'invalidate',
        { scope: 'pattern', namespace: 'product', pattern: '*' },
        JOB_TIMEOUT_MS,
      );
      const r = removedOf(done.result);
      return {
        removed: r.removed,
        note: `startWorker in this process (invalidate:4), enqueue → completed event (fence, slice job, announce); ${r.note}`,
      };
    },
    async () => {
      held.worker = await startBenchWorker(ctx.port, ctx.runId, 'invalidate:4', 1);
    },
  );
  await held.worker?.close();
  return [delRow, idleRow, ...libraryRows, workerRow];
}

export const bulkInvalidate: Workload = {
  name: NAME,
  describe: `pattern invalidation of ${count(DEFAULT_KEYS)} L2 keys (with --n: max(5n, 10,000)) beside ${count(DEFAULT_KEYS / 10)} keys of another namespace that must survive; keys/s, and the latency of a concurrent reader (child process) — the walk must not block Redis`,
  async run(ctx) {
    const sizes = sizesOf(ctx.n);
    const admin = new Redis({ host: '127.0.0.1', port: ctx.port, lazyConnect: true });
    await admin.connect();
    const saved: unknown = await admin.config('GET', 'slowlog-*');
    let reader: Reader | undefined;
    try {
      await admin.flushdb();
      await admin.config('SET', 'slowlog-log-slower-than', String(SLOW_US));
      await admin.config('SET', 'slowlog-max-len', String(SLOWLOG_LEN));
      const load = loadavg().map((l) => l.toFixed(2));
      ctx.log(
        `${NAME}: ${count(sizes.keys)} keys, ${count(sizes.other)} of another namespace; load average ${load.join(' ')}`,
      );
      await fill(admin, OTHER, sizes.other);
      reader = new Reader(
        spawn(process.execPath, ['--import', 'tsx', CHILD, String(ctx.port), READER_KEY], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      );
      await reader.ready();
      return await rows({ ctx, sizes, admin, reader });
    } catch (err) {
      return [errorRow(NAME, 'bulk invalidation', 'project', errorMessage(err))];
    } finally {
      await reader?.stop();
      await admin.flushdb().catch(() => {});
      const pairs = Array.isArray(saved) ? saved : [];
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        await admin.config('SET', String(pairs[i]), String(pairs[i + 1])).catch(() => {});
      }
      admin.disconnect();
    }
  },
};
