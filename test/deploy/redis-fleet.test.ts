/**
 * The fleet on the shipped Redis files (shipped-redis.ts): a real worker process and a producer
 * reach the queue Redis through Sentinel as the ACL's `default` user, and the cache Redis as its
 * `default` user, with the settings the Kubernetes pods use (QUEUE_REDIS_MODE=sentinel and a
 * password, CACHE_REDIS_URL with a password). Then the preStop step hands the queue master over,
 * the old master restarts as a pod would (redis-pod.sh asks the Sentinel) and rejoins as a replica,
 * and the worker, following the Sentinel, keeps serving.
 */
import { randomBytes } from 'node:crypto';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import {
  invalidateResultSchema,
  JobClient,
  type JobView,
  loadQueueConfig,
  warmResultSchema,
} from '@cachefleet/jobs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startWorker, stopAllWorkers, type WorkerProc } from '../fixtures/fleet-procs.js';
import { testDatabaseUrl } from '../helpers/database.js';
import { parseInfo, rawCommand } from '../helpers/resp.js';
import { waitUntil } from '../helpers/wait.js';
import {
  ADMIN,
  redisPod,
  SECRETS,
  SENTINEL_AUTH,
  type ShippedRedis,
  startShippedRedis,
} from './shipped-redis.js';

const SCHEMA = `deploy_${randomBytes(4).toString('hex')}`;
const DATABASE_URL = testDatabaseUrl();

let set: ShippedRedis | undefined;
let db: Db | undefined;
let jobs: JobClient | undefined;
let worker: WorkerProc | undefined;

function shipped(): ShippedRedis {
  if (set === undefined) throw new Error('not started');
  return set;
}

/** What the pods' settings become on loopback: Sentinel mode with a password, a URL with one. */
function fleetEnv(): Record<string, string> {
  return {
    QUEUE_REDIS_MODE: 'sentinel',
    QUEUE_REDIS_SENTINELS: `127.0.0.1:${shipped().sentinel.port}`,
    QUEUE_REDIS_SENTINEL_NAME: 'queue',
    QUEUE_REDIS_PASSWORD: SECRETS.queueApp,
    QUEUE_REDIS_SENTINEL_PASSWORD: SECRETS.sentinelAuth,
    QUEUE_PREFIX: 'cachefleet',
    CACHE_REDIS_MODE: 'single',
    CACHE_REDIS_URL: `redis://:${SECRETS.cacheApp}@127.0.0.1:${shipped().cache.port}`,
    CACHE_KEY_PREFIX: 'cf:',
    CATALOGUE_SCHEMA: SCHEMA,
    DATABASE_URL,
  };
}

beforeAll(async () => {
  set = await startShippedRedis();
  db = connectPg(DATABASE_URL, { max: 1 });
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: 100 });
  jobs = new JobClient(loadQueueConfig(fleetEnv()));
  // Schedules on: the job schedulers go through the ACL too.
  worker = await startWorker({
    name: 'deploy',
    env: { ...fleetEnv(), WORKER_HTTP_PORT: '0', LOG_LEVEL: 'info' },
    queues: 'warm:2,invalidate:4',
  });
});

afterAll(async () => {
  await stopAllWorkers();
  await jobs?.close();
  if (db !== undefined) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.close();
  }
  await set?.stop();
});

function settled(id: string): Promise<JobView> {
  return waitUntil(
    `job ${id} to complete or fail`,
    async (note) => {
      const j = await jobs?.job(id);
      note(`state ${j?.state ?? 'absent'}`);
      if (j?.state === 'completed' && j.result !== undefined && j.result !== null) return j;
      if (j?.state === 'failed') return j;
      return undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}

/** Cache keys of products, read as the admin user. */
async function cached(...ids: number[]): Promise<boolean[]> {
  const port = shipped().cache.port;
  return Promise.all(
    ids.map(async (id) => (await rawCommand(port, ['EXISTS', `cf:product:v1:${id}`], { auth: ADMIN })) === 1),
  );
}

test('a worker warms and invalidates through the Sentinel and the scoped ACL users', async () => {
  if (jobs === undefined || worker === undefined) throw new Error('not started');
  const keys = Array.from({ length: 20 }, (_, i) => String(i + 1));
  const warm = await settled((await jobs.enqueue('warm', { type: 'keys', namespace: 'product', keys })).id);
  expect(warm.failedReason).toBeUndefined();
  expect(warmResultSchema.parse(warm.result)).toMatchObject({ requested: 20, written: 20 });
  expect(await cached(1, 2, 10, 19)).toEqual([true, true, true, true]);

  const pattern = { scope: 'pattern', namespace: 'product', pattern: '1*' } as const;
  const inv = await settled((await jobs.enqueue('invalidate', pattern)).id);
  expect(inv.failedReason).toBeUndefined();
  // 1 and 10..19: the SCAN + UNLINK slice ran on the cache master as the cache user.
  expect(invalidateResultSchema.parse(inv.result)).toMatchObject({ slices: 1, removed: 11 });
  expect(await cached(1, 2, 10, 19)).toEqual([false, true, false, false]);

  const base = `http://127.0.0.1:${worker.port}`;
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  // Read at scrape time from the queue Redis, as the fleet user (BullMQ's getJobCounts).
  expect(await (await fetch(`${base}/metrics`)).text()).toMatch(
    /^cachefleet_queue_jobs\{queue="warm",state="completed"\} 1$/m,
  );
});

test('preStop hands the queue master over; the node restarts as a replica; the fleet follows', async () => {
  if (jobs === undefined) throw new Error('not started');
  const { queueMaster, queueReplica, sentinel } = shipped();
  const podEnv = {
    REDIS_SENTINEL_PASSWORD: SECRETS.sentinel,
    REDIS_PORT: String(queueMaster.port),
    SENTINEL_HOSTS: '127.0.0.1',
    SENTINEL_PORT: String(sentinel.port),
    MASTER_NAME: 'queue',
    SENTINEL_AUTH_PASSWORD: SECRETS.sentinelAuth,
  };
  await redisPod(['prestop'], podEnv);
  const named = await rawCommand(sentinel.port, ['SENTINEL', 'get-master-addr-by-name', 'queue'], {
    auth: SENTINEL_AUTH,
  });
  expect(named).toEqual(['127.0.0.1', String(queueReplica.port)]);

  // The pod stops and comes back: redis-pod.sh asks the Sentinel and makes it a replica.
  shipped().discoverThroughSentinel();
  await queueMaster.restart();
  await waitUntil('the old master to replicate the new one', async (note) => {
    const repl = parseInfo(await rawCommand(queueMaster.port, ['INFO', 'replication'], { auth: ADMIN }));
    note(`role ${repl.role}, master ${repl.master_port}, link ${repl.master_link_status}`);
    return repl.role === 'slave' &&
      repl.master_port === String(queueReplica.port) &&
      repl.master_link_status === 'up'
      ? true
      : undefined;
  });
  const warm = await settled(
    (await jobs.enqueue('warm', { type: 'keys', namespace: 'product', keys: ['42'] })).id,
  );
  expect(warm.failedReason).toBeUndefined();
  expect(await cached(42)).toEqual([true]);
});
