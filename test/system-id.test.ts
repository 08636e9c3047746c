/**
 * One way to name each Redis, and a system id that keeps a process off another system's Redis
 * (issue 10.1): two private redis-servers stand for two cachefleet systems, and the real CLI, worker
 * and API processes are started against them.
 *
 *  - REDIS_URL alone names both roles; none set is a coded error naming it (no 127.0.0.1:6379);
 *  - a worker without DATABASE_URL is refused naming it (no default database);
 *  - CACHEFLEET_SYSTEM_ID is stored at the first start and compared by every process; unset, the
 *    stored id is adopted and `status` says so; another id is E_JOB_SYSTEM_ID naming both.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connectPg } from '@cachefleet/catalogue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import { type RedisProcess, rawCommand, runCli, startRedis, testDatabaseUrl } from './helpers/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TAG = randomBytes(3).toString('hex');
const SCHEMA = `sid_${TAG}`;
const QUEUE_PREFIX = `sid${TAG}`;
const CACHE_PREFIX = `sid${TAG}:`;
const DATABASE_URL = testDatabaseUrl();

let a: RedisProcess;
let b: RedisProcess;

beforeAll(async () => {
  [a, b] = await Promise.all([startRedis(), startRedis()]);
});

afterAll(async () => {
  await stopAllWorkers();
  await Promise.all([a?.stop(), b?.stop()]);
  const db = connectPg(DATABASE_URL, { max: 1 });
  await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await db.close();
});

/** The prefixes of this test: nothing of another run is read or written. */
const prefixes = { QUEUE_PREFIX, CACHE_KEY_PREFIX: CACHE_PREFIX };

function workerEnv(extra: Record<string, string>): Record<string, string> {
  return {
    ...prefixes,
    CATALOGUE_SCHEMA: SCHEMA,
    WORKER_HTTP_PORT: '0',
    SCHEDULES_ENABLED: 'false',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** A worker process that must refuse to start: resolves with what it printed. */
async function refusedWorker(name: string, env: Record<string, string>): Promise<string> {
  const error = await startWorker({ name, env: workerEnv(env), queues: 'invalidate:1' }).then(
    () => {
      throw new Error(`worker ${name} started`);
    },
    (e: unknown) => e as Error,
  );
  expect(error.message).toMatch(/exited \(1\) before ready/);
  return error.message;
}

const StatusJson = z.object({
  system: z.object({ id: z.string().nullable(), how: z.string(), queueRedis: z.string() }),
  queues: z.record(z.string(), z.unknown()),
});

describe('REDIS_URL names both roles in every process; nothing is assumed when none is set', () => {
  it('the CLI with REDIS_URL alone reaches the queue Redis and says which one, from which variable', async () => {
    const run = await runCli(['status', '--json'], { ...prefixes, REDIS_URL: a.url });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = StatusJson.parse(JSON.parse(run.stdout));
    expect(out.system.queueRedis).toBe(`redis://127.0.0.1:${a.port} (from REDIS_URL)`);
  }, 120_000);

  it('the CLI, a worker and an API pod with no Redis named: a coded error naming REDIS_URL', async () => {
    const cli = await runCli(['jobs', 'list'], prefixes);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/E_JOB_CONFIG: REDIS_URL: required \(or QUEUE_REDIS_URL/);
    const worker = await refusedWorker('no-redis', { DATABASE_URL });
    expect(worker).toMatch(/E_CACHE_CONFIG: REDIS_URL: required \(or CACHE_REDIS_URL/);
    const api = await runApi({ DATABASE_URL });
    expect(api.code).toBe(1);
    expect(api.stdout).toMatch(/E_CACHE_CONFIG: REDIS_URL: required/);
  }, 120_000);

  it('a bad REDIS_URL: a coded error naming it, not the value', async () => {
    const cli = await runCli(['status'], { ...prefixes, REDIS_URL: 'redis://:s3cret@host:99999' });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(
      /^error: E_JOB_CONFIG: REDIS_URL: port out of range|E_JOB_CONFIG: REDIS_URL: /m,
    );
    expect(cli.stderr).not.toContain('s3cret');
  }, 120_000);

  it('a worker without DATABASE_URL is refused naming it: it never falls back to a database of its own', async () => {
    const out = await refusedWorker('no-db', { REDIS_URL: b.url });
    expect(out).toMatch(/E_CATALOGUE_CONFIG: DATABASE_URL: required/);
  }, 120_000);
});

describe('a system id keeps each process off another system’s Redis', () => {
  it('the first process with an id stores it in both Redis roles; the same id starts, another is refused naming both', async () => {
    const w = await startWorker({
      name: 'system-a',
      env: workerEnv({ REDIS_URL: a.url, DATABASE_URL, CACHEFLEET_SYSTEM_ID: 'sys-a' }),
      queues: 'invalidate:1',
    });
    const ready = w.logs.find((l) => l.msg === 'worker ready');
    expect(ready).toMatchObject({
      systemId: 'sys-a',
      redis: {
        cache: `redis://127.0.0.1:${a.port} (from REDIS_URL)`,
        queue: `redis://127.0.0.1:${a.port} (from REDIS_URL)`,
      },
    });
    await w.stop();
    expect(await rawCommand(a.port, ['GET', `${QUEUE_PREFIX}:__system`])).toBe('sys-a');
    expect(await rawCommand(a.port, ['GET', `${CACHE_PREFIX}__system`])).toBe('sys-a');

    const wrong = await refusedWorker('system-b-on-a', {
      REDIS_URL: a.url,
      DATABASE_URL,
      CACHEFLEET_SYSTEM_ID: 'sys-b',
    });
    expect(wrong).toMatch(
      /E_JOB_SYSTEM_ID: the queue Redis redis:\/\/127\.0\.0\.1:\d+ \(from REDIS_URL\) holds the data of cachefleet system sys-a, but this process's CACHEFLEET_SYSTEM_ID is sys-b/,
    );
    const cli = await runCli(['status'], { ...prefixes, REDIS_URL: a.url, CACHEFLEET_SYSTEM_ID: 'sys-b' });
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/E_JOB_SYSTEM_ID: .*system sys-a.*CACHEFLEET_SYSTEM_ID is sys-b/);
    expect(cli.stdout).toBe('');
  }, 120_000);

  it('without an id, the CLI adopts the stored one and status shows it', async () => {
    const run = await runCli(['status'], { ...prefixes, REDIS_URL: a.url });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^system sys-a \(the id the queue Redis holds; CACHEFLEET_SYSTEM_ID unset\)$/m,
    );
    expect(run.stdout).toMatch(/^queue Redis redis:\/\/127\.0\.0\.1:\d+ \(from REDIS_URL\)$/m);
  }, 120_000);

  it('a worker without an id whose two Redis hold different systems is refused', async () => {
    // B becomes system sys-b's queue Redis (the CLI stores a configured id too).
    const cli = await runCli(['status', '--json'], {
      ...prefixes,
      REDIS_URL: b.url,
      CACHEFLEET_SYSTEM_ID: 'sys-b',
    });
    expect(StatusJson.parse(JSON.parse(cli.stdout)).system).toMatchObject({ id: 'sys-b', how: 'configured' });
    const out = await refusedWorker('split', {
      QUEUE_REDIS_URL: b.url,
      CACHE_REDIS_URL: a.url,
      DATABASE_URL,
    });
    expect(out).toMatch(
      /E_JOB_SYSTEM_ID: the cache Redis .* \(from CACHE_REDIS_URL\) holds the data of cachefleet system sys-a, but the queue Redis .* holds sys-b/,
    );
  }, 120_000);

  it('an API pod with another id is refused before it opens its database or its port', async () => {
    const api = await runApi({ REDIS_URL: b.url, DATABASE_URL, CACHEFLEET_SYSTEM_ID: 'sys-a' });
    expect(api.code).toBe(1);
    expect(api.stdout).toMatch(
      /E_JOB_SYSTEM_ID: the queue Redis .* holds the data of cachefleet system sys-b, but this process's CACHEFLEET_SYSTEM_ID is sys-a/,
    );
    expect(api.stdout).not.toMatch(/"msg":"api ready"/);
  }, 120_000);
});

/** `apps/api/src/main.ts` as a process that is expected to exit by itself. */
function runApi(env: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
  const own =
    /^(CACHE_|QUEUE_|WORKER_|CAPTURE_|API_|PGLITE_|REDIS_URL$|DATABASE_URL$|ADMIN_TOKEN$|CACHEFLEET_)/;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !own.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/api/src/main.ts'], {
      cwd: ROOT,
      env: {
        ...clean,
        ...prefixes,
        CATALOGUE_SCHEMA: SCHEMA,
        API_PORT: '0',
        ADMIN_TOKEN: 'a'.repeat(32),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.resume();
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout });
    });
  });
}
