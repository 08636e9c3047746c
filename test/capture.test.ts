import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { installCapture } from '@cachefleet/capture';
import { connectPg, createCatalogue, type Db, migrate, seed } from '@cachefleet/catalogue';
import { delay, type RedisProcess, runCli, startRedis, testDatabaseUrl, waitUntil } from '@cachefleet/test';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type FleetPod,
  jobLogs,
  startFleetPod,
  startWorker,
  stopAllPods,
  stopAllWorkers,
  type WorkerProc,
} from './fixtures/fleet-procs.js';
import { startPrivatePostgres } from './setup/postgres.js';
import { findPostgresBin } from './setup/tools.js';

const TAG = randomBytes(3).toString('hex');
const PRODUCTS = 2_000;
/** Touched ids: the pods read them all the time, so their L1 holds whatever was last loaded. */
const IDS = Array.from({ length: 120 }, (_, i) => String(i + 1));
const LEASE_MS = 3_000;
/** How long after the last COMMIT every pod must serve the database's rows (a bound on a hang). */
const ALLOWANCE_MS = 20_000;
const SLOW = 120_000;

let redis: RedisProcess;
let testNo = 0;
const stopAfter: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all([stopAllWorkers(), stopAllPods()]);
  for (const stop of stopAfter.splice(0)) await stop();
});

afterAll(async () => {
  await Promise.all([stopAllWorkers(), stopAllPods()]);
  await redis?.stop();
});

interface Source {
  readonly url: string;
  readonly schema: string;
  readonly capture: string;
  readonly db: Db;
  close(): Promise<void>;
}

/** A catalogue schema with PRODUCTS rows and capture installed, on the given database. */
async function source(
  url: string,
  closeServer: () => Promise<void> = async () => {},
  install = true,
): Promise<Source> {
  const schema = `cap_${TAG}_${++testNo}`;
  const capture = `capo_${TAG}_${testNo}`;
  const db = connectPg(url, { max: 1 });
  await migrate(db, { schema });
  await seed(db, { schema, count: PRODUCTS });
  if (install) {
    const client = new pg.Client(url);
    await client.connect();
    await installCapture(client, createCatalogue({ db, schema }).namespaces, { schema: capture });
    await client.end();
  }
  return {
    url,
    schema,
    capture,
    db,
    close: async () => {
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
      await db.query(`DROP SCHEMA IF EXISTS "${capture}" CASCADE`).catch(() => undefined);
      await db.close();
      await closeServer();
    },
  };
}

function fleet(src: Source, server: RedisProcess = redis) {
  const redis = server;
  const prefix = `cap${TAG}t${testNo}:`;
  return {
    worker: (name: string, queues = 'capture', extra: Record<string, string> = {}) =>
      startWorker({
        name,
        queues,
        env: {
          ...extra,
          CACHE_REDIS_URL: redis.url,
          QUEUE_REDIS_URL: redis.url,
          CACHE_KEY_PREFIX: prefix,
          QUEUE_PREFIX: `capq${TAG}t${testNo}`,
          CATALOGUE_SCHEMA: src.schema,
          DATABASE_URL: src.url,
          CAPTURE_SCHEMA: src.capture,
          CAPTURE_LEASE_MS: String(LEASE_MS),
          CAPTURE_POLL_MS: '200',
          WORKER_HTTP_PORT: '0',
          SCHEDULES_ENABLED: 'false',
          LOG_LEVEL: 'info',
        },
      }),
    pod: (name: string) =>
      startFleetPod({ name, redisUrl: redis.url, prefix, schema: src.schema, databaseUrl: src.url }),
  };
}

/** The fields a writer changes; undefined: no such row. */
type Row = { price_cents: number; stock: number; category: string } | undefined;

function fieldsOf(value: unknown): Row {
  if (value === null || value === undefined || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  return { price_cents: Number(v.price_cents), stock: Number(v.stock), category: String(v.category) };
}

async function truth(src: Source, ids: readonly string[]): Promise<Map<string, Row>> {
  const { rows } = await src.db.query<{ id: string; price_cents: number; stock: number; category: string }>(
    `SELECT id::text AS id, price_cents, stock, category FROM "${src.schema}".products WHERE id = ANY($1::bigint[])`,
    [ids],
  );
  const out = new Map<string, Row>(ids.map((id) => [id, undefined]));
  for (const r of rows) out.set(r.id, { price_cents: r.price_cents, stock: r.stock, category: r.category });
  return out;
}

/** Every pod serves the database's rows for every id (none differs): the consistency check. */
async function consistent(
  src: Source,
  pods: readonly FleetPod[],
  ids: readonly string[],
  note: (s: string) => void,
) {
  const want = await truth(src, ids);
  for (const pod of pods) {
    for (const r of await pod.read(ids)) {
      const got = fieldsOf(r.value);
      const expected = want.get(r.id);
      if (JSON.stringify(got) !== JSON.stringify(expected)) {
        note(
          `${pod.name} id ${r.id} from ${r.from}: ${JSON.stringify(got)} ≠ database ${JSON.stringify(expected)}`,
        );
        return undefined;
      }
    }
  }
  return true;
}

/** Converged within the allowance, and still so on a second full pass (no old value comes back). */
async function expectConverged(
  src: Source,
  pods: readonly FleetPod[],
  ids: readonly string[],
): Promise<void> {
  await waitUntil('every pod to serve the database rows', (note) => consistent(src, pods, ids, note), {
    timeoutMs: ALLOWANCE_MS,
    intervalMs: 200,
  });
  const notes: string[] = [];
  expect(await consistent(src, pods, ids, (s) => notes.push(s)), notes.join('; ')).toBe(true);
}

async function outboxEmpty(src: Source): Promise<true | undefined> {
  const { rows } = await src.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${src.capture}".capture_outbox`,
  );
  return rows[0]?.n === 0 ? true : undefined;
}

/** Pods keep reading the touched ids until stopped, so their L1 holds what was loaded last. */
function keepReading(pods: readonly FleetPod[], ids: readonly string[]): () => Promise<void> {
  let on = true;
  const loops = pods.map(async (pod) => {
    while (on) {
      await pod.read(ids).catch(() => undefined);
      await delay(50);
    }
  });
  return async () => {
    on = false;
    await Promise.all(loops);
  };
}

const activeLine = (w: WorkerProc) => w.logs.find((l) => l.msg === 'capture reader active (lease taken)');

/** A burst of single-row and multi-row writes, each its own transaction; `during(i)` runs between. */
async function burst(src: Source, n: number, during: (i: number) => Promise<void> = async () => {}) {
  const writer = new pg.Client(src.url);
  await writer.connect();
  const t = `"${src.schema}".products`;
  try {
    for (let i = 0; i < n; i++) {
      const id = IDS[(i * 37) % IDS.length];
      if (i % 25 === 0)
        await writer.query(`UPDATE ${t} SET stock = stock + 1 WHERE id <= 120 AND id % 7 = $1`, [i % 7]);
      else await writer.query(`UPDATE ${t} SET price_cents = $2 WHERE id = $1`, [id, 100_000 + i]);
      await during(i);
    }
  } finally {
    await writer.end();
  }
}

describe('change capture on PostgreSQL', { timeout: SLOW }, () => {
  let src: Source;
  beforeAll(async () => {
    src = await source(testDatabaseUrl());
  });
  afterAll(async () => {
    await src?.close();
  });

  it('raw SQL UPDATE, DELETE, INSERT, a row moving between tags, a rollback: every pod serves the database', async () => {
    const f = fleet(src);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const worker = await f.worker('capture-1');
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    const ids = [...IDS, '9001'];
    await expectConverged(src, pods, ids);
    const stop = keepReading(pods, ids);
    const writer = new pg.Client(src.url);
    await writer.connect();
    const t = `"${src.schema}".products`;
    await writer.query(`UPDATE ${t} SET price_cents = 1 WHERE id BETWEEN 1 AND 10`);
    await writer.query(`DELETE FROM ${t} WHERE id = 11`);
    await writer.query(
      `INSERT INTO ${t} (id, sku, name, category, price_cents, stock) VALUES (9001, 'N-9001', 'new', 'cat-1', 5, 5)`,
    );
    await writer.query(`UPDATE ${t} SET category = 'cat-moved' WHERE id = 12`);
    await writer.query('BEGIN');
    await writer.query(`UPDATE ${t} SET price_cents = 0 WHERE id = 13`);
    await writer.query('ROLLBACK');
    // A whole category in one statement (a bulk UPDATE … WHERE category = …).
    await writer.query(`UPDATE ${t} SET stock = stock + 100 WHERE category = 'cat-4'`);
    await writer.end();
    await stop();
    await expectConverged(src, pods, ids);
    expect((await truth(src, ['13'])).get('13')?.price_cents).not.toBe(0);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
  });

  it('the active reader SIGKILLed mid-burst: the standby takes over within the lease, no change lost', async () => {
    const f = fleet(src);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const [w1, w2] = await Promise.all([f.worker('capture-1'), f.worker('capture-2')]);
    const active = await waitUntil('one reader to take the lease', async () =>
      activeLine(w1) ? w1 : activeLine(w2) ? w2 : undefined,
    );
    const standby = active === w1 ? w2 : w1;
    // Several lease lengths: the standby stays a standby while the active one renews.
    await delay(LEASE_MS * 2);
    expect(activeLine(standby)).toBeUndefined();
    await expectConverged(src, pods, IDS);
    const stop = keepReading(pods, IDS);
    let killedAt = 0;
    await burst(src, 400, async (i) => {
      if (i === 150) {
        active.signal('SIGKILL');
        killedAt = Date.now();
      }
    });
    const line = await waitUntil('the standby to take over', async () => activeLine(standby), {
      timeoutMs: 20_000,
    });
    await stop();
    await expectConverged(src, pods, IDS);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
    // Within the lease plus the standby's retry period (a third), with room for a loaded machine.
    expect(Number(line.time) - killedAt).toBeLessThan(LEASE_MS * 4);
  });

  it('Redis killed and restarted mid-burst: no change lost', async () => {
    // Persistent (append-only, fsync always), as the cache Redis of a real deployment may be: the
    // stale L2 entries and the bus stream survive the restart, so only the reader applying the
    // changes committed during the outage makes the pods right again.
    const persistent = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    stopAfter.push(() => persistent.stop());
    const f = fleet(src, persistent);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const worker = await f.worker('capture-1');
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    await expectConverged(src, pods, IDS);
    const stop = keepReading(pods, IDS);
    await burst(src, 300, async (i) => {
      if (i === 100) await persistent.kill();
      if (i === 200) await persistent.restart();
    });
    await stop();
    await expectConverged(src, pods, IDS);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
    expect(worker.running).toBe(true);
  });
});

describe('large tag fan-outs as invalidate jobs', { timeout: SLOW }, () => {
  let src: Source;
  beforeAll(async () => {
    src = await source(testDatabaseUrl());
  });
  afterAll(async () => {
    await src?.close();
  });

  const idsOf = async (category: string) =>
    (
      await src.db.query<{ id: string }>(
        `SELECT id::text AS id FROM "${src.schema}".products WHERE category = $1 ORDER BY id`,
        [category],
      )
    ).rows.map((r) => r.id);
  const enqueued = (w: WorkerProc) =>
    w.logs.filter((l) => l.msg === 'capture fan-out enqueued as an invalidate job');

  /*
   * CAPTURE_JOB_AT=50: a coalesced tag whose index holds ≥ 50 entries goes to an invalidate job,
   * which the same worker's `invalidate` queue runs; one holding fewer is walked by the reader. Both
   * categories change in one statement of 100 rows (≥ CAPTURE_COALESCE_AT=50: one tag each); only
   * how many entries the pods cached differs. Without the reader's job path no job line appears.
   */
  it('a bulk UPDATE of a category the pods cached widely → an invalidate job that completes; a small one → inline', async () => {
    const f = fleet(src);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const worker = await f.worker('capture-1', 'invalidate:1,capture', {
      CAPTURE_JOB_AT: '50',
      CAPTURE_COALESCE_AT: '50',
    });
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    const wide = await idsOf('cat-7');
    const narrow = (await idsOf('cat-8')).slice(0, 10);
    expect(wide).toHaveLength(100);
    await expectConverged(src, pods, [...wide, ...narrow]); // cached: cat-7's index holds 100, cat-8's 10
    const t = `"${src.schema}".products`;
    const writer = new pg.Client(src.url);
    await writer.connect();
    try {
      await writer.query(`UPDATE ${t} SET price_cents = price_cents + 1 WHERE category = 'cat-8'`);
      await expectConverged(src, pods, narrow);
      await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
      expect(enqueued(worker)).toEqual([]);

      await writer.query(`UPDATE ${t} SET price_cents = price_cents + 1 WHERE category = 'cat-7'`);
      const line = await waitUntil('the fan-out job to be enqueued', async () => enqueued(worker)[0]);
      const jobId = String(line.jobId);
      const done = await waitUntil(
        'the job to complete',
        async () => jobLogs(worker, jobId, 'job completed')[0],
      );
      expect(done.result).toMatchObject({ scope: 'tags', namespace: 'product', removed: 100 });
      await expectConverged(src, pods, [...wide, ...narrow]);
      await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
      expect(enqueued(worker)).toHaveLength(1);
    } finally {
      await writer.end();
    }
  });
});

describe('change capture across a PostgreSQL restart', { timeout: SLOW }, () => {
  // A server of this test's own (the run's shared one must not restart under other files).
  it('PostgreSQL crashed (immediate stop) and restarted between two bursts: the reader reconnects, no change lost', async () => {
    const server = await startPrivatePostgres(findPostgresBin(() => {}).path);
    const src = await source(server.url, async () => server.stop());
    stopAfter.push(() => src.close());
    const f = fleet(src);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const worker = await f.worker('capture-1');
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    await expectConverged(src, pods, IDS);
    await burst(src, 100);
    server.restart();
    // Changes committed right after the restart, while the reader's connections are still broken.
    await burst(src, 100);
    await expectConverged(src, pods, IDS);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
    expect(worker.running).toBe(true);
  });
});

const _ROOT = fileURLToPath(new URL('../', import.meta.url));

/** The real CLI as a child process; resolves its exit code and output. */
const cli = (args: readonly string[], env: Record<string, string>) => runCli(args, env);

describe('cachefleet capture install and status', { timeout: SLOW }, () => {
  let src: Source;
  beforeAll(async () => {
    src = await source(testDatabaseUrl(), async () => {}, false);
  });
  afterAll(async () => {
    await src?.close();
  });

  it('installs with the CLI; status shows the active reader, its position and lag', async () => {
    const env = {
      DATABASE_URL: src.url,
      CATALOGUE_SCHEMA: src.schema,
      CAPTURE_SCHEMA: src.capture,
      CACHE_REDIS_URL: redis.url,
      QUEUE_REDIS_URL: redis.url,
      CACHE_KEY_PREFIX: `cap${TAG}t${testNo}:`,
      QUEUE_PREFIX: `capq${TAG}t${testNo}`,
    };
    const install = await cli(['capture', 'install', '--json'], env);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(JSON.parse(install.stdout)).toEqual({
      schema: src.capture,
      tables: [`product <- ${src.schema}.products`],
    });
    const before = await cli(['status'], env);
    expect(before.stdout).toMatch(/^capture: no reader has run/m);

    const f = fleet(src);
    const pod = await f.pod('pod-a');
    const worker = await f.worker('capture-1');
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    await burst(src, 20);
    await expectConverged(src, [pod], IDS);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
    const status = await cli(['status', '--json'], env);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).capture).toMatchObject({
      active: true,
      holder: expect.any(String),
      fence: expect.any(Number),
      position: expect.any(Number),
      lagSeconds: expect.any(Number),
    });
    const text = await cli(['status'], env);
    expect(text.stdout).toMatch(/^CAPTURE\s+HOLDER\s+FENCE\s+POSITION\s+LAG \(S\)\s+UPDATED$/m);
    expect(text.stdout).toMatch(/^active\s+\S+/m);
    // Three CLI processes, a pod and a worker started: 29.6 s of the default 30 in a slow CI run.
  }, 120_000);
});

// PGlite's socket server does not forward NOTIFY to other connections: the reader polls there.
describe('change capture on PGlite (socket server, as npm start shares it)', { timeout: SLOW }, () => {
  let src: Source;
  beforeAll(async () => {
    const lite = await PGlite.create();
    const server = new PGLiteSocketServer({ db: lite, host: '127.0.0.1', port: 0, maxConnections: 16 });
    await server.start();
    src = await source(`postgres://postgres@${server.getServerConn()}/postgres?sslmode=disable`, async () => {
      await server.stop();
      await lite.close();
    });
  });
  afterAll(async () => {
    await src?.close();
  });

  it('raw SQL writes and a burst reach every pod', async () => {
    const f = fleet(src);
    const pods = await Promise.all([f.pod('pod-a'), f.pod('pod-b')]);
    const worker = await f.worker('capture-1');
    await waitUntil('the reader to take the lease', async () => activeLine(worker));
    await expectConverged(src, pods, IDS);
    const stop = keepReading(pods, IDS);
    await burst(src, 100);
    const writer = new pg.Client(src.url);
    await writer.connect();
    await writer.query(`UPDATE "${src.schema}".products SET category = 'cat-moved' WHERE id = 12`);
    await writer.query(`DELETE FROM "${src.schema}".products WHERE id = 11`);
    await writer.end();
    await stop();
    await expectConverged(src, pods, IDS);
    await waitUntil('the outbox to be pruned', () => outboxEmpty(src));
  });
});
