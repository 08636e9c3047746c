/**
 * A migration and a sweep survive their worker being killed, with real worker processes
 * (`apps/worker/src/main.ts`, fixtures/fleet-procs.ts) over the `item` definitions of
 * test/lifecycle-defs.ts, one private redis-server as cache and queue Redis:
 *
 *  1. SIGKILL of the worker mid-migration (20,000 entries, throttled to about 10 s): another worker
 *     takes the job over from its saved cursor (not from the start), and the end state is the one
 *     an uninterrupted migration gives: every entry converted at v2 with its remaining TTL, the two
 *     bad ones listed and not written, v1 swept
 *  2. the real `cachefleet migrate` command follows a migration with a progress bar (a total) and
 *     prints the result; `--dry-run --json` writes nothing
 *  3. SIGKILL of the worker mid-sweep (about 50,000 keys, 10 a step): another worker continues from
 *     the saved cursor, and the end state is an uninterrupted sweep's: every unreachable key (older
 *     version, older generation) gone, every reachable one (current generation, newer version)
 *     kept with its value, nothing of another namespace or another prefix touched
 */
import { randomBytes } from 'node:crypto';
import { migrateResultSchema, sweepResultSchema } from '@cachefleet/jobs';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import {
  closeJobClients,
  jobClient,
  killWhen,
  lifecycleEnv,
  loggedCount,
  settled,
} from './fixtures/lifecycle-kill.js';
import { isTelemetryKey, type RedisProcess, runCli, startRedis } from './helpers/index.js';
import { convert, v1Value } from './lifecycle-defs.js';

const TAG = randomBytes(3).toString('hex');
const TTL_MS = 600_000;

let redis: RedisProcess;
let raw: Redis;
let testNo = 0;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
  raw.on('error', () => {});
});

afterEach(async () => {
  await stopAllWorkers();
  await closeJobClients();
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

function scope() {
  const n = ++testNo;
  const prefix = `mk${TAG}t${n}:`;
  const queuePrefix = `mkq${TAG}t${n}`;
  const jobs = jobClient(redis.url, queuePrefix);
  const env = lifecycleEnv({ cacheUrl: redis.url, queueUrl: redis.url, prefix, queuePrefix });
  return {
    prefix,
    jobs,
    env,
    worker: (name: string) => startWorker({ name, env, queues: 'migrate:1,sweep:1' }),
    key: (version: number, id: string | number, generation = 0) =>
      `${prefix}item:v${version}:${generation === 0 ? '' : `g${generation}:`}${id}`,
  };
}

async function seed(key: (v: number, id: string | number) => string, n: number): Promise<void> {
  const pipe = raw.pipeline();
  for (let i = 1; i <= n; i++) pipe.set(key(1, i), JSON.stringify(v1Value(i)), 'PX', TTL_MS - i);
  pipe.set(key(1, 'bad-throw'), JSON.stringify({ id: 'bad-throw', title: 'throw', price: 1 }), 'PX', TTL_MS);
  pipe.set(key(1, 'bad-schema'), JSON.stringify({ id: 'bad-schema', title: '', price: 1 }), 'PX', TTL_MS);
  await pipe.exec();
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
    const atKill = await killWhen(
      'the migration to be well under way',
      async () => {
        const job = await s.jobs.queue('migrate').getJob(id);
        const saved = Saved.safeParse(job?.data);
        return saved.success && saved.data.state.totals.scanned >= 5_000 ? saved.data.state : undefined;
      },
      w1,
    );
    expect(atKill.cursor).not.toBe('0');
    const w2 = await s.worker('w2');
    const view = await settled(s.jobs, id);
    expect(view.failedReason).toBeUndefined();
    const r = migrateResultSchema.parse(view.result);
    // The second worker began from the cursor: it did not scan everything again.
    expect(await loggedCount(w2, id, 'job completed')).toBe(1);
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
    const cli = (args: string[]) => runCli(args, s.env);

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

const SweepSaved = z.object({
  state: z.object({ cursor: z.string(), scanned: z.number(), unlinked: z.number() }),
});

/** Every key of the database whose name starts with `start` (SCAN), sorted. */
async function keysFrom(start: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${start}*`, 'COUNT', 5_000);
    // The data under the prefix: the workers' telemetry snapshots are no part of a sweep.
    for (const k of keys) if (!isTelemetryKey(k)) found.add(k);
    cursor = next;
  } while (cursor !== '0');
  return [...found].sort();
}

describe('sweep with real worker processes', () => {
  it('SIGKILL mid-sweep: another worker continues from the saved cursor, same end state', async () => {
    const s = scope();
    // Another fleet on the same Redis: a prefix that starts like this one, its own `item` keys.
    const foreign = `${s.prefix.slice(0, -1)}x:`;
    const n = { v1: 15_000, v2g0: 15_000, v2g1: 10_000, v3: 200, other: 5_000, foreign: 5_000 };
    const unreachable: string[] = [];
    const batch = async (keys: string[]) => {
      for (let at = 0; at < keys.length; at += 10_000) {
        const pipe = raw.pipeline();
        for (const k of keys.slice(at, at + 10_000)) pipe.set(k, `value of ${k}`, 'PX', TTL_MS);
        await pipe.exec();
      }
    };
    const range = (count: number, key: (i: number) => string) =>
      Array.from({ length: count }, (_, i) => key(i + 1));
    // Unreachable by a v2 pod at generation 1: the older version, the older generation.
    unreachable.push(...range(n.v1, (i) => s.key(1, i)), ...range(n.v2g0, (i) => s.key(2, i)));
    await batch(unreachable);
    // Reachable (the current generation, a newer version), another namespace (a name that starts
    // like `item`), and the other fleet's keys.
    await batch([
      ...range(n.v2g1, (i) => s.key(2, i, 1)),
      ...range(n.v3, (i) => s.key(3, i)),
      ...range(n.other, (i) => `${s.prefix}items:v1:${i}`),
      ...range(n.foreign, (i) => `${foreign}item:v1:${i}`),
    ]);
    // The namespace's generation, as a namespace invalidation leaves it (libs/redis/src/keys.ts).
    await raw.hset(`${s.prefix}__gen`, 'item', '1');
    const before = [...(await keysFrom(s.prefix)), ...(await keysFrom(foreign))];
    const gone = new Set(unreachable);
    const expected = before.filter((k) => !gone.has(k));
    const matching = n.v1 + n.v2g0 + n.v2g1 + n.v3;

    // count 10 over ~50,000 keys: thousands of steps, so the kill lands mid-way.
    const w1 = await s.worker('w1');
    const { id } = await s.jobs.enqueue('sweep', { namespace: 'item', count: 10 });
    const atKill = await killWhen(
      'the sweep to be well under way',
      async () => {
        const job = await s.jobs.queue('sweep').getJob(id);
        const saved = SweepSaved.safeParse(job?.data);
        return saved.success && saved.data.state.scanned >= matching / 4 ? saved.data.state : undefined;
      },
      w1,
    );
    expect(atKill.cursor).not.toBe('0');
    // Killed mid-way: some unreachable keys unlinked, some still there.
    const left = await raw.exists(...unreachable);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(unreachable.length);
    const w2 = await s.worker('w2');
    const view = await settled(s.jobs, id);
    expect(view.failedReason).toBeUndefined();
    const r = sweepResultSchema.parse(view.result);
    expect(await loggedCount(w2, id, 'job completed')).toBe(1);
    // Counts carried over from the saved state: the second worker did not start again (from the
    // start it would count only the keys still there, at most `matching - atKill.unlinked`).
    // The step in flight at the kill is met again without the keys it had unlinked.
    expect(r.scanned).toBeGreaterThan(matching - 100);
    expect(r.scanned).toBeLessThan(matching + 1_000);
    expect(r.unlinked).toBeGreaterThan(unreachable.length - 100);
    expect(r.unlinked).toBeLessThanOrEqual(unreachable.length);
    console.info(
      `sweep kill: killed at scanned ${atKill.scanned}/${matching}, unlinked ${atKill.unlinked}/${unreachable.length} ` +
        `(${left} left); result scanned ${r.scanned}, unlinked ${r.unlinked}`,
    );

    // The end state of an uninterrupted sweep: exactly the unreachable keys gone, every other key
    // (of this prefix and of the other fleet) there with its value.
    const after = [...(await keysFrom(s.prefix)), ...(await keysFrom(foreign))];
    expect(after.length).toBe(expected.length);
    expect(after.filter((k) => gone.has(k)).slice(0, 10)).toEqual([]);
    const kept = new Set(after);
    expect(expected.filter((k) => !kept.has(k)).slice(0, 10)).toEqual([]);
    const values = expected.filter((k) => !k.endsWith('__gen'));
    for (let at = 0; at < values.length; at += 10_000) {
      const chunk = values.slice(at, at + 10_000);
      const got = await raw.mget(chunk);
      expect(chunk.filter((k, j) => got[j] !== `value of ${k}`).slice(0, 10)).toEqual([]);
    }
  }, 240_000);
});
