/**
 * Backup and restore with real worker processes (`apps/worker/src/main.ts`,
 * fixtures/fleet-procs.ts) over the `item` definitions of test/lifecycle-defs.ts, one private
 * redis-server per site (cache Redis), the queues on the first:
 *
 *  1. SIGKILL mid-backup: the next worker starts the file over (the half-written one is removed)
 *     and the backup is whole; SIGKILL mid-restore into a fresh Redis: the next worker continues
 *     from the saved position (it does not restore from the start) and every key is back
 *  2. the real CLI: `cachefleet backup`, `cachefleet backups`, `cachefleet restore latest`
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupResultSchema, type JobClient, restoreResultSchema } from '@cachefleet/jobs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, stopAllWorkers, type WorkerProc } from './fixtures/fleet-procs.js';
import { closeJobClients, jobClient, killWhen, lifecycleEnv, settled } from './fixtures/lifecycle-kill.js';
import { type RedisProcess, runCli, startRedis } from './helpers/index.js';
import { convert, v1Value } from './lifecycle-defs.js';

const TAG = randomBytes(3).toString('hex');
const PREFIX = `bkk${TAG}:`;

let source: RedisProcess;
let target: RedisProcess;
let rawSource: Redis;
let rawTarget: Redis;
let dir: string;

beforeAll(async () => {
  [source, target] = await Promise.all([startRedis(), startRedis()]);
  rawSource = new Redis(source.url);
  rawTarget = new Redis(target.url);
  dir = await mkdtemp(join(tmpdir(), 'cf-backup-kill-'));
});

afterEach(async () => {
  await stopAllWorkers();
  await closeJobClients();
});

afterAll(async () => {
  rawSource?.disconnect();
  rawTarget?.disconnect();
  await Promise.all([source?.stop(), target?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function envFor(cacheUrl: string, queuePrefix: string, backupDir: string): Record<string, string> {
  return lifecycleEnv({
    cacheUrl,
    queueUrl: source.url,
    prefix: PREFIX,
    queuePrefix,
    extra: { BACKUP_DIR: backupDir },
  });
}

const key = (id: number | string) => `${PREFIX}item:v2:${id}`;

async function seed(raw: Redis, n: number): Promise<void> {
  for (let from = 1; from <= n; from += 10_000) {
    const pipe = raw.pipeline();
    for (let i = from; i < from + 10_000 && i <= n; i++)
      pipe.set(key(i), JSON.stringify(convert(v1Value(i))), 'PX', 600_000);
    await pipe.exec();
  }
}

const Progress = z.looseObject({ done: z.number(), total: z.number() });

/**
 * SIGKILLs `worker` once the job has reported progress short of its end. The first report comes
 * with the first step (the backup's may say 0 done: a SCAN step can find nothing), the next ones at
 * most once a second: on a fast machine the 120,000-key backup runs through in under a second, so
 * waiting for "a fifth done" saw only 0 and then the end, and waited for ever.
 */
function killWhenUnderWay(jobs: JobClient, id: string, worker: WorkerProc): Promise<true> {
  return killWhen(
    'the job to be under way',
    async () => {
      const view = await jobs.job(id);
      const p = Progress.safeParse(view?.progress);
      return p.success && p.data.done < p.data.total ? true : undefined;
    },
    worker,
  );
}

describe('backup and restore with real worker processes', () => {
  it('SIGKILL mid-backup and mid-restore: resumed, every key back', async () => {
    const n = 120_000;
    await seed(rawSource, n);
    const sub = join(dir, 'kill');
    const queuePrefix = `bkkq${TAG}a`;
    const jobs = jobClient(source.url, queuePrefix);
    const src = envFor(source.url, queuePrefix, sub);
    const w1 = await startWorker({ name: 'b1', env: src, queues: 'backup:1' });
    const b = await jobs.enqueue('backup', {});
    await killWhenUnderWay(jobs, b.id, w1);
    expect((await readdir(sub)).some((f) => f.endsWith('.cfb.part'))).toBe(true);
    await startWorker({ name: 'b2', env: src, queues: 'backup:1' });
    const bv = await settled(jobs, b.id);
    expect(bv.failedReason).toBeUndefined();
    const made = backupResultSchema.parse(bv.result);
    expect(made.keys).toBe(n);
    expect((await readdir(sub)).filter((f) => f.endsWith('.part'))).toEqual([]);
    await stopAllWorkers();

    // Restore into the other Redis (workers of that site), killed on the way.
    const dst = envFor(target.url, queuePrefix, sub);
    const w3 = await startWorker({ name: 'r1', env: dst, queues: 'backup:1' });
    const r = await jobs.enqueue('restore', { file: made.file });
    await killWhenUnderWay(jobs, r.id, w3);
    const doneAtKill = Number(await rawTarget.dbsize());
    expect(doneAtKill).toBeGreaterThan(0);
    expect(doneAtKill).toBeLessThan(n);
    await startWorker({ name: 'r2', env: dst, queues: 'backup:1' });
    const rv = await settled(jobs, r.id);
    expect(rv.failedReason).toBeUndefined();
    const result = restoreResultSchema.parse(rv.result);
    expect(result.read).toBe(n);
    expect(result.restored + result.existing).toBe(n);
    // Continued from the saved position: only the batch in flight at the kill is met again.
    expect(result.existing).toBeLessThan(2_000);
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    const missing: number[] = [];
    for (let at = 0; at < n; at += 10_000) {
      const chunk = ids.slice(at, at + 10_000);
      const values = await rawTarget.mget(chunk.map(key));
      chunk.forEach((i, j) => {
        if (values[j] !== JSON.stringify(convert(v1Value(i)))) missing.push(i);
      });
    }
    expect(missing.slice(0, 10)).toEqual([]);
  }, 300_000);

  it('cachefleet backup, backups and restore latest', async () => {
    const sub = join(dir, 'cli');
    const queuePrefix = `bkkq${TAG}b`;
    await rawTarget.flushdb();
    const env = envFor(target.url, queuePrefix, sub);
    await startWorker({ name: 'c1', env, queues: 'backup:1' });
    await rawTarget.set(key(1), JSON.stringify(convert(v1Value(1))), 'PX', 600_000);
    const cli = (args: string[]) => runCli(args, env);
    const made = await cli(['backup']);
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/completed in .*keys=1 /);
    const list = await cli(['backups', '--json']);
    expect(list.code).toBe(0);
    const rows = z
      .array(
        z.object({
          file: z.string(),
          keys: z.number(),
          namespaces: z.array(z.string()),
          damaged: z.boolean(),
        }),
      )
      .parse(JSON.parse(list.stdout));
    expect(rows).toEqual([expect.objectContaining({ keys: 1, namespaces: ['item@v2/g0'], damaged: false })]);
    const table = await cli(['backups']);
    expect(table.stdout).toMatch(/^FILE +TAKEN +BYTES +KEYS +NAMESPACES/);
    await rawTarget.del(key(1));
    const restored = await cli(['restore', 'latest']);
    expect(restored.code).toBe(0);
    expect(restored.stdout).toMatch(/restored=1/);
    expect(await rawTarget.get(key(1))).toBe(JSON.stringify(convert(v1Value(1))));
    const usage = await cli(['restore']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/E_CLI_USAGE: <file>: missing/);
    const refused = await cli(['restore', 'nosuch.cfb', '--json']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/E_JOB_BACKUP_NOT_FOUND/);
  }, 180_000);
});
