/**
 * A migration survives its worker being killed, with real worker processes
 * (`apps/worker/src/main.ts`, fixtures/fleet-procs.ts) over the `item` definitions of
 * test/lifecycle-defs.ts, one private redis-server as cache and queue Redis:
 *
 *  1. SIGKILL of the worker mid-migration (20,000 entries, throttled to about 10 s): another worker
 *     takes the job over from its saved cursor (not from the start), and the end state is the one
 *     an uninterrupted migration gives: every entry converted at v2 with its remaining TTL, the two
 *     bad ones listed and not written, v1 swept
 *  2. the real `cachefleet migrate` command follows a migration with a progress bar (a total) and
 *     prints the result; `--dry-run --json` writes nothing
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  JobClient,
  type JobView,
  loadQueueConfig,
  migrateResultSchema,
  sweepResultSchema,
} from '@cachefleet/jobs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jobLogs, startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import { type RedisProcess, startRedis, waitUntil } from './helpers/index.js';
import { convert, v1Value } from './lifecycle-defs.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFINITIONS = pathToFileURL(fileURLToPath(new URL('./lifecycle-defs.ts', import.meta.url))).href;
const TAG = randomBytes(3).toString('hex');
const TTL_MS = 600_000;

let redis: RedisProcess;
let raw: Redis;
const clients: JobClient[] = [];
let testNo = 0;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
  raw.on('error', () => {});
});

afterEach(async () => {
  await stopAllWorkers();
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

function scope() {
  const n = ++testNo;
  const prefix = `mk${TAG}t${n}:`;
  const queuePrefix = `mkq${TAG}t${n}`;
  const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: queuePrefix }));
  clients.push(jobs);
  const env = {
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: prefix,
    QUEUE_PREFIX: queuePrefix,
    WORKER_DEFINITIONS: DEFINITIONS,
    WORKER_HTTP_PORT: '0',
    SCHEDULES_ENABLED: 'false',
    LOG_LEVEL: 'info',
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_MS: '1000',
  };
  return {
    prefix,
    jobs,
    env,
    worker: (name: string) => startWorker({ name, env, queues: 'migrate:1,sweep:1' }),
    key: (version: number, id: string | number) => `${prefix}item:v${version}:${id}`,
  };
}

async function seed(key: (v: number, id: string | number) => string, n: number): Promise<void> {
  const pipe = raw.pipeline();
  for (let i = 1; i <= n; i++) pipe.set(key(1, i), JSON.stringify(v1Value(i)), 'PX', TTL_MS - i);
  pipe.set(key(1, 'bad-throw'), JSON.stringify({ id: 'bad-throw', title: 'throw', price: 1 }), 'PX', TTL_MS);
  pipe.set(key(1, 'bad-schema'), JSON.stringify({ id: 'bad-schema', title: '', price: 1 }), 'PX', TTL_MS);
  await pipe.exec();
}

function settled(jobs: JobClient, id: string, timeoutMs = 120_000): Promise<JobView> {
  return waitUntil(
    `job ${id} to end`,
    async (note) => {
      const j = await jobs.job(id);
      note(`state ${j?.state ?? 'absent'}, progress ${JSON.stringify(j?.progress)}`);
      if (j?.state === 'completed' && j.result !== null && j.result !== undefined) return j;
      if (j?.state === 'failed' && j.failedReason !== undefined) return j;
      return undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** Every v2 entry is v1's conversion with a TTL no longer than v1's; the bad ones are absent. */
async function expectMigrated(key: (v: number, id: string | number) => string, n: number): Promise<void> {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const wires = await raw.mget(ids.map((i) => key(2, i)));
  const wrong = ids.filter((i, at) => {
    const wire = wires[at];
    return (
      wire === null ||
      wire === undefined ||
      JSON.stringify(JSON.parse(wire)) !== JSON.stringify(convert(v1Value(i)))
    );
  });
  expect(wrong.slice(0, 10)).toEqual([]);
  const pipe = raw.pipeline();
  for (const i of ids) pipe.pttl(key(2, i));
  const pttls = ((await pipe.exec()) ?? []).map(([, v]) => Number(v));
  const bad = ids.filter((i, at) => !((pttls[at] ?? 0) > 0 && (pttls[at] ?? 0) <= TTL_MS - i));
  expect(bad.slice(0, 10)).toEqual([]);
  expect(await raw.exists(key(2, 'bad-throw'), key(2, 'bad-schema'))).toBe(0);
}

const Saved = z.object({
  state: z.object({ index: z.number(), cursor: z.string(), totals: z.object({ scanned: z.number() }) }),
});

describe('migrate with real worker processes', () => {
  it('SIGKILL mid-migration: another worker continues from the saved cursor, same end state', async () => {
    const s = scope();
    const n = 20_000;
    await seed(s.key, n);
    const w1 = await s.worker('w1');
    const { id } = await s.jobs.enqueue('migrate', { namespace: 'item', to: 2, rate: 2_000, count: 100 });
    const atKill = await waitUntil(
      'the migration to be well under way',
      async () => {
        const job = await s.jobs.queue('migrate').getJob(id);
        const saved = Saved.safeParse(job?.data);
        return saved.success && saved.data.state.totals.scanned >= 5_000 ? saved.data.state : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    w1.signal('SIGKILL');
    await w1.exited;
    expect(atKill.cursor).not.toBe('0');
    const w2 = await s.worker('w2');
    const view = await settled(s.jobs, id);
    expect(view.failedReason).toBeUndefined();
    const r = migrateResultSchema.parse(view.result);
    // The second worker began from the cursor: it did not scan everything again.
    expect(jobLogs(w2, id, 'job completed').length).toBe(1);
    expect(r.scanned).toBeGreaterThanOrEqual(n + 2);
    expect(r.scanned).toBeLessThan(n + 2 + 1_000);
    // A step done again finds its entries already written.
    expect(r.migrated + r.present).toBe(n);
    expect(r.failures.map((f) => f.id).sort()).toEqual(['bad-schema', 'bad-throw']);
    await expectMigrated(s.key, n);
    const sweep = sweepResultSchema.parse((await settled(s.jobs, r.sweepJobId as string)).result);
    expect(sweep.unlinked).toBe(n + 2);
    expect(await raw.exists(s.key(1, 1), s.key(1, n))).toBe(0);
  }, 180_000);

  it('cachefleet migrate follows the job with a progress bar; --dry-run --json writes nothing', async () => {
    const s = scope();
    const n = 3_000;
    await seed(s.key, n);
    await s.worker('w1');
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(process.env))
          if (v !== undefined && !/^(CACHE_|QUEUE_|CACHEFLEET_|WORKER_)/.test(k)) env[k] = v;
        const child = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', ...args], {
          cwd: ROOT,
          env: { ...env, ...s.env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
        });
        child.stderr.setEncoding('utf8').on('data', (d: string) => {
          stderr += d;
        });
        const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
        child.once('error', reject);
        child.once('close', (code) => {
          clearTimeout(guard);
          resolve({ code, stdout, stderr });
        });
      });

    const dry = await cli(['migrate', 'item', '--to', '2', '--dry-run', '--json']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    const end = z
      .object({ state: z.literal('completed'), result: migrateResultSchema })
      .parse(JSON.parse(dry.stdout.trim().split('\n').pop() ?? 'null'));
    expect(end.result).toMatchObject({ dryRun: true, scanned: n + 2, migrated: n, failed: 2 });
    expect(await raw.exists(s.key(2, 1))).toBe(0);

    const run = await cli(['migrate', 'item', '--to', '2', '--rate', '3000']);
    expect(run.code).toBe(0);
    // Not a terminal: one progress line a second at most, with the total.
    expect(run.stderr).toMatch(new RegExp(`following job .*\\n(.*\\n)*.*\\d+/${n + 2}`));
    expect(run.stdout).toMatch(/completed in .*migrated=3000.*failed=2/);
    await expectMigrated(s.key, n);

    const usage = await cli(['migrate', 'item']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/E_CLI_USAGE: --to: required/);
    const unknown = await cli(['migrate', 'nosuch', '--to', '2']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/E_JOB_INVALID_PAYLOAD: <namespace>: no namespace "nosuch"/);
  }, 180_000);
});
