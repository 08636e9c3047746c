/**
 * One worker (`startWorker`, in this process) over a private redis-server and the catalogue in the
 * run's PostgreSQL (a schema of its own, dropped at the end):
 *
 *  1. its HTTP server answers every error as JSON, a request it cannot parse included
 *  2. the queue Redis comes back empty: the running workers put the schedules back, one job a tick
 *
 * Each test pins a bug found from outside (issue 9); its comment says what it proves.
 */
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { connectPg } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig } from '@cachefleet/jobs';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from '@cachefleet/test';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWorkerConfig, type RunningWorker, startWorker } from '../src/index.js';

const DATABASE_URL = testDatabaseUrl();
const SCHEMA = `wt_${randomBytes(4).toString('hex')}`;

let redis: RedisProcess;
let worker: RunningWorker;

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    DATABASE_URL,
    CATALOGUE_SCHEMA: SCHEMA,
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: `${SCHEMA}:`,
    QUEUE_PREFIX: `q${SCHEMA}`,
    SCHEDULES_ENABLED: 'false',
    ...extra,
  };
}

/** Sends `raw` bytes and resolves with everything the server wrote back before closing. */
function rawHttp(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let got = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      got += d;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer in 5 s')));
    socket.end(raw);
  });
}

beforeAll(async () => {
  redis = await startRedis();
  worker = await startWorker(
    loadWorkerConfig({ WORKER_HTTP_PORT: '0', WORKER_SHUTDOWN_MS: '2000' }, []),
    env(),
    pino({ level: 'silent' }),
  );
});

afterAll(async () => {
  await worker?.close();
  const db = connectPg(DATABASE_URL, { max: 1 });
  await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await db.close();
  await redis?.stop();
});

describe('1. the health and metrics server', () => {
  // BUG (issue 9.5): Node's default answer to a request it cannot parse is a bare status line and
  // an empty body (431 for over-long headers), while every other answer of the server is JSON.
  it.each([
    ['over-long headers', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ['a request line that is not HTTP', 'HELLO\r\n\r\n', 400],
    ['a header without a colon', 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n', 400],
  ])('%s → its status with a JSON body', async (_what, raw, status) => {
    const answer = await rawHttp(worker.port, raw);
    const [head = '', body = ''] = answer.split('\r\n\r\n');
    expect(head, answer).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    expect(head.toLowerCase()).toContain('content-type: application/json');
    expect(JSON.parse(body)).toEqual({ error: expect.any(String), message: expect.any(String) });
  });

  it('its routes answer JSON, an unknown one a JSON 404', async () => {
    const health = await fetch(`http://127.0.0.1:${worker.port}/healthz`);
    expect(await health.json()).toEqual({ ok: true });
    const missing = await fetch(`http://127.0.0.1:${worker.port}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe('1b. which schedules a worker installs', () => {
  // BUG (issue 10.2): an invalidate-only worker installed the warm schedules too.
  it('only those of the queues it serves: none for an invalidate-only worker, both for a warm one', async () => {
    const prefix = `o${SCHEMA}`;
    const start = (queues: string) =>
      startWorker(
        loadWorkerConfig({ WORKER_HTTP_PORT: '0', WORKER_SHUTDOWN_MS: '2000', WORKER_QUEUES: queues }, []),
        env({ QUEUE_PREFIX: prefix, SCHEDULES_ENABLED: 'true' }),
        pino({ level: 'silent' }),
      );
    const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: prefix }));
    const schedulers = async () =>
      (await jobs.queue('warm').getJobSchedulers(0, -1)).map((x) => x.key).sort();
    const invalidateOnly = await start('invalidate:2');
    try {
      expect(await schedulers()).toEqual([]);
      const warm = await start('warm:1');
      try {
        expect(await schedulers()).toEqual(['cachefleet-warm-all', 'cachefleet-warm-hot']);
      } finally {
        await warm.close();
      }
    } finally {
      await invalidateOnly.close();
      await jobs.close();
    }
  });
});

describe('2. schedules after the queue Redis lost its data', () => {
  // BUG (issue 9.6): schedules were installed at start only, so when the queue Redis came back
  // empty (restarted without persistence, or failed over to an empty replica) the warm schedules
  // were gone until a worker restarted. Two replicas keep them, as a fleet would.
  it('the running workers reinstall them, without a restart, and each tick still has one job', async () => {
    const prefix = `s${SCHEMA}`;
    const replicas = await Promise.all(
      [1, 2].map(() =>
        startWorker(
          loadWorkerConfig(
            { WORKER_HTTP_PORT: '0', WORKER_SHUTDOWN_MS: '2000', WORKER_QUEUES: 'warm:1' },
            [],
          ),
          env({ QUEUE_PREFIX: prefix, SCHEDULES_ENABLED: 'true', SCHEDULES_CHECK_MS: '1000' }),
          pino({ level: 'silent' }),
        ),
      ),
    );
    const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: prefix }));
    jobs.connection.on('error', () => {});
    try {
      const warm = jobs.queue('warm');
      const schedulers = async () => (await warm.getJobSchedulers(0, -1)).map((x) => x.key).sort();
      const installed = ['cachefleet-warm-all', 'cachefleet-warm-hot'];
      expect(await schedulers()).toEqual(installed);

      await jobs.connection.set(`${prefix}:probe`, '1');
      await redis.kill();
      await redis.restart(); // no persistence: it comes back empty
      expect(await jobs.connection.exists(`${prefix}:probe`)).toBe(0);
      await waitUntil(
        'the schedulers to be back',
        async (note) => {
          const now = await schedulers();
          note(now.join(', ') || 'none');
          return now.length === installed.length ? now : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 200 },
      );
      expect(await schedulers()).toEqual(installed);
      // One next job per scheduler, however many replicas put them back.
      const next = (await warm.getDelayed()).map((j) => j.repeatJobKey).sort();
      expect(next).toEqual(installed);
      for (const r of replicas) expect(r.runtime.ready).toBe(true);
    } finally {
      await jobs.close();
      await Promise.all(replicas.map((r) => r.close()));
    }
  }, 60_000);
});

describe('3. the capture role', () => {
  it('refuses to start without DATABASE_URL, before the definitions connect anywhere', async () => {
    const { DATABASE_URL: _, ...rest } = env();
    const config = loadWorkerConfig({ WORKER_HTTP_PORT: '0', WORKER_QUEUES: 'capture' }, []);
    await expect(startWorker(config, rest, pino({ level: 'silent' }))).rejects.toMatchObject({
      code: 'E_WORKER_CONFIG',
      message: 'DATABASE_URL: required by the capture role',
    });
  });

  it('a capture-only worker is ready without BullMQ workers and reports its lag metric', async () => {
    const capture = `wc_${randomBytes(4).toString('hex')}`;
    const w = await startWorker(
      loadWorkerConfig({ WORKER_HTTP_PORT: '0', WORKER_QUEUES: 'capture', WORKER_SHUTDOWN_MS: '2000' }, []),
      env({ CAPTURE_SCHEMA: capture, CAPTURE_INSTALL: 'true', CACHE_KEY_PREFIX: `${capture}:` }),
      pino({ level: 'silent' }),
    );
    try {
      await waitUntil('the reader to be active', async () => (w.capture?.active ? true : undefined));
      const ready = await fetch(`http://127.0.0.1:${w.port}/readyz`);
      expect(ready.status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text();
      expect(metrics).toMatch(/^cachefleet_capture_lag_seconds \d/m);
      expect(metrics).toMatch(/^cachefleet_capture_active 1$/m);
    } finally {
      await w.close();
      const db = connectPg(DATABASE_URL);
      await db.query(`DROP SCHEMA IF EXISTS "${capture}" CASCADE`);
      await db.close();
    }
  }, 60_000);
});
