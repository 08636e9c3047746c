/**
 * The capture reader in this process against a real PostgreSQL and a real Redis: raw SQL on another
 * connection reaches a pod's L1 through the bus; bursts coalesce; the lease lets one reader work at
 * a time and fences one that lost it. The multi-process cases (SIGKILL, Redis restart, takeover
 * between processes, PGlite) are in test/capture.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { connectPg, createCatalogue, type Db, migrate, seed } from '@cachefleet/catalogue';
import { cacheKeys, createRedisClient, type RedisClient } from '@cachefleet/redis';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from '@cachefleet/test';
import { type Cache, type CacheEvent, createCache, type Namespace } from '@cachefleet/tiered-cache';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CaptureFanOutJob, CaptureReader, installCapture, readCaptureState } from '../src/index.js';

const URL_ = testDatabaseUrl();
const SCHEMA = `cap_r_${randomBytes(4).toString('hex')}`;
const CAPTURE = `cap_ro_${randomBytes(4).toString('hex')}`;
const PREFIX = `cap${randomBytes(3).toString('hex')}:`;
const logger = pino({ level: 'silent' });

let redis: RedisProcess;
let db: Db;
let writer: pg.Client;
let product: Namespace<unknown>;
let namespaces: readonly Namespace<unknown>[];
let pod: Cache;
const events: CacheEvent[] = [];
const opened: { close(): Promise<void> }[] = [];

interface Reader {
  reader: CaptureReader;
  cache: Cache;
  client: RedisClient;
}

async function startReader(
  overrides: {
    leaseMs?: number;
    pollMs?: number;
    jobAt?: number;
    enqueue?: (job: CaptureFanOutJob) => Promise<string>;
  } = {},
): Promise<Reader> {
  const cache = createCache({ impl: 'redis', redis: { mode: 'single', url: redis.url }, prefix: PREFIX });
  cache.register(...namespaces);
  await cache.start();
  const client = createRedisClient({ mode: 'single', url: redis.url }, { role: 'cache' });
  await client.connect();
  const reader = new CaptureReader({
    cache,
    redis: client,
    keys: cacheKeys(PREFIX),
    databaseUrl: URL_,
    namespaces,
    config: {
      schema: CAPTURE,
      batch: 10_000,
      pollMs: overrides.pollMs ?? 200,
      leaseMs: overrides.leaseMs ?? 1_500,
      coalesceAt: 100,
      jobAt: overrides.jobAt ?? 0,
    },
    logger,
    metrics: new Registry(),
    holder: `reader-${opened.length}`,
    ...(overrides.enqueue ? { enqueue: overrides.enqueue } : {}),
  });
  reader.start();
  const r = { reader, cache, client };
  opened.push({
    close: async () => {
      await reader.close();
      await cache.close();
      client.disconnect();
    },
  });
  return r;
}

beforeAll(async () => {
  redis = await startRedis();
  db = connectPg(URL_, { max: 2 });
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: 10_000 });
  const catalogue = createCatalogue({ db, schema: SCHEMA });
  product = catalogue.product;
  namespaces = catalogue.namespaces;
  const install = new pg.Client(URL_);
  await install.connect();
  await installCapture(install, namespaces, { schema: CAPTURE });
  await install.end();
  writer = new pg.Client(URL_);
  await writer.connect();
  pod = createCache({ impl: 'tiered', redis: { mode: 'single', url: redis.url }, prefix: PREFIX });
  pod.register(product);
  await pod.start();
  pod.onEvent((e) => events.push(e));
});

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

afterAll(async () => {
  await pod?.close();
  await writer?.end();
  await db?.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await db?.query(`DROP SCHEMA IF EXISTS "${CAPTURE}" CASCADE`);
  await db?.close();
  await redis?.stop();
});

const T = () => `"${SCHEMA}".products`;
async function read(id: string): Promise<Record<string, unknown> | undefined> {
  const r = await pod.get(product, id);
  if (!r.ok) throw r.error;
  return r.value as Record<string, unknown> | undefined;
}
async function outboxSize(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${CAPTURE}".capture_outbox`,
  );
  return rows[0]?.n ?? -1;
}
const until = <T>(what: string, check: () => Promise<T | undefined>) =>
  waitUntil(what, check, { timeoutMs: 15_000 });

describe('capture reader', () => {
  it('a raw SQL UPDATE, an UPDATE moving a row, a DELETE: the pod drops its entry, the outbox is pruned', async () => {
    await startReader();
    expect(await read('10')).toMatchObject({ price_cents: expect.any(Number) });
    expect(await read('11')).toMatchObject({ category: 'cat-11' });
    expect(await read('12')).toBeDefined();
    await writer.query(`UPDATE ${T()} SET price_cents = 1 WHERE id = 10`);
    await writer.query(`UPDATE ${T()} SET category = 'cat-moved' WHERE id = 11`);
    await writer.query(`DELETE FROM ${T()} WHERE id = 12`);
    await until('the pod to serve the new rows', async () => {
      const [a, b, c] = [await read('10'), await read('11'), await read('12')];
      return a?.price_cents === 1 && b?.category === 'cat-moved' && c === undefined ? true : undefined;
    });
    await until('the outbox to be pruned', async () => ((await outboxSize()) === 0 ? true : undefined));
  });

  it('10,000 updates of one category in one transaction: one tag invalidation, no key events', async () => {
    await startReader();
    const ids = (await db.query<{ id: string }>(`SELECT id::text AS id FROM ${T()} WHERE category = 'cat-3'`))
      .rows;
    expect(ids).toHaveLength(500);
    await read(ids[0]?.id ?? '');
    events.length = 0;
    // 20 passes over the 500 rows of cat-3: 10,000 row updates, 20 statements, one transaction.
    await writer.query(`DO $$ BEGIN FOR i IN 1..20 LOOP
      UPDATE ${T()} SET stock = stock + 1 WHERE category = 'cat-3'; END LOOP; END $$`);
    await until('a tag event', async () =>
      events.some((e) => e.event_type === 'invalidate') ? true : undefined,
    );
    await until('the outbox to be pruned', async () => ((await outboxSize()) === 0 ? true : undefined));
    const invalidations = events.filter((e) => e.event_type === 'invalidate' && e.namespace === 'product');
    expect(invalidations).toEqual([expect.objectContaining({ tags: ['category:cat-3'] })]);
    expect(((await read(ids[0]?.id ?? '')) as { stock: number }).stock).toBeGreaterThanOrEqual(20);
  });

  /*
   * The position moves only once the queue took the job: while the enqueue fails (a queue Redis
   * down), the rows stay in the outbox and the reader retries; the tag is not walked inline instead.
   * The job's end to end path (a worker runs it, pods clean) is in test/capture.test.ts.
   */
  it('a tag whose index holds jobAt entries goes to a job; the outbox is pruned only once it is enqueued', async () => {
    const ids = (await db.query<{ id: string }>(`SELECT id::text AS id FROM ${T()} WHERE category = 'cat-5'`))
      .rows;
    for (const { id } of ids.slice(0, 150)) await read(id); // the tag index holds 150 entries
    const jobs: CaptureFanOutJob[] = [];
    let failures = 3;
    await startReader({
      jobAt: 100,
      enqueue: async (job) => {
        if (failures-- > 0) throw new Error('the queue Redis is down');
        jobs.push(job);
        return `job-${jobs.length}`;
      },
    });
    events.length = 0;
    await writer.query(`UPDATE ${T()} SET stock = stock + 1 WHERE category = 'cat-5'`);
    await until('the failing enqueues to be retried', async () => (failures < 0 ? true : undefined));
    await until('the outbox to be pruned', async () => ((await outboxSize()) === 0 ? true : undefined));
    expect(jobs).toEqual([{ scope: 'tags', namespace: 'product', tags: ['category:cat-5'] }]);
    // Not walked by the reader: no tag event (a job runs it; nobody consumes it here).
    expect(events.filter((e) => e.event_type === 'invalidate' && e.tags !== undefined)).toEqual([]);
  });

  it('two readers: one holds the lease; the other takes over when it is released; a fenced reader prunes nothing', async () => {
    // A lease long enough that a stalled event loop on a loaded machine does not lose it.
    const a = await startReader({ leaseMs: 3_000 });
    await until('a to be active', async () => (a.reader.active ? true : undefined));
    const b = await startReader({ leaseMs: 3_000 });
    // B stays on standby while A renews (several lease lengths).
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      expect([a.reader.active, b.reader.active]).toEqual([true, false]);
    }
    const fenceA = a.reader.fence;
    await opened.shift()?.close();
    await until('b to take over', async () => (b.reader.active ? true : undefined));
    expect(b.reader.fence).toBeGreaterThan(fenceA);
    await writer.query(`UPDATE ${T()} SET price_cents = 7 WHERE id = 20`);
    await until('b to apply', async () => ((await read('20'))?.price_cents === 7 ? true : undefined));
    await until('b to prune', async () => ((await outboxSize()) === 0 ? true : undefined));
    const state = await readCaptureState(b.client, cacheKeys(PREFIX));
    expect(state.position).toMatchObject({ fence: b.reader.fence, holder: expect.any(String) });
    expect(state.fence).toBe(b.reader.fence);

    // Someone else takes the lease under B's feet (as after a pause longer than the lease): B's
    // next turn finds it gone, applies nothing further and leaves the rows for the new holder.
    const fenceB = b.reader.fence;
    await b.client.set(cacheKeys(PREFIX).captureLease, `${fenceB + 1}:intruder`, 'PX', 60_000);
    await until('b to step down', async () => (!b.reader.active ? true : undefined));
    await writer.query(`UPDATE ${T()} SET price_cents = 8 WHERE id = 21`);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await outboxSize()).toBe(1);
    await b.client.del(cacheKeys(PREFIX).captureLease);
    await until('b to be back and prune', async () =>
      b.reader.active && (await outboxSize()) === 0 ? true : undefined,
    );
    expect(b.reader.fence).toBeGreaterThan(fenceB);
  });
});
