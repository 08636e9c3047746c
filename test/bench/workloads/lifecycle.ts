/**
 * The lifecycle jobs at scale (issue 12): 1,000,000 entries of `cf:product:v1:<id>` (small JSON,
 * TTL 1 h) beside 100,000 keys of another namespace, on the private Redis; each row runs the real
 * worker runtime in this process (`startWorker`, definitions: ../lifecycle-definitions.ts) and
 * times one job from its enqueue to its completed event, while a reader in a child process GETs a
 * key of the other namespace one at a time (its p99 must stay < 5 ms). Each beside a floor in the
 * same run:
 *
 * - migrate (target ≥ 100 k keys/s): floor = ioredis SCAN + pipelined GET/PTTL + `SET … PX` of the
 *   converted value (no fence, no schema); the job at COUNT 1,000 (its default), 200 (its default
 *   until 2026-12-02), and 1,000 throttled to 12 k keys/s;
 * - backup (target < 60 s): floor = `redis-cli --rdb` of the whole server; the job (gzip, SHA-256);
 * - restore (target < 60 s) into an emptied Redis: floor = pipelined `RESTORE … ABSTTL` of the same
 *   DUMP payloads, decoded beforehand; the job (verifies the file whole first, then RESTOREs).
 *
 * `npm run bench -- --only migrate|backup|restore` (`--n k`: max(5k, 10,000) entries).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DumpedKey } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { errorMessage, sleep } from '../data.js';
import { errorRow } from '../measure.js';
import type { Role, Row, Workload, WorkloadContext } from '../types.js';
import { countKeys, describeReader, fill, Reader, type ReaderStats } from './bulk-invalidate.js';
import { type BenchWorker, FLEET_PREFIX, startBenchWorker } from './warm.js';

const DEFAULT_KEYS = 1_000_000;
const MAX_KEYS = 5_000_000;
const JOB_TIMEOUT_MS = 30 * 60_000;
const CHILD = fileURLToPath(new URL('../bulk-reader-child.ts', import.meta.url));
const DEFINITIONS = fileURLToPath(new URL('../lifecycle-definitions.ts', import.meta.url));
const redisCli = (): string => process.env.REDIS_CLI_BIN || 'redis-cli';

const V1 = `${FLEET_PREFIX}product:v1:`;
const V2 = `${FLEET_PREFIX}product:v2:`;
const OTHER = `${FLEET_PREFIX}other:v1:`;
const READER_KEY = `${OTHER}1`;

const count = (v: number): string => v.toLocaleString('en-US');
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

function keysOf(n: number | undefined): number {
  return n === undefined ? DEFAULT_KEYS : Math.min(MAX_KEYS, Math.max(n * 5, 10_000));
}

interface Env {
  readonly ctx: WorkloadContext;
  readonly keys: number;
  readonly admin: Redis;
  readonly reader: Reader;
  readonly dir: string;
}

/** Empties db 0 (the queues are in db 1) and fills the other namespace and `keys` v1 entries. */
async function refill(e: Pick<Env, 'admin' | 'keys'>, withProducts = true): Promise<void> {
  await e.admin.flushdb();
  await fill(e.admin, OTHER, Math.max(1_000, Math.floor(e.keys / 10)));
  if (withProducts) await fill(e.admin, V1, e.keys);
}

interface Timed {
  readonly ms: number;
  readonly note: string;
  /** Problems that fail the row. */
  readonly problems: readonly string[];
  /** Redis's CPU over the timed part only (a job row leaves out its check): `describeCpu`. */
  readonly cpu?: string;
}

/** Redis's own CPU (user + sys, s) and each command's total usec, from INFO. */
interface RedisCpu {
  readonly cpu: number;
  /** This process's CPU (user + system, µs): the worker runtime runs here (the reader does not). */
  readonly node: number;
  readonly usec: ReadonlyMap<string, number>;
}

async function redisCpu(admin: Redis): Promise<RedisCpu> {
  const info = await admin.info('all');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  const usec = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm))
    usec.set(m[1] as string, Number(m[2]));
  const own = process.cpuUsage();
  return { cpu: field('used_cpu_user') + field('used_cpu_sys'), node: own.user + own.system, usec };
}

/**
 * Redis's CPU per key over a row, µs, and the commands that took most of it (commandstats `usec`
 * is wall time: preemption on a loaded machine inflates it, `used_cpu_*` less so): Redis is
 * single-threaded, so 100 k keys/s needs ≤ 10 µs a key of everything it runs. It includes the
 * reader's GETs and the job queue's commands (db 1). Then this process's CPU per key: the floor's
 * client, or the worker runtime (its other core).
 */
function describeCpu(before: RedisCpu, after: RedisCpu, keys: number): string {
  const per = (v: number): string => (v / keys).toFixed(2);
  const top = [...after.usec]
    .map(([name, u]) => [name, u - (before.usec.get(name) ?? 0)] as const)
    .filter(([, u]) => u > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5)
    .map(([name, u]) => `${name} ${per(u)}`);
  return `Redis CPU ${per((after.cpu - before.cpu) * 1e6)} µs/key (commandstats µs/key: ${top.join(', ')}), bench process CPU ${per(after.node - before.node)} µs/key`;
}

/** Runs `op` inside a reader window; the row's keys/s is `e.keys` over its time. */
async function row(
  e: Env,
  workload: string,
  name: string,
  role: Role,
  op: () => Promise<Timed>,
): Promise<Row> {
  try {
    let timed: Timed | undefined;
    let cpu = '';
    const { stats } = await e.reader.window(async () => {
      const before = await redisCpu(e.admin);
      timed = await op();
      cpu = describeCpu(before, await redisCpu(e.admin), e.keys);
    });
    if (timed === undefined) throw new Error('no result');
    const extra = [
      `${secs(timed.ms)} for ${count(e.keys)} keys`,
      describeReader(stats),
      timed.cpu ?? cpu,
      timed.note,
    ].join('; ');
    const problems = [...timed.problems, ...readerProblems(stats)];
    const r: Row = { workload, name, role, opsPerSec: e.keys / (timed.ms / 1000), extra };
    return problems.length === 0 ? r : { ...r, error: `${problems.join('; ')} — ${extra}` };
  } catch (err) {
    return errorRow(workload, name, role, errorMessage(err));
  }
}

function readerProblems(s: ReaderStats): string[] {
  return s.missing > 0 ? [`the reader's key vanished ${s.missing} times`] : [];
}

async function idleRow(e: Env, workload: string): Promise<Row> {
  const idle = await e.reader.window(() => sleep(2_000));
  return {
    workload,
    name: 'reader alone, idle Redis (latency floor)',
    role: 'floor',
    opsPerSec: null,
    extra: `${describeReader(idle.stats)}; 1 GET at a time, awaited, ioredis, in a child process`,
  };
}

async function jobRow(
  e: Env,
  workload: string,
  name: string,
  job: () => Promise<{ wallMs: number; result: unknown }>,
  check: (result: unknown) => Promise<{ note: string; problems: string[] }>,
): Promise<Row> {
  return row(e, workload, name, 'project', async () => {
    const before = await redisCpu(e.admin);
    const done = await job();
    const cpu = describeCpu(before, await redisCpu(e.admin), e.keys);
    const c = await check(done.result);
    return { ms: done.wallMs, cpu, ...c };
  });
}

/** Runs `body` with the admin client, the reader child and a scratch directory; cleans up after. */
async function withEnv(
  ctx: WorkloadContext,
  workload: string,
  body: (e: Env) => Promise<Row[]>,
): Promise<Row[]> {
  const keys = keysOf(ctx.n);
  const admin = new Redis({ host: '127.0.0.1', port: ctx.port, lazyConnect: true });
  await admin.connect();
  const dir = await mkdtemp(join(tmpdir(), 'cf-bench-lifecycle-'));
  let reader: Reader | undefined;
  try {
    const load = loadavg().map((l) => l.toFixed(2));
    ctx.log(`${workload}: ${count(keys)} entries; load average ${load.join(' ')}`);
    await refill({ keys, admin }, false);
    reader = new Reader(
      spawn(process.execPath, ['--import', 'tsx', CHILD, String(ctx.port), READER_KEY], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    await reader.ready();
    return await body({ ctx, keys, admin, reader, dir });
  } catch (err) {
    return [errorRow(workload, workload, 'project', errorMessage(err))];
  } finally {
    await reader?.stop();
    await admin.flushdb().catch(() => {});
    admin.disconnect();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// migrate

const migrateResult = z.object({ migrated: z.number(), failed: z.number(), scanned: z.number() });

async function migrateFloor(e: Env): Promise<Timed> {
  const t0 = performance.now();
  let cursor = '0';
  let written = 0;
  do {
    const [next, keys] = await e.admin.scan(cursor, 'MATCH', `${V1}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length === 0) continue;
    const read = e.admin.pipeline();
    for (const k of keys) read.get(k).pttl(k);
    const replies = (await read.exec()) ?? [];
    const write = e.admin.pipeline();
    keys.forEach((k, i) => {
      const wire = replies[2 * i]?.[1];
      const pttl = Number(replies[2 * i + 1]?.[1]);
      if (typeof wire !== 'string' || !(pttl > 0)) return;
      const old = JSON.parse(wire) as { id: string; v: number };
      write.set(
        V2 + k.slice(V1.length),
        JSON.stringify({ id: old.id, value: old.v, migrated: true }),
        'PX',
        pttl,
      );
      written++;
    });
    await write.exec();
  } while (cursor !== '0');
  const ms = performance.now() - t0;
  const problems = written === e.keys ? [] : [`wrote ${count(written)}, not ${count(e.keys)}`];
  return { ms, note: 'SCAN COUNT 1000, pipelined GET+PTTL then SET PX, one batch at a time', problems };
}

async function migrateRows(e: Env): Promise<Row[]> {
  const out: Row[] = [await idleRow(e, 'migrate')];
  await refill(e);
  out.push(
    await row(e, 'migrate', 'ioredis SCAN + GET/PTTL + SET PX, no fence (floor)', 'floor', () =>
      migrateFloor(e),
    ),
  );
  const worker = await startBenchWorker(e.ctx.port, e.ctx.runId, 'migrate:1', 1, {
    definitions: DEFINITIONS,
  });
  try {
    // The default (count 1,000), the old default (200), and the default throttled to 12 k keys/s:
    // unthrottled the job keeps Redis busy, which on a loaded machine shows in the reader's p99.
    for (const [stepCount, rate] of [
      [1000, 0],
      [200, 0],
      [1000, 12_000],
    ] as const) {
      await refill(e);
      const payload = { namespace: 'product', to: 2, count: stepCount, ...(rate > 0 ? { rate } : {}) };
      out.push(
        await jobRow(
          e,
          'migrate',
          `cachefleet worker: migrate {to: 2, count: ${stepCount}${rate > 0 ? `, rate: ${rate}` : ''}} job`,
          () => worker.run('migrate', payload, JOB_TIMEOUT_MS),
          async (result) => {
            const r = migrateResult.parse(result);
            const v2 = await countKeys(e.admin, V2);
            const problems: string[] = [];
            if (r.migrated !== e.keys) problems.push(`migrated ${count(r.migrated)}, not ${count(e.keys)}`);
            if (v2 !== e.keys) problems.push(`${count(v2)} v2 keys`);
            return {
              note: `fenced Lua write per step, migration function + zod per value; ${count(v2)} v2 keys after`,
              problems,
            };
          },
        ),
      );
    }
  } finally {
    await worker.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// backup and restore

const backupResult = z.object({ file: z.string(), path: z.string(), keys: z.number(), bytes: z.number() });
const restoreResult = z.object({ restored: z.number(), read: z.number() });

function rdbFloor(e: Env): Promise<Timed> {
  const file = join(e.dir, 'dump.rdb');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      redisCli(),
      ['-p', String(e.ctx.port), '--rdb', file],
      { timeout: 600_000 },
      async (err, _o, stderr) => {
        if (err) return reject(new Error(`redis-cli --rdb: ${err.message}\n${stderr}`));
        const ms = performance.now() - t0;
        const size = (await stat(file)).size;
        resolve({
          ms,
          note: `the whole server (${count(size)} bytes of RDB, the other namespace included)`,
          problems: [],
        });
      },
    );
  });
}

async function backupFile(
  worker: BenchWorker,
): Promise<{ wallMs: number; result: z.output<typeof backupResult> }> {
  const done = await worker.run('backup', {}, JOB_TIMEOUT_MS);
  return { wallMs: done.wallMs, result: backupResult.parse(done.result) };
}

function backupWorker(e: Env): Promise<BenchWorker> {
  return startBenchWorker(e.ctx.port, e.ctx.runId, 'backup:1', 1, {
    definitions: DEFINITIONS,
    env: { BACKUP_DIR: e.dir, BACKUP_KEEP: '2' },
  });
}

async function backupRows(e: Env): Promise<Row[]> {
  const out: Row[] = [await idleRow(e, 'backup')];
  await refill(e);
  out.push(await row(e, 'backup', 'redis-cli --rdb (floor)', 'floor', () => rdbFloor(e)));
  const worker = await backupWorker(e);
  try {
    // The definitions' namespace is at v2; the bench's entries are v1 of it: a backup takes every version.
    out.push(
      await jobRow(
        e,
        'backup',
        'cachefleet worker: backup job (gzip, SHA-256)',
        () => backupFile(worker),
        async (result) => {
          const r = backupResult.parse(result);
          const problems =
            r.keys === e.keys ? [] : [`${count(r.keys)} keys in the file, not ${count(e.keys)}`];
          return { note: `${count(r.bytes)} bytes; target < 60 s`, problems };
        },
      ),
    );
  } finally {
    await worker.close();
  }
  return out;
}

async function restoreFloor(e: Env, records: readonly DumpedKey[]): Promise<Timed> {
  const t0 = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  for (let at = 0; at < records.length; at += 1000) {
    const p = e.admin.pipeline();
    for (const r of records.slice(at, at + 1000))
      p.restore(FLEET_PREFIX + r.key, r.expireAt, r.dump, 'ABSTTL');
    const sent = p.exec();
    inFlight.add(sent);
    void sent.finally(() => inFlight.delete(sent));
    if (inFlight.size >= 4) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const ms = performance.now() - t0;
  const n = await countKeys(e.admin, V1);
  return {
    ms,
    note: 'pipelines of 1,000 RESTORE … ABSTTL, 4 in flight, payloads decoded beforehand',
    problems: n === e.keys ? [] : [`${count(n)} keys after, not ${count(e.keys)}`],
  };
}

async function restoreRows(e: Env): Promise<Row[]> {
  const out: Row[] = [await idleRow(e, 'restore')];
  await refill(e);
  const worker = await backupWorker(e);
  try {
    const made = await backupFile(worker);
    e.ctx.log(`restore: backup of ${count(made.result.keys)} keys made in ${secs(made.wallMs)} (not timed)`);
    const { FsBackupStorage, readLayout, readRecords } = await import('@cachefleet/jobs');
    const storage = new FsBackupStorage(e.dir);
    const layout = await readLayout(storage, made.result.file);
    const records: DumpedKey[] = [];
    for await (const batch of readRecords(
      storage,
      made.result.file,
      layout,
      { hmacKey: undefined, encryptionKey: undefined },
      0,
      10_000,
    ))
      records.push(...batch);
    await refill(e, false);
    out.push(
      await row(e, 'restore', 'pipelined RESTORE ABSTTL of the same dump (floor)', 'floor', () =>
        restoreFloor(e, records),
      ),
    );
    records.length = 0;
    await refill(e, false);
    out.push(
      await jobRow(
        e,
        'restore',
        'cachefleet worker: restore job (verify whole file, then RESTORE)',
        async () => worker.run('restore', { file: made.result.file }, JOB_TIMEOUT_MS),
        async (result) => {
          const r = restoreResult.parse(result);
          const n = await countKeys(e.admin, V1);
          const problems =
            r.restored === e.keys && n === e.keys
              ? []
              : [`restored ${count(r.restored)}, ${count(n)} keys after`];
          return { note: 'target < 60 s', problems };
        },
      ),
    );
  } finally {
    await worker.close();
  }
  return out;
}

export const migrate: Workload = {
  name: 'migrate',
  describe: `version migration of ${count(DEFAULT_KEYS)} entries (with --n: max(5n, 10,000)); keys/s (target ≥ 100 k), a concurrent reader's latency`,
  run: (ctx) => withEnv(ctx, 'migrate', migrateRows),
};

export const backup: Workload = {
  name: 'backup',
  describe: `backup of ${count(DEFAULT_KEYS)} entries (with --n: max(5n, 10,000)); time (target < 60 s) beside redis-cli --rdb, a concurrent reader's latency`,
  run: (ctx) => withEnv(ctx, 'backup', backupRows),
};

export const restore: Workload = {
  name: 'restore',
  describe: `restore of ${count(DEFAULT_KEYS)} entries into an emptied Redis; time (target < 60 s) beside pipelined RESTORE, a concurrent reader's latency`,
  run: (ctx) => withEnv(ctx, 'restore', restoreRows),
};
