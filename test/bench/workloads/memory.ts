/**
 * Memory (issue 15): what an L1 entry costs, and what an API pod holding 100,000 entries weighs.
 *
 * - Bytes per L1 entry: each library in a child process of its own (`memory-child.ts`, node
 *   --expose-gc), its heap and external (Buffer) memory after a full GC before and after `n` entries were written and read
 *   once; beside bare lru-cache holding the same values (the floor), at two value sizes (the
 *   bench's 1 KB value, and a 100-byte one where the per-entry overhead shows).
 * - The API pod: the real process (`apps/api/src/main.ts`) on the bench's Redis and a PostgreSQL
 *   schema of 100,000 seeded products, with `CACHE_L1_MAX_ENTRIES` = 100,000; its resident set
 *   (`/proc/<pid>/status` VmRSS) once started, and after every product was read once over HTTP
 *   (L1 then holds each of them: `GET /cache/stats` must say so, or the row is an error).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { z } from 'zod';
import { freePort, testDatabaseUrl, waitUntil } from '../../helpers/index.js';
import { ADAPTERS } from '../adapters/index.js';
import { ChildLines } from '../child.js';
import { errorMessage, forEachLimit } from '../data.js';
import { errorRow } from '../measure.js';
import { memoryChildReportSchema } from '../memory-protocol.js';
import type { Row, Workload, WorkloadContext } from '../types.js';
import { fleetEnv } from './http.js';

const NAME = 'memory';
const CHILD = fileURLToPath(new URL('../memory-child.ts', import.meta.url));
const API_MAIN = fileURLToPath(new URL('../../../apps/api/src/main.ts', import.meta.url));
/** 50,000 × ~1 KB stays under the project's default 64 MiB L1 byte bound: nothing is evicted. */
const SIZES = [
  { payloadBytes: 1_000, n: 50_000 },
  { payloadBytes: 100, n: 100_000 },
] as const;
const POD_ITEMS = 100_000;
const POD_CONCURRENCY = 32;
const TARGET_RATIO = 1.3;

const mib = (bytes: number): string => `${(bytes / 1_048_576).toFixed(1)} MiB`;

async function childReport(ctx: WorkloadContext, adapter: string, payloadBytes: number, n: number) {
  const args = {
    adapter,
    port: ctx.port,
    prefix: `${ctx.runId}:${NAME}:${randomBytes(3).toString('hex')}:`,
    n,
    payloadBytes,
  };
  const child = new ChildLines(
    spawn(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  try {
    return memoryChildReportSchema.parse(JSON.parse(await child.nextLine(300_000)));
  } finally {
    if (child.proc.exitCode === null) child.proc.kill('SIGKILL');
  }
}

async function perEntryRows(ctx: WorkloadContext, scale: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of SIZES) {
    const n = Math.max(1_000, Math.round(size.n * scale));
    let floorBytes: number | undefined;
    for (const spec of ADAPTERS.filter((a) => a.tiers.includes('tiered'))) {
      const name = `${spec.name}, ${size.payloadBytes} B payload`;
      ctx.log(`${NAME}: ${name} (n=${n})`);
      try {
        const r = await childReport(ctx, spec.name, size.payloadBytes, n);
        if (r.verified !== n) throw new Error(`${n - r.verified} of ${n} entries did not read back`);
        const perEntry = (r.heapFull - r.heapEmpty) / n;
        if (spec.role === 'floor') floorBytes = perEntry;
        const vs =
          floorBytes === undefined ? '' : `, ${(perEntry / floorBytes).toFixed(2)}× the floor's bytes`;
        // Less than the payload itself: the entries are not all held in this process (evicted, or
        // an L1 that keeps something else); the row says so rather than look small.
        const held =
          perEntry < size.payloadBytes ? ' — LESS THAN THE PAYLOAD: not every entry is in its L1' : '';
        rows.push({
          workload: NAME,
          name,
          role: spec.role,
          opsPerSec: null,
          extra: `${Math.round(perEntry)} B/entry${vs} (heap + external ${mib(r.heapEmpty)} → ${mib(r.heapFull)} for ${n.toLocaleString('en-US')} entries; RSS ${mib(r.rssFull)})${held}`,
        });
      } catch (err) {
        rows.push(errorRow(NAME, name, spec.role, errorMessage(err)));
      }
    }
  }
  return rows;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

const l1Entries = z.object({ tiers: z.object({ l1: z.object({ entries: z.number() }) }) });

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function podRow(ctx: WorkloadContext, items: number): Promise<Row> {
  const rowName = `API pod, ${items.toLocaleString('en-US')} products in L1`;
  const schema = `bench_mem_${randomBytes(4).toString('hex')}`;
  const token = randomBytes(24).toString('base64url');
  const prefix = `${ctx.runId}-mem`.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
  let db: Db | undefined;
  let api: ChildProcess | undefined;
  try {
    const databaseUrl = testDatabaseUrl();
    db = connectPg(databaseUrl);
    await migrate(db, { schema });
    await seed(db, { schema, count: items });
    const port = await freePort();
    api = spawn(process.execPath, ['--import', 'tsx', API_MAIN], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        PATH: process.env.PATH,
        // The http workload's fleet settings: this run's Redis, prefixes and catalogue schema.
        ...fleetEnv({ redisPort: ctx.port, databaseUrl, schema, adminToken: token, prefix }),
        CACHE_L1_MAX_ENTRIES: String(items),
        API_PORT: String(port),
        ADMIN_TOKEN: token,
        API_CRITICAL_WARM: 'false',
      },
    });
    const pid = api.pid;
    if (pid === undefined) throw new Error('the API pod did not start');
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(
      'the API pod ready',
      async () => ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined),
      { timeoutMs: 60_000 },
    );
    // One read first: the routes, the codec and the pools are built before the baseline.
    await fetch(`${base}/products/1`).then((r) => r.arrayBuffer());
    const rssStarted = await rssOf(pid);
    const ids = Array.from({ length: items }, (_, i) => i + 1);
    let failed = 0;
    await forEachLimit(ids, POD_CONCURRENCY, async (id) => {
      const res = await fetch(`${base}/products/${id}`);
      await res.arrayBuffer();
      if (res.status !== 200) failed++;
    });
    if (failed > 0) throw new Error(`${failed} of ${items} product reads were not 200`);
    const stats = l1Entries.parse(
      await (await fetch(`${base}/cache/stats`, { headers: { authorization: `Bearer ${token}` } })).json(),
    );
    if (stats.tiers.l1.entries < items) {
      throw new Error(`L1 holds ${stats.tiers.l1.entries} entries, not the ${items} read`);
    }
    // Let the pod's own timers run a round (telemetry, GC) so the figure is what it keeps.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const rssFull = await rssOf(pid);
    return {
      workload: NAME,
      name: rowName,
      role: 'project',
      opsPerSec: null,
      extra: `RSS ${mib(rssStarted)} started → ${mib(rssFull)} with ${stats.tiers.l1.entries.toLocaleString('en-US')} L1 entries (${Math.round((rssFull - rssStarted) / items)} B/entry)`,
    };
  } catch (err) {
    return errorRow(NAME, rowName, 'project', errorMessage(err));
  } finally {
    if (api !== undefined) await stop(api);
    if (db !== undefined) {
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
      await db.close();
    }
  }
}

export const memory: Workload = {
  name: NAME,
  describe: `heap + external bytes per L1 entry after a full GC, each library in its own process, beside bare lru-cache (target ≤ ${TARGET_RATIO}×); the RSS of an API pod holding ${POD_ITEMS.toLocaleString('en-US')} products in L1`,
  async run(ctx) {
    // --n scales the entry counts down for the CI smoke run (2,000 → 1/25 of the full size).
    const scale = ctx.n === undefined ? 1 : Math.min(1, ctx.n / 50_000);
    const rows = await perEntryRows(ctx, scale);
    rows.push(await podRow(ctx, Math.max(1_000, Math.round(POD_ITEMS * scale))));
    return rows;
  },
};
