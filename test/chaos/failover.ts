/**
 * `npm run test:chaos` (not part of `npm test`): Sentinel failovers under load, counted (issue 17).
 *
 *   npm run test:chaos -- --runs 20 --settle-ms 8000
 *
 * One private Sentinel set (3 sentinels, a master and 2 replicas, down-after 1000 ms) serves both
 * Redis roles; two API pods and one worker (in this process: `startApi`, `startWorker`, configured
 * through the environment variables a user sets) run against it and the run's private PostgreSQL.
 * Load, all through HTTP: readers GET hot products on either pod; a writer PATCHes their stock
 * (strictly increasing per product) on either pod; a producer enqueues invalidate jobs. Each run
 * SIGKILLs or SIGSTOPs (alternately) the current master, waits for the new one, brings the old node
 * back as a replica and keeps the load on for --settle-ms.
 *
 * Counted:
 * - stale reads: a read that began more than BOUND_MS after a PATCH answered 200 and returned an
 *   older stock (by how late: > 0 ms, > 1 s, > BOUND_MS);
 * - lost jobs: enqueues answered 202 whose job is not `completed` at the end;
 * - enqueues: per run, failed ones (503 or no answer: user-visible errors) and the slowest 202 (an
 *   enqueue rides out the failover for up to API_ENQUEUE_WAIT_MS, 35 s by default);
 * - queue recovery: per run, from the fault to the last failed enqueue (503) on either pod;
 * - failover: from the fault to the sentinels naming a new master that accepts writes.
 * Prints one line per run and a JSON summary at the end (docs/reliability.md quotes it).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type RunningApi, startApi } from '@cachefleet/api';
import { connectPg, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, loadQueueConfig } from '@cachefleet/jobs';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { pino } from 'pino';
import { z } from 'zod';
import { startSentinelSet } from '../helpers/index.js';
import { prepare } from '../setup/prepare.js';
import { AckLog } from './acks.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    'settle-ms': { type: 'string', default: '8000' },
    readers: { type: 'string', default: '6' },
  },
  strict: true,
});
const RUNS = z.coerce.number().int().min(1).parse(flags.runs);
const SETTLE_MS = z.coerce.number().int().min(1000).parse(flags['settle-ms']);
const READERS = z.coerce.number().int().min(1).parse(flags.readers);
const DOWN_AFTER_MS = 1000;
/** A read this long after an acknowledged write must not return an older value (disconnectedTtlMs). */
const BOUND_MS = 5000;
const HOT = 20;
const TAG = randomBytes(4).toString('hex');
const TOKEN = `chaos-token-${TAG}-0123456789abcdef`;

const say = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface RunStats {
  kind: 'SIGKILL' | 'SIGSTOP';
  failoverMs: number;
  queueRecoveryMs: number;
  reads: number;
  readErrors: number;
  /** Why reads failed: `<status> <error code>` or the exception's name, with counts. */
  readErrorKinds: Map<string, number>;
  writes: number;
  writeErrors: number;
  staleAfterAnswer: number;
  staleAfter1s: number;
  staleAfterBound: number;
  maxStaleMs: number;
  enqueued: number;
  enqueueErrors: number;
  /** The slowest enqueue answered 202 in the run (it waited out the failover), ms. */
  enqueueMaxMs: number;
  /** Masters the sentinels named during the run, in order (a second change is a second failover). */
  masters: string[];
}

async function main(): Promise<void> {
  const prepared = await prepare({ chromium: false, postgres: true, say: (l) => say(`set-up: ${l}`) });
  const set = await startSentinelSet({ replicas: 2, downAfterMs: DOWN_AFTER_MS, failoverTimeoutMs: 3000 });
  const databaseUrl = z.string().parse(process.env.TEST_DATABASE_URL);
  const schema = `chaos_${TAG}`;
  const db = connectPg(databaseUrl);
  await migrate(db, { schema });
  await seed(db, { schema, count: 200 });
  const sentinels = set.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
  const env: NodeJS.ProcessEnv = {
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_TOKEN: TOKEN,
    API_CRITICAL_WARM: 'false',
    API_REQUEST_LOGS: 'off',
    DATABASE_URL: databaseUrl,
    CATALOGUE_SCHEMA: schema,
    CACHE_REDIS_MODE: 'sentinel',
    CACHE_REDIS_SENTINELS: sentinels,
    CACHE_REDIS_SENTINEL_NAME: set.name,
    CACHE_KEY_PREFIX: `chaos${TAG}:`,
    QUEUE_REDIS_MODE: 'sentinel',
    QUEUE_REDIS_SENTINELS: sentinels,
    QUEUE_REDIS_SENTINEL_NAME: set.name,
    QUEUE_PREFIX: `chaosq${TAG}`,
    SCHEDULES_ENABLED: 'false',
    WORKER_QUEUES: 'invalidate:2,warm:1',
    WORKER_HTTP_PORT: '0',
    WORKER_SHUTDOWN_MS: '2000',
  };
  const logger = pino({ level: process.env.CHAOS_LOG_LEVEL ?? 'silent' }, pino.destination(2));
  const apis: RunningApi[] = [await startApi(env, logger), await startApi(env, logger)];
  const worker: RunningWorker = await startWorker(loadWorkerConfig(env, []), env, logger);
  const jobs = new JobClient(loadQueueConfig(env));
  jobs.connection.on('error', () => {});

  const acks = new AckLog();
  const jobIds: string[] = [];
  /**
   * Acknowledged jobs not yet seen completed. Checked while the load runs: completed jobs are
   * pruned after 1,000 per queue (removeOnComplete), so a check at the end only would count the
   * oldest as lost.
   */
  const unconfirmed = new Set<string>();
  const failed: string[] = [];
  const lostStates = new Map<string, string>();
  /** Looks every unconfirmed job up once; a completed one is confirmed, a failed one counted. */
  const confirm = async () => {
    for (const id of [...unconfirmed]) {
      const view = await jobs.job(id).catch(() => undefined);
      if (view?.state === 'completed') unconfirmed.delete(id);
      else if (view?.state === 'failed') {
        unconfirmed.delete(id);
        failed.push(id);
      } else lostStates.set(id, view?.state ?? 'missing');
    }
  };
  /** For each acknowledged job: the run it was enqueued in (0: before the first fault), and when. */
  const jobOrigin = new Map<string, { run: number; at: number }>();
  let runNo = 0;
  const runs: RunStats[] = [];
  let current: RunStats | undefined;
  let stop = false;
  const ids = Array.from({ length: HOT }, (_, i) => String(i + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)] as T;
  const request = async (path: string, init: RequestInit = {}, timeoutMs = 10_000) => {
    const api = pick(apis);
    const res = await fetch(`${api.url}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  };
  const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  const failedRead = (s: RunStats, kind: string) => {
    s.readErrors++;
    s.readErrorKinds.set(kind, (s.readErrorKinds.get(kind) ?? 0) + 1);
  };
  const reader = async () => {
    while (!stop) {
      const id = pick(ids);
      const started = performance.now();
      try {
        const r = await request(`/products/${id}`);
        const s = current;
        if (s) s.reads++;
        if (r.status !== 200) {
          if (s)
            failedRead(s, `${r.status} ${/"error":"([^"]{1,60})"/.exec(r.body)?.[1] ?? r.body.slice(0, 60)}`);
          continue;
        }
        const stock = z.object({ stock: z.number() }).parse(JSON.parse(r.body)).stock;
        const newest = acks.before(id, started);
        if (s && newest !== undefined && stock < newest.stock) {
          const late = started - newest.at;
          s.staleAfterAnswer++;
          if (late > 1000) s.staleAfter1s++;
          if (late > BOUND_MS) s.staleAfterBound++;
          s.maxStaleMs = Math.max(s.maxStaleMs, late);
        }
      } catch (error) {
        if (current)
          failedRead(
            current,
            error instanceof Error ? `${error.name}: ${error.message.slice(0, 60)}` : 'thrown',
          );
      }
    }
  };

  let stockSeq = 1_000_000;
  const writer = async () => {
    while (!stop) {
      const id = pick(ids);
      const stock = ++stockSeq;
      try {
        const r = await request(`/products/${id}`, {
          method: 'PATCH',
          headers: admin,
          body: JSON.stringify({ stock }),
        });
        if (current) current.writes++;
        if (r.status === 200) {
          acks.add(id, { at: performance.now(), stock });
        } else if (current) current.writeErrors++;
      } catch {
        if (current) current.writeErrors++;
      }
      await sleep(50);
    }
  };

  let lastEnqueueFailure = 0;
  let runStart = performance.now();
  const producer = async () => {
    while (!stop) {
      try {
        const began = performance.now();
        // Past the pods' API_ENQUEUE_WAIT_MS (35 s): they answer first, 202 or 503.
        const r = await request(
          '/cache/invalidate',
          {
            method: 'POST',
            headers: admin,
            body: JSON.stringify({ namespace: 'product', keys: [pick(ids)] }),
          },
          40_000,
        );
        if (r.status === 202) {
          if (current) current.enqueueMaxMs = Math.max(current.enqueueMaxMs, performance.now() - began);
          const jobId = z.object({ jobId: z.string() }).parse(JSON.parse(r.body)).jobId;
          jobIds.push(jobId);
          unconfirmed.add(jobId);
          jobOrigin.set(jobId, { run: runNo, at: Math.round(performance.now() - runStart) });
          if (current) current.enqueued++;
        } else {
          lastEnqueueFailure = performance.now();
          if (current) current.enqueueErrors++;
        }
      } catch {
        lastEnqueueFailure = performance.now();
        if (current) current.enqueueErrors++;
      }
      await sleep(100);
    }
  };

  /** Polls the master the sentinels name, for the run's list of masters. */
  const masterWatch = async () => {
    while (!stop) {
      const m = await set.currentMaster().catch(() => undefined);
      const s = current;
      if (m && s && s.masters[s.masters.length - 1] !== String(m.port)) s.masters.push(String(m.port));
      await sleep(250);
    }
  };
  const confirmer = async () => {
    while (!stop) {
      await confirm();
      await sleep(500);
    }
  };
  const load = [masterWatch(), confirmer(), ...Array.from({ length: READERS }, reader), writer(), producer()];
  // Warm up before the first fault.
  await sleep(2000);

  for (let run = 1; run <= RUNS; run++) {
    const kind = run % 2 === 1 ? 'SIGKILL' : 'SIGSTOP';
    const stats: RunStats = {
      kind,
      failoverMs: 0,
      queueRecoveryMs: 0,
      reads: 0,
      readErrors: 0,
      readErrorKinds: new Map(),
      writes: 0,
      writeErrors: 0,
      staleAfterAnswer: 0,
      staleAfter1s: 0,
      staleAfterBound: 0,
      maxStaleMs: 0,
      enqueued: 0,
      enqueueErrors: 0,
      enqueueMaxMs: 0,
      masters: [],
    };
    current = stats;
    runNo = run;
    const before = await set.currentMaster();
    stats.masters.push(String(before.port));
    const node = await set.currentMasterProcess();
    const t0 = performance.now();
    runStart = t0;
    if (kind === 'SIGKILL') await node.kill();
    else node.pause();
    await set.waitForMaster(before, 30_000);
    stats.failoverMs = Math.round(performance.now() - t0);
    if (kind === 'SIGKILL') await node.restart();
    else node.resume();
    await sleep(SETTLE_MS);
    await set.waitSettled(30_000);
    stats.queueRecoveryMs = lastEnqueueFailure > t0 ? Math.round(lastEnqueueFailure - t0) : 0;
    runs.push(stats);
    say(
      `run ${run}/${RUNS} ${kind}: failover ${stats.failoverMs} ms, queue back ${stats.queueRecoveryMs} ms, ` +
        `reads ${stats.reads} (errors ${stats.readErrors}${[...stats.readErrorKinds].map(([k, n]) => `, ${n}× ${k}`).join('')}), writes ${stats.writes} (errors ${stats.writeErrors}), ` +
        `stale after answer ${stats.staleAfterAnswer} (>1 s ${stats.staleAfter1s}, >${BOUND_MS} ms ${stats.staleAfterBound}, ` +
        `max ${Math.round(stats.maxStaleMs)} ms), jobs ${stats.enqueued} (failed ${stats.enqueueErrors}, ` +
        `slowest 202 ${Math.round(stats.enqueueMaxMs)} ms), ` +
        `masters ${stats.masters.join(' → ')}`,
    );
  }
  stop = true;
  await Promise.all(load);
  current = undefined;

  // Every acknowledged job must complete.
  const deadline = performance.now() + 60_000;
  while (unconfirmed.size > 0 && performance.now() < deadline) {
    await confirm();
    if (unconfirmed.size > 0) await sleep(500);
  }
  const pending = [...unconfirmed];

  const sum = (f: (s: RunStats) => number) => runs.reduce((a, s) => a + f(s), 0);
  const range = (f: (s: RunStats) => number) => {
    const xs = runs.map(f);
    return [Math.min(...xs), Math.max(...xs)];
  };
  const summary = {
    runs: runs.length,
    settleMs: SETTLE_MS,
    boundMs: BOUND_MS,
    downAfterMs: DOWN_AFTER_MS,
    failoverMs: range((s) => s.failoverMs),
    queueRecoveryMs: range((s) => s.queueRecoveryMs),
    reads: sum((s) => s.reads),
    readErrors: sum((s) => s.readErrors),
    writes: sum((s) => s.writes),
    writeErrors: sum((s) => s.writeErrors),
    staleAfterAnswer: sum((s) => s.staleAfterAnswer),
    staleAfter1s: sum((s) => s.staleAfter1s),
    staleAfterBound: sum((s) => s.staleAfterBound),
    maxStaleMs: Math.round(Math.max(...runs.map((s) => s.maxStaleMs))),
    enqueueErrors: sum((s) => s.enqueueErrors),
    enqueueMaxMs: range((s) => Math.round(s.enqueueMaxMs)),
    jobsAcknowledged: jobIds.length,
    jobsLost: pending.length,
    jobsFailed: failed.length,
    /** Each job not completed: its state at the end, the run it was enqueued in and ms after that run's fault. */
    lost: pending.map((id) => ({ id, state: lostStates.get(id), ...jobOrigin.get(id) })),
    queueBackWithinDownAfterPlus10s: runs.every((s) => s.queueRecoveryMs <= DOWN_AFTER_MS + 10_000),
  };
  process.stdout.write(`${JSON.stringify({ summary, perRun: runs }, null, 2)}\n`);

  await jobs.close();
  await worker.close();
  for (const api of apis) await api.close();
  await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await db.close();
  await set.stop();
  prepared.stop();
  // Issue 9, invariant 1: no job lost, nothing stale past the bound, and 0 user-visible errors.
  const ok =
    summary.staleAfterBound === 0 &&
    summary.jobsLost === 0 &&
    summary.queueBackWithinDownAfterPlus10s &&
    summary.readErrors + summary.writeErrors + summary.enqueueErrors === 0;
  process.exit(ok ? 0 : 1);
}

main().catch((error: unknown) => {
  say(`chaos: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(2);
});
