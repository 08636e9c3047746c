/**
 * Issue 9, invariant 9: partitions, with processes as hosts in their own Linux network namespaces
 * (test/helpers/netns.ts). Redis and PostgreSQL stay on loopback in this namespace; a host reaches
 * each through a TCP proxy on its own veth link, so cutting the Redis link (link down: packets
 * dropped silently, sockets left open) cuts the host from Redis and nothing else.
 *
 *  1. An API pod process (`apps/api/src/main.ts`) on its own host, cut from Redis while it serves:
 *     every read answers 200 (L1, or the database); a PATCH made on another pod during the cut is
 *     seen by the cut pod once it rejoins — the invalidation applied or its L1 flushed — well
 *     before its L1 TTL (600 s here) could explain it.
 *  2. A worker process on its own host, cut mid-sweep: its lock expires, a worker on this side
 *     takes the job over and completes it; the cut worker, back, gives up the attempt (lock lost)
 *     and never completes it: one `completed` event, no `failed` one, the sweep's end state right.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type RunningApi, startApi } from '@cachefleet/api';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { sweepResultSchema } from '@cachefleet/jobs';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jobLogs, startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import { closeJobClients, jobClient, lifecycleEnv, loggedCount, settled } from './fixtures/lifecycle-kill.js';
import {
  freePort,
  type RedisProcess,
  startRedis,
  startTcpProxy,
  type TcpProxy,
  testDatabaseUrl,
  waitUntil,
} from './helpers/index.js';
import { createHost, removeHosts, requireNetns } from './helpers/netns.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TAG = randomBytes(3).toString('hex');
const SCHEMA = `part_${TAG}`;
const TOKEN = `partition-test-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();

let redis: RedisProcess;
let raw: Redis;
let db: Db | undefined;
const proxies: TcpProxy[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
let other: RunningApi | undefined;

beforeAll(async () => {
  await requireNetns();
  redis = await startRedis();
  raw = new Redis(redis.url);
  raw.on('error', () => {});
}, 60_000);

afterEach(async () => {
  await stopAllWorkers();
  await closeJobClients();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await other?.close();
  await Promise.all(proxies.map((p) => p.stop()));
  await removeHosts();
  if (db !== undefined) {
    await db.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await db.close();
  }
  raw?.disconnect();
  await redis?.stop();
}, 60_000);

/** A proxy on `listenHost` (a link's outside address) to a loopback server; closed in afterAll. */
async function proxy(targetPort: number, listenHost: string): Promise<TcpProxy> {
  const p = await startTcpProxy('127.0.0.1', targetPort, listenHost);
  proxies.push(p);
  return p;
}

const Ready = z.looseObject({ msg: z.literal('api ready'), url: z.string() });

/** `apps/api/src/main.ts` run through `wrap` (on a host); resolves with its URL once ready. */
async function startApiProcess(
  wrap: (argv: readonly string[]) => { file: string; args: string[] },
  env: Record<string, string>,
): Promise<{ url: string; output: () => string }> {
  const { file, args } = wrap([process.execPath, '--import', 'tsx', 'apps/api/src/main.ts']);
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(API_|CACHE_|QUEUE_|CATALOGUE_|DATABASE_URL$)/.test(k)),
  );
  const child = spawn(file, args, { cwd: ROOT, env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  const keep = (s: string) => {
    output = (output + s).slice(-6000);
  };
  child.stderr.setEncoding('utf8').on('data', keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`api not ready in 60 s:\n${output}`)), 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`api exited (${code ?? signal}) before ready:\n${output}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(`${line}\n`);
      try {
        const ready = Ready.safeParse(JSON.parse(line));
        if (ready.success) {
          clearTimeout(timer);
          resolve(ready.data.url);
        }
      } catch {
        // not a JSON line
      }
    });
  });
  return { url, output: () => output };
}

const Product = z.looseObject({ id: z.union([z.string(), z.number()]), stock: z.number() });

async function getProduct(base: string, id: number): Promise<{ status: number; stock?: number }> {
  const res = await fetch(`${base}/products/${id}`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status };
  return { status: 200, stock: Product.parse(JSON.parse(text)).stock };
}

describe('partitions (network namespaces)', () => {
  it('an API pod cut from Redis keeps serving and rejoins without stale L1', async () => {
    db = connectPg(DATABASE_URL);
    await migrate(db, { schema: SCHEMA });
    await seed(db, { schema: SCHEMA, count: 40 });
    const pg = new URL(DATABASE_URL);
    const host = await createHost(2);
    const [redisLink, serviceLink] = host.links;
    if (redisLink === undefined || serviceLink === undefined) throw new Error('two links expected');
    const toRedis = await proxy(redis.port, redisLink.outside);
    const toPg = await proxy(Number(pg.port || 5432), serviceLink.outside);
    const podPg = new URL(DATABASE_URL);
    podPg.hostname = serviceLink.outside;
    podPg.port = String(toPg.port);
    const common = {
      ADMIN_TOKEN: TOKEN,
      API_CRITICAL_WARM: 'false',
      API_READY_REDIS_DOWN_MS: '1000',
      CATALOGUE_SCHEMA: SCHEMA,
      CATALOGUE_TTL_L1: '600',
      CACHE_KEY_PREFIX: `pt${TAG}:`,
      QUEUE_PREFIX: `ptq${TAG}`,
    };
    const redisThere = `redis://${redisLink.outside}:${toRedis.port}`;
    const pod = await startApiProcess(host.command, {
      ...common,
      API_HOST: serviceLink.inside,
      API_PORT: String(await freePort()),
      DATABASE_URL: podPg.href,
      CACHE_REDIS_URL: redisThere,
      QUEUE_REDIS_URL: redisThere,
      LOG_LEVEL: 'info',
    });
    // The other pod, on this side: its PATCH publishes the invalidation the cut pod cannot hear.
    other = await startApi(
      {
        ...common,
        API_HOST: '127.0.0.1',
        API_PORT: '0',
        DATABASE_URL,
        CACHE_REDIS_URL: redis.url,
        QUEUE_REDIS_URL: redis.url,
      },
      pino({ level: 'silent' }),
    );
    const ids = Array.from({ length: 20 }, (_, i) => i + 1);
    const hot = ids.slice(0, 10);
    // Hot ids in the cut pod's L1 (read twice: filled, then served).
    for (let round = 0; round < 2; round++)
      for (const id of hot) expect((await getProduct(pod.url, id)).status).toBe(200);
    const before = (await getProduct(pod.url, 1)).stock ?? 0;
    const readyz = async () =>
      (await fetch(`${pod.url}/readyz`, { signal: AbortSignal.timeout(10_000) })).status;
    expect(await readyz()).toBe(200);

    await redisLink.cut();
    const patched = await fetch(`${other.url}/products/1`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ stock: before + 1_000 }),
      signal: AbortSignal.timeout(10_000),
    });
    expect(patched.status).toBe(200);
    const answeredAt = performance.now();
    // While cut: every read answers, hot ids from L1, the rest from the database after the cache's
    // command timeout. The cut is silent (no RST): the bus notices it by its heartbeat (a PING
    // unanswered within 1 s), counts as cut since it last heard Redis, and flushes L1
    // disconnectedTtlMs (5 s) after that. So a read of id 1 may be stale only until then: none that
    // began more than 5 s (+ 1.5 s for timers on a busy machine) after the PATCH's answer.
    const boundMs = 5_000 + 1_500;
    let reads = 0;
    let staleWhileCut = 0;
    const staleLate: number[] = [];
    const failed: string[] = [];
    for (let round = 0; round < 5 || performance.now() - answeredAt < boundMs + 2_000; round++) {
      for (const id of ids) {
        const began = performance.now() - answeredAt;
        const r = await getProduct(pod.url, id);
        reads++;
        if (r.status !== 200) failed.push(`${id}: ${r.status}`);
        if (id === 1 && r.stock === before) {
          staleWhileCut++;
          if (began > boundMs) staleLate.push(Math.round(began));
        }
      }
    }
    // The queue connection's heartbeat (2 s) notices the cut too: the pod says it cannot work.
    await waitUntil(
      'the cut pod to turn unready',
      async () => ((await readyz()) === 503 ? true : undefined),
      {
        timeoutMs: 20_000,
      },
    );
    const readyWhileCut = 503;
    expect(failed).toEqual([]);
    expect(staleLate, 'reads of the PATCHed id stale > 6.5 s after the answer (ms after it)').toEqual([]);
    const healed = Date.now();
    await redisLink.heal();
    await waitUntil('the pod to be ready again', async () => ((await readyz()) === 200 ? true : undefined), {
      timeoutMs: 60_000,
    });
    // The invalidation made during the cut reaches the pod's L1 (applied, or L1 flushed), long
    // before its 600 s L1 TTL.
    await waitUntil(
      'the rejoined pod to serve the PATCHed stock',
      async (note) => {
        const r = await getProduct(pod.url, 1);
        note(`stock ${r.stock}, status ${r.status}`);
        return r.stock === before + 1_000 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const freshAfterMs = Date.now() - healed;
    for (const id of ids) expect((await getProduct(pod.url, id)).status).toBe(200);
    expect((await getProduct(pod.url, 1)).stock).toBe(before + 1_000);
    console.info(
      `partition pod: ${reads} reads while cut, 0 failed, ${staleWhileCut} reads of the PATCHed id stale (none after ${boundMs} ms), ` +
        `/readyz ${readyWhileCut} while cut; fresh ${freshAfterMs} ms after the heal`,
    );
  }, 240_000);

  it('a worker cut mid-job loses its lock; the job completes once, elsewhere', async () => {
    const prefix = `pw${TAG}:`;
    const queuePrefix = `pwq${TAG}`;
    const host = await createHost(1);
    const [link] = host.links;
    if (link === undefined) throw new Error('one link expected');
    const toRedis = await proxy(redis.port, link.outside);
    const there = `redis://${link.outside}:${toRedis.port}`;
    const jobs = jobClient(redis.url, queuePrefix);
    const key = (v: number, id: number) => `${prefix}item:v${v}:${id}`;
    const n = 30_000;
    for (let at = 1; at <= n; at += 10_000) {
      const pipe = raw.pipeline();
      for (let i = at; i < at + 10_000; i++) {
        pipe.set(key(1, i), 'old', 'PX', 600_000);
        if (i <= n / 3) pipe.set(key(2, i), 'current', 'PX', 600_000);
      }
      await pipe.exec();
    }
    const w1 = await startWorker({
      name: 'cut',
      env: lifecycleEnv({ cacheUrl: there, queueUrl: there, prefix, queuePrefix }),
      queues: 'sweep:1',
      wrap: host.command,
    });
    const { id } = await jobs.enqueue('sweep', { namespace: 'item', count: 10 });
    const Saved = z.object({ state: z.object({ scanned: z.number() }) });
    await waitUntil(
      'the sweep to be under way on the cut-off host',
      async () => {
        const saved = Saved.safeParse((await jobs.queue('sweep').getJob(id))?.data);
        return saved.success && saved.data.state.scanned >= n / 5 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    await link.cut();
    const w2 = await startWorker({
      name: 'here',
      env: lifecycleEnv({ cacheUrl: redis.url, queueUrl: redis.url, prefix, queuePrefix }),
      queues: 'sweep:1',
    });
    const view = await settled(jobs, id);
    expect(view.failedReason).toBeUndefined();
    const r = sweepResultSchema.parse(view.result);
    expect(await loggedCount(w2, id, 'job completed')).toBe(1);
    await link.heal();
    // Back on the network, the cut worker finds its lock gone and ends its attempt.
    await waitUntil(
      'the cut worker to give the job up',
      async () =>
        jobLogs(w1, id, 'job lock lost: attempt cancelled').length +
          jobLogs(w1, id, 'job attempt failed').length >
        0
          ? true
          : undefined,
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    await w1.stop(10_000);
    expect(jobLogs(w1, id, 'job completed')).toEqual([]);
    // Exactly one completion, no failure, in the queue's event stream.
    const events = await raw.xrange(`${queuePrefix}:sweep:events`, '-', '+');
    const of = (name: string) =>
      events.filter(([, fields]) => {
        const f = new Map<string, string>();
        for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
        return f.get('event') === name && f.get('jobId') === id;
      }).length;
    expect(of('completed')).toBe(1);
    expect(of('failed')).toBe(0);
    expect((await jobs.job(id))?.state).toBe('completed');
    // The sweep's end state: every v1 key gone, every v2 key kept.
    expect(r.unlinked).toBeLessThanOrEqual(n);
    const v1 = Array.from({ length: n }, (_, i) => key(1, i + 1));
    const v2 = Array.from({ length: n / 3 }, (_, i) => key(2, i + 1));
    expect(await raw.exists(...v1)).toBe(0);
    expect(await raw.exists(...v2)).toBe(n / 3);
    const gaveUp = w1.logs.filter((l) => l.jobId === id && /lock lost|attempt failed/.test(l.msg ?? ''));
    console.info(
      `partition worker: cut worker ${gaveUp.map((l) => l.msg).join(', ')}; sweep ${JSON.stringify(r)}`,
    );
  }, 300_000);
});
