/**
 * Issue 16: writes by raw SQL on another connection → pods never serve the old value after the
 * allowance. The randomized checker of consistency.ts, with its pods reading only and the SQL
 * writer (consistency-sql.ts) changing the rows: UPDATE, an UPDATE moving a row between tags, a
 * bulk UPDATE of a tag, DELETE, INSERT, a rolled-back transaction. A real capture worker process
 * (`--queues invalidate:1,capture`) applies the outbox; its large tag fan-outs go through an
 * invalidate job that the same process runs.
 *
 * The allowance: the reader LISTENs, so a COMMIT normally wakes it at once; a lost notification
 * waits for the next poll (CAPTURE_POLL_MS, 250 here); then one turn, the bus to every pod, and
 * for a tag sent to a job, the job's pickup. The bench measured COMMIT → all pods at p99 52–66 ms,
 * max 296 ms on this 2-core machine at load 15–21 (docs/design-capture.md): ALLOWANCE_MS = the
 * poll + 750 ms. Without capture (the reader not running) the same run has hundreds of stale reads:
 * pods keep what they loaded for the L1 TTL (60 s).
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { installCapture } from '@cachefleet/capture';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from '@cachefleet/test';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHistory, describeViolation, runFleet, summarize } from './consistency.js';
import { runSqlWriter, SQL_CHANGES } from './consistency-sql.js';
import { startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import { createItems, sqlItemNamespace } from './fixtures/sql-items.js';

const TAG = randomBytes(3).toString('hex');
const SCHEMA = `sqlc_${TAG}`;
const CAPTURE = `sqlco_${TAG}`;
const PREFIX = `sqlc${TAG}:`;
const IDS = 20;
const GROUPS = 4;
const POLL_MS = 250;
const ALLOWANCE_MS = POLL_MS + 750;
const DURATION_MS = 5_000;
const DEFINITIONS = fileURLToPath(new URL('./fixtures/sql-items.ts', import.meta.url));

let redis: RedisProcess;
const url = () => testDatabaseUrl();

beforeAll(async () => {
  redis = await startRedis();
  await createItems(url(), SCHEMA, IDS, GROUPS);
  const pool = new pg.Pool({ connectionString: url(), max: 1 });
  const client = new pg.Client(url());
  await client.connect();
  try {
    await installCapture(client, [sqlItemNamespace(pool, SCHEMA)], { schema: CAPTURE });
  } finally {
    await client.end();
    await pool.end();
  }
});

afterAll(async () => {
  await stopAllWorkers();
  const client = new pg.Client(url());
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE; DROP SCHEMA IF EXISTS "${CAPTURE}" CASCADE`);
  await client.end();
  await redis?.stop();
});

describe('consistency with an SQL writer and change capture', () => {
  it('3 pods, raw SQL changes of every kind: no read older than a change committed > the allowance before it', async () => {
    const worker = await startWorker({
      name: 'capture',
      queues: 'invalidate:1,capture',
      env: {
        CACHE_REDIS_URL: redis.url,
        QUEUE_REDIS_URL: redis.url,
        CACHE_KEY_PREFIX: PREFIX,
        QUEUE_PREFIX: `sqlcq${TAG}`,
        WORKER_DEFINITIONS: DEFINITIONS,
        SQL_ITEMS_SCHEMA: SCHEMA,
        DATABASE_URL: url(),
        CAPTURE_SCHEMA: CAPTURE,
        CAPTURE_POLL_MS: String(POLL_MS),
        // A group's 5 rows in one statement coalesce into its tag; a tag whose index holds ≥ 3
        // entries goes to an invalidate job: both capture paths are in the history.
        CAPTURE_COALESCE_AT: '4',
        CAPTURE_JOB_AT: '3',
        WORKER_HTTP_PORT: '0',
        SCHEDULES_ENABLED: 'false',
        LOG_LEVEL: 'info',
      },
    });
    await waitUntil('the reader to take the lease', async () =>
      worker.logs.some((l) => l.msg === 'capture reader active (lease taken)') ? true : undefined,
    );
    let go: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      go = resolve;
    });
    const writing = started.then(() =>
      runSqlWriter({ url: url(), schema: SCHEMA, ids: IDS, groups: GROUPS, durationMs: DURATION_MS - 500 }),
    );
    const run = await runFleet({
      workers: 3,
      durationMs: DURATION_MS,
      ids: IDS,
      mix: { read: 1, write: 0, pattern: 0, tags: 0, namespace: 0 },
      sql: { url: url(), schema: SCHEMA },
      redisUrl: redis.url,
      prefix: PREFIX,
      onGo: go,
      log: (m) => console.log(m),
    });
    const sql = await writing;
    const r = checkHistory([...run.lines, ...sql.ops], { busDelayMs: ALLOWANCE_MS });
    const explained = r.violations.map((v) => describeViolation(v, run.startedAt));
    const reads = run.lines.flatMap((l) => (l.kind === 'read' && l.version !== null ? [l.version] : []));
    const rolledBackRead = reads.filter((v) => sql.rolledBack.has(v));
    const jobs = worker.logs.filter((l) => l.msg === 'capture fan-out enqueued as an invalidate job').length;
    console.log(
      `consistency (SQL writer): ${r.readsChecked} reads checked (${r.readsFailed} failed), ` +
        `${sql.ops.length} committed changes ${JSON.stringify(sql.counts)}, ${jobs} tag jobs, ` +
        `allowance ${ALLOWANCE_MS} ms, ${r.violations.length} violations ${JSON.stringify(summarize(r.violations))}`,
    );
    for (const line of explained.slice(0, 10)) console.log(`  ${line}`);
    expect(r.readsFailed).toBe(0);
    // Floors on the history's size, not speed checks: every kind of change was made and read after.
    expect(r.readsChecked).toBeGreaterThan(500);
    for (const change of SQL_CHANGES) expect(sql.counts[change], change).toBeGreaterThan(0);
    expect(jobs).toBeGreaterThan(0);
    expect(rolledBackRead).toEqual([]);
    expect(explained).toEqual([]);
  }, 60_000);
});
