/**
 * `npm run test:soak` (not part of `npm test`): the fleet under steady HTTP load for a long time,
 * with a fault every few minutes (issue 9.10). Figures: docs/reliability.md, "Soak".
 *
 *   npm run test:soak -- --minutes 30 --fault-every 150
 *
 * Real processes, as a user runs them: two API pods and two workers (`apps/api`, `apps/worker`
 * started with `node --import tsx`, configured through their environment variables), a cache
 * Redis (no persistence, as shipped) and a queue Redis (AOF, `appendfsync always` here so that an
 * acknowledged job survives a SIGKILL), and the run's private PostgreSQL.
 *
 * Load, through HTTP to the pods that are up (as a Service routes to ready pods): readers GET hot
 * products, a writer PATCHes their stock (strictly increasing), a producer asks for invalidations
 * and now and then a hot warm.
 *
 * Faults, in turn, every --fault-every seconds: SIGKILL the cache Redis (back empty after 5 s);
 * SIGKILL worker B (started again after 5 s); restart API pod B (SIGTERM, start again); SIGKILL
 * the queue Redis (back with its AOF after 5 s). Pod A and worker A live through the whole run:
 * their memory is the one compared.
 *
 * Pass (exit 0): 0 reads answered other than 200 by a pod that was up, 0 stale reads later than
 * BOUND_MS after the write's 200, 0 jobs acknowledged (202) and never completed, and the resident
 * memory of pod A and worker A at the end within 10 % of the start (median of the samples of the
 * first and of the last tenth of the run, after a warm-up), and 0 enqueues refused: with
 * API_ENQUEUE_WAIT_MS (35 s) an enqueue made while the queue Redis is down waits for it (5 s here).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { connectPg, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig } from '@cachefleet/jobs';
import { z } from 'zod';
import { startApiProc, startWorker, type WorkerProc } from '../fixtures/fleet-procs.js';
import { type RedisProcess, startRedis } from '../helpers/index.js';
import { prepare } from '../setup/prepare.js';
import { AckLog } from './acks.js';

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    'fault-every': { type: 'string', default: '150' },
    readers: { type: 'string', default: '4' },
  },
  strict: true,
});
const MINUTES = z.coerce
  .number()
  .positive()
  .max(24 * 60)
  .parse(flags.minutes);
const FAULT_EVERY_S = z.coerce.number().int().min(20).parse(flags['fault-every']);
const READERS = z.coerce.number().int().min(1).max(64).parse(flags.readers);
/** A read this long after an acknowledged write must not return an older value (README: ~5 s). */
const BOUND_MS = 5000;
const DOWN_MS = 5000;
const HOT = 50;
const PRODUCTS = 500;
const TAG = randomBytes(4).toString('hex');
const TOKEN = `soak-token-${TAG}-0123456789abcdef`;
const WARMUP_MS = Math.min(60_000, (MINUTES * 60_000) / 10);

const say = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resident memory of a process, bytes (Linux: /proc/<pid>/status VmRSS). */
function rss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

type Fault = 'cache-redis-kill' | 'worker-kill' | 'pod-restart' | 'queue-redis-kill';
const FAULTS: readonly Fault[] = ['cache-redis-kill', 'worker-kill', 'pod-restart', 'queue-redis-kill'];

async function main(): Promise<void> {
  const prepared = await prepare({ chromium: false, postgres: true, say: (l) => say(`set-up: ${l}`) });
  const databaseUrl = z.string().parse(process.env.TEST_DATABASE_URL);
  const schema = `soak_${TAG}`;
  const db = connectPg(databaseUrl);
  await migrate(db, { schema });
  await seed(db, { schema, count: PRODUCTS });
  const cacheRedis: RedisProcess = await startRedis();
  const queueRedis: RedisProcess = await startRedis({
    args: ['--appendonly', 'yes', '--appendfsync', 'always'],
  });
  const env: Record<string, string> = {
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_TOKEN: TOKEN,
    API_REQUEST_LOGS: 'off',
    DATABASE_URL: databaseUrl,
    CATALOGUE_SCHEMA: schema,
    CACHE_REDIS_URL: cacheRedis.url,
    CACHE_KEY_PREFIX: `soak${TAG}:`,
    QUEUE_REDIS_URL: queueRedis.url,
    QUEUE_PREFIX: `soakq${TAG}`,
    WORKER_HTTP_PORT: '0',
    WORKER_SHUTDOWN_MS: '5000',
  };
  const startPod = (name: string) => startApiProc({ name, env, readyTimeoutMs: 60_000 });
  const startW = (name: string) =>
    startWorker({ name, env, queues: 'warm:1,invalidate:2,sweep:1,tune:1', readyTimeoutMs: 60_000 });
  const podA = await startPod('pod-a');
  let podB: WorkerProc | undefined = await startPod('pod-b');
  const workerA = await startW('worker-a');
  let workerB: WorkerProc | undefined = await startW('worker-b');
  const jobs = new JobClient(
    loadQueueConfig({ QUEUE_REDIS_URL: queueRedis.url, QUEUE_PREFIX: env.QUEUE_PREFIX }),
  );
  jobs.connection.on('error', () => {});

  const stats = {
    reads: 0,
    readErrors: 0,
    readErrorSamples: [] as string[],
    writes: 0,
    writeErrors: 0,
    staleAfterAnswer: 0,
    staleAfterBound: 0,
    maxStaleMs: 0,
    enqueued: 0,
    enqueueRefused: 0,
    faults: [] as { at: number; fault: Fault; backMs: number }[],
  };
  const acks = new AckLog(50);
  const unconfirmed = new Set<string>();
  const failed: string[] = [];
  const memory = new Map<string, { at: number; bytes: number }[]>();
  const up = (): string[] => [podA, podB].flatMap((p) => (p?.running ? [`http://127.0.0.1:${p.port}`] : []));
  const ids = Array.from({ length: HOT }, (_, i) => String(i + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
  const t0 = performance.now();
  const endAt = t0 + MINUTES * 60_000;
  let stop = false;

  const reader = async () => {
    while (!stop) {
      const base = pick(up());
      const id = pick(ids);
      const started = performance.now();
      try {
        const res = await fetch(`${base}/products/${id}`, { signal: AbortSignal.timeout(10_000) });
        const body = await res.text();
        stats.reads++;
        if (res.status !== 200) {
          // A pod taken out of the rotation while this request was in flight is not counted.
          if (up().includes(base)) {
            stats.readErrors++;
            if (stats.readErrorSamples.length < 10)
              stats.readErrorSamples.push(`${res.status} ${body.slice(0, 200)}`);
          }
          continue;
        }
        const stock = z.object({ stock: z.number() }).parse(JSON.parse(body)).stock;
        const newest = acks.before(id, started);
        if (newest !== undefined && stock < newest.stock) {
          const late = started - newest.at;
          stats.staleAfterAnswer++;
          if (late > BOUND_MS) stats.staleAfterBound++;
          stats.maxStaleMs = Math.max(stats.maxStaleMs, late);
        }
      } catch (error) {
        if (up().includes(base)) {
          stats.readErrors++;
          if (stats.readErrorSamples.length < 10) stats.readErrorSamples.push(String(error));
        }
      }
    }
  };

  let stockSeq = 1_000_000;
  const writer = async () => {
    while (!stop) {
      const id = pick(ids);
      const stock = ++stockSeq;
      try {
        const res = await fetch(`${pick(up())}/products/${id}`, {
          method: 'PATCH',
          headers: admin,
          body: JSON.stringify({ stock }),
          signal: AbortSignal.timeout(10_000),
        });
        await res.text();
        stats.writes++;
        if (res.status === 200) {
          acks.add(id, { at: performance.now(), stock });
        } else stats.writeErrors++;
      } catch {
        stats.writeErrors++;
      }
      await sleep(100);
    }
  };

  let tick = 0;
  const producer = async () => {
    while (!stop) {
      tick++;
      const body =
        tick % 50 === 0
          ? { path: '/cache/prewarm', json: { type: 'hot' } }
          : { path: '/cache/invalidate', json: { namespace: 'product', keys: [pick(ids), pick(ids)] } };
      try {
        const res = await fetch(`${pick(up())}${body.path}`, {
          method: 'POST',
          headers: admin,
          body: JSON.stringify(body.json),
          // Past the pods' API_ENQUEUE_WAIT_MS (35 s): they answer first, 202 or 503.
          signal: AbortSignal.timeout(40_000),
        });
        const text = await res.text();
        if (res.status === 202) {
          unconfirmed.add(z.object({ jobId: z.string() }).parse(JSON.parse(text)).jobId);
          stats.enqueued++;
        } else stats.enqueueRefused++;
      } catch {
        stats.enqueueRefused++;
      }
      await sleep(200);
    }
  };

  const confirm = async () => {
    for (const id of [...unconfirmed]) {
      const view = await jobs.job(id).catch(() => undefined);
      if (view?.state === 'completed') unconfirmed.delete(id);
      else if (view?.state === 'failed') {
        unconfirmed.delete(id);
        failed.push(id);
      }
    }
  };
  const confirmer = async () => {
    while (!stop) {
      await confirm();
      await sleep(1000);
    }
  };
  const sampler = async () => {
    while (!stop) {
      const at = performance.now() - t0;
      for (const p of [podA, workerA]) {
        const bytes = rss(p.pid);
        if (bytes !== undefined) memory.set(p.name, [...(memory.get(p.name) ?? []), { at, bytes }]);
      }
      await sleep(5000);
    }
  };

  const load = [sampler(), confirmer(), ...Array.from({ length: READERS }, reader), writer(), producer()];
  say(`soak: ${MINUTES} min, a fault every ${FAULT_EVERY_S} s, ${READERS} readers; pods ${up().join(' ')}`);
  let n = 0;
  while (performance.now() + FAULT_EVERY_S * 1000 < endAt) {
    await sleep(FAULT_EVERY_S * 1000);
    const fault = FAULTS[n++ % FAULTS.length] as Fault;
    const at = performance.now();
    switch (fault) {
      case 'cache-redis-kill':
        await cacheRedis.kill();
        await sleep(DOWN_MS);
        await cacheRedis.restart();
        break;
      case 'queue-redis-kill':
        await queueRedis.kill();
        await sleep(DOWN_MS);
        await queueRedis.restart();
        break;
      case 'worker-kill':
        workerB?.signal('SIGKILL');
        await workerB?.exited;
        await sleep(DOWN_MS);
        workerB = await startW('worker-b');
        break;
      case 'pod-restart': {
        const old = podB;
        podB = undefined;
        await old?.stop(10_000);
        podB = await startPod('pod-b');
        break;
      }
    }
    const backMs = Math.round(performance.now() - at);
    stats.faults.push({ at: Math.round((at - t0) / 1000), fault, backMs });
    say(
      `fault ${n} ${fault} (back in ${backMs} ms): reads ${stats.reads} (errors ${stats.readErrors}), writes ${stats.writes} ` +
        `(errors ${stats.writeErrors}), stale > ${BOUND_MS} ms ${stats.staleAfterBound}, jobs ${stats.enqueued} ` +
        `(refused ${stats.enqueueRefused}, unconfirmed ${unconfirmed.size})`,
    );
  }
  await sleep(Math.max(0, endAt - performance.now()));
  stop = true;
  await Promise.all(load);

  const deadline = performance.now() + 120_000;
  while (unconfirmed.size > 0 && performance.now() < deadline) {
    await confirm();
    if (unconfirmed.size > 0) await sleep(1000);
  }
  const span = endAt - t0;
  const memorySummary = Object.fromEntries(
    [...memory].map(([name, samples]) => {
      const first = samples
        .filter((s) => s.at >= WARMUP_MS && s.at < WARMUP_MS + span / 10)
        .map((s) => s.bytes);
      const last = samples.filter((s) => s.at >= span - span / 10).map((s) => s.bytes);
      const start = median(first);
      const end = median(last);
      return [
        name,
        {
          startMiB: +(start / 2 ** 20).toFixed(1),
          endMiB: +(end / 2 ** 20).toFixed(1),
          growth: +(end / start - 1).toFixed(3),
        },
      ];
    }),
  );
  const summary = {
    minutes: MINUTES,
    faultEverySeconds: FAULT_EVERY_S,
    readers: READERS,
    boundMs: BOUND_MS,
    reads: stats.reads,
    readErrors: stats.readErrors,
    readErrorSamples: stats.readErrorSamples,
    writes: stats.writes,
    writeErrors: stats.writeErrors,
    staleAfterAnswer: stats.staleAfterAnswer,
    staleAfterBound: stats.staleAfterBound,
    maxStaleMs: Math.round(stats.maxStaleMs),
    jobsAcknowledged: stats.enqueued,
    enqueueRefused: stats.enqueueRefused,
    jobsFailed: failed.length,
    jobsLost: unconfirmed.size,
    memory: memorySummary,
    faults: stats.faults,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);

  await jobs.close();
  await Promise.all([podA, podB, workerA, workerB].map((p) => p?.stop(10_000)));
  await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await db.close();
  await Promise.all([cacheRedis.stop(), queueRedis.stop()]);
  prepared.stop();
  const memoryOk = Object.values(memorySummary).every((m) => m.growth <= 0.1);
  const ok =
    summary.readErrors === 0 &&
    summary.staleAfterBound === 0 &&
    summary.jobsLost === 0 &&
    summary.jobsFailed === 0 &&
    summary.enqueueRefused === 0 &&
    memoryOk;
  say(ok ? 'soak: passed' : 'soak: FAILED (see the summary)');
  process.exit(ok ? 0 : 1);
}

main().catch((error: unknown) => {
  say(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(2);
});
