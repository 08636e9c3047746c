/**
 * Change capture (issue 16): time from an UPDATE committed by plain SQL (not through the cache) to
 * every pod having applied the invalidation, beside the floor measured in the same run: a bare
 * NOTIFY committed the same way and received by a LISTENing connection. Then the throughput of one
 * bulk `UPDATE … ` of every row, until every pod has applied its (coalesced) invalidations.
 *
 * The capture reader is a real worker process (`apps/worker/src/main.ts --queues capture`); the
 * pods are tiered caches in this process (their `onEvent` runs after the event was applied to L1),
 * and so are the writer and the floor's listener. Changes go one after the other: the next starts
 * once every pod saw the previous one. The clock starts just before the statement is sent, so both
 * rows include the statement and its commit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { installCapture } from '@cachefleet/capture';
import { connectPg, createCatalogue, migrate, seed } from '@cachefleet/catalogue';
import { type Cache, createCache } from '@cachefleet/tiered-cache';
import pg from 'pg';
import { testDatabaseUrl } from '../../helpers/index.js';
import { errorMessage } from '../data.js';
import { errorRow, percentile } from '../measure.js';
import type { Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'capture';
const PODS = 4;
const DEFAULT_N = 10_000;
const BULK_ROWS = 100_000;
const WARMUP = 100;
const WAIT_MS = 5_000;
/** The bulk row: the reader reads one outbox row of 100k images and walks 20 tags. */
const BULK_WAIT_MS = 120_000;
const TARGET_P99_MS = 50;
const TARGET_ROWS_PER_S = 50_000;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const now = (): number => performance.timeOrigin + performance.now();

function stats(samples: number[]): string {
  const sorted = Float64Array.from(samples).sort();
  const f = (x: number) => x.toFixed(2);
  return `p50 ${f(percentile(sorted, 50))} / p99 ${f(percentile(sorted, 99))} / max ${f(sorted[sorted.length - 1] ?? Number.NaN)} ms over ${sorted.length}`;
}

function startReader(env: Record<string, string>, log: (m: string) => void): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'apps/worker/src/main.ts', '--queues', 'capture'],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('the capture worker did not become active in 60 s')),
      60_000,
    );
    let buffer = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      buffer += d;
      if (buffer.includes('capture reader active')) {
        clearTimeout(timer);
        log('capture worker active');
        resolve(child);
      }
      if (buffer.length > 100_000) buffer = buffer.slice(-1000);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the capture worker exited (${code})`));
    });
  });
}

export const capture: Workload = {
  name: NAME,
  describe: `COMMIT of a plain-SQL UPDATE → every one of ${PODS} pods applied the invalidation (target p99 < ${TARGET_P99_MS} ms), beside LISTEN/NOTIFY; bulk UPDATE of ${BULK_ROWS.toLocaleString('en-US')} rows (target ≥ ${TARGET_ROWS_PER_S.toLocaleString('en-US')} rows/s)`,
  async run(ctx: WorkloadContext): Promise<Row[]> {
    try {
      return await run(ctx);
    } catch (err) {
      return [errorRow(NAME, 'capture', 'project', errorMessage(err))];
    }
  },
};

async function run(ctx: WorkloadContext): Promise<Row[]> {
  const n = ctx.n ?? DEFAULT_N;
  const url = testDatabaseUrl();
  const schema = `bench_${ctx.runId.replace(/\W/g, '_')}`;
  const captureSchema = `${schema}_capture`;
  const prefix = `${ctx.runId}:capture:`;
  const redisUrl = `redis://127.0.0.1:${ctx.port}`;
  const db = connectPg(url, { max: 2 });
  const pods: Cache[] = [];
  let reader: ChildProcess | undefined;
  const writer = new pg.Client(url);
  const listener = new pg.Client(url);
  try {
    ctx.log(`seeding ${BULK_ROWS} products`);
    await migrate(db, { schema });
    await seed(db, { schema, count: BULK_ROWS });
    const { product, namespaces } = createCatalogue({ db, schema });
    await writer.connect();
    await listener.connect();
    await installCapture(writer, namespaces, { schema: captureSchema });
    // Pods: each records when it applied an event naming an id (or a tag).
    const seen = new Map<string, number[]>();
    const tagsSeen: Set<string>[] = [];
    for (let p = 0; p < PODS; p++) {
      const pod = createCache({ impl: 'tiered', redis: { mode: 'single', url: redisUrl }, prefix });
      pod.register(product);
      await pod.start();
      const tags = new Set<string>();
      tagsSeen.push(tags);
      pod.onEvent((e) => {
        if (e.event_type !== 'invalidate') return;
        const t = now();
        for (const id of e.keys ?? []) {
          const list = seen.get(id);
          if (list === undefined) seen.set(id, [t]);
          else list.push(t);
        }
        for (const tag of e.tags ?? []) tags.add(tag);
      });
      pods.push(pod);
    }
    reader = await startReader(
      {
        CACHE_REDIS_URL: redisUrl,
        QUEUE_REDIS_URL: redisUrl,
        CACHE_KEY_PREFIX: prefix,
        QUEUE_PREFIX: `${ctx.runId}q`,
        DATABASE_URL: url,
        CATALOGUE_SCHEMA: schema,
        CAPTURE_SCHEMA: captureSchema,
        WORKER_HTTP_PORT: '0',
        SCHEDULES_ENABLED: 'false',
        LOG_LEVEL: 'info',
      },
      ctx.log,
    );
    const waitFor = async (done: () => boolean, ms = WAIT_MS): Promise<boolean> => {
      const until = Date.now() + ms;
      while (!done()) {
        if (Date.now() > until) return false;
        await new Promise((r) => setImmediate(r));
      }
      return true;
    };

    // The floor: NOTIFY committed by one connection, received by another.
    let floorAt = 0;
    let floorGot = 0;
    listener.on('notification', () => {
      floorAt = now();
      floorGot++;
    });
    await listener.query('LISTEN bench_floor');
    const floor: number[] = [];
    const project: number[] = [];
    let lost = 0;
    const table = `"${schema}".products`;
    ctx.log(`${n} changes each, floor and capture taking turns`);
    for (let i = 0; i < n + WARMUP; i++) {
      const before = floorGot;
      const t0 = now();
      await writer.query("NOTIFY bench_floor, 'x'");
      if (await waitFor(() => floorGot > before)) {
        if (i >= WARMUP) floor.push(floorAt - t0);
      }
      const id = String((i % BULK_ROWS) + 1);
      seen.delete(id);
      const t1 = now();
      await writer.query(`UPDATE ${table} SET price_cents = price_cents + 1 WHERE id = $1`, [id]);
      if (await waitFor(() => (seen.get(id)?.length ?? 0) >= PODS)) {
        if (i >= WARMUP) project.push(Math.max(...(seen.get(id) ?? [])) - t1);
      } else lost++;
      if (i > 0 && i % 2_000 === 0) ctx.log(`${i} changes`);
    }
    // Bulk: every row in one statement → one outbox row, coalesced into one tag per category.
    ctx.log(`bulk UPDATE of ${BULK_ROWS} rows`);
    for (const t of tagsSeen) t.clear();
    const { rows: cats } = await db.query<{ c: string }>(`SELECT DISTINCT category AS c FROM ${table}`);
    const t2 = now();
    await writer.query(`UPDATE ${table} SET stock = stock + 1`);
    const committed = now() - t2;
    const clean = await waitFor(
      () => tagsSeen.every((t) => cats.every((c) => t.has(`category:${c.c}`))),
      BULK_WAIT_MS,
    );
    const bulkMs = now() - t2;
    const p99 = percentile(Float64Array.from(project).sort(), 99);
    return [
      {
        workload: NAME,
        name: 'LISTEN/NOTIFY (floor): COMMIT → listener',
        role: 'floor',
        opsPerSec: null,
        extra: stats(floor),
      },
      {
        workload: NAME,
        name: `capture: COMMIT → all ${PODS} pods applied`,
        role: 'project',
        opsPerSec: null,
        extra: `${stats(project)}${lost > 0 ? `; ${lost} not seen within ${WAIT_MS} ms` : ''}; target p99 < ${TARGET_P99_MS} ms: ${p99 < TARGET_P99_MS ? 'met' : 'missed'}`,
      },
      clean
        ? {
            workload: NAME,
            name: `bulk UPDATE of ${BULK_ROWS.toLocaleString('en-US')} rows → all pods clean`,
            role: 'project',
            opsPerSec: Math.round(BULK_ROWS / (bulkMs / 1000)),
            extra: `${bulkMs.toFixed(0)} ms (the UPDATE itself, triggers included: ${committed.toFixed(0)} ms), ${cats.length} tag invalidations; target ≥ ${TARGET_ROWS_PER_S} rows/s: ${BULK_ROWS / (bulkMs / 1000) >= TARGET_ROWS_PER_S ? 'met' : 'missed'}`,
          }
        : errorRow(NAME, 'bulk UPDATE', 'project', `pods not clean within ${BULK_WAIT_MS} ms`),
    ];
  } finally {
    reader?.kill('SIGTERM');
    for (const pod of pods) await pod.close();
    await listener.end().catch(() => undefined);
    await writer.end().catch(() => undefined);
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.query(`DROP SCHEMA IF EXISTS "${captureSchema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}
