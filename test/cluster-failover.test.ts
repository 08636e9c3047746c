/**
 * Issue 9, invariant 3 — a Cluster master SIGKILLed: reads keep serving, and a fan-out pattern
 * invalidation whose walk began before the kill still completes, every matching key gone.
 *
 * A private Cluster of 3 masters with one replica each (test/helpers/cluster.ts), the queues on a
 * separate single Redis (as deployed: BullMQ is not run on a Cluster), a worker runtime in this
 * process whose cache is on the Cluster. A reader cache reads one namespace without pause; the
 * worker walks another (`invalidate --pattern '*'`: one slice per master). Once the walk has fanned
 * out, the master of a slice that has not run yet is SIGKILLed: its replica takes over on another
 * port, so the slice names a master that no longer exists.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  type Definitions,
  FleetRuntime,
  invalidateResultSchema,
  JobClient,
  loadQueueConfig,
  sliceId,
} from '@cachefleet/jobs';
import { type Cache, createCache, defineNamespace } from '@cachefleet/tiered-cache';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  countKeys,
  type RedisCluster,
  type RedisProcess,
  startCluster,
  startRedis,
  waitUntil,
} from './helpers/index.js';

const PREFIX = `cf${Date.now().toString(36)}:`;
const QUEUE_PREFIX = `cfq${Date.now().toString(36)}`;
const WALKED = 30_000;
const READ = 3_000;

const Item = z.object({ id: z.string(), v: z.number() });
type Item = z.infer<typeof Item>;
const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));

function namespace(name: string) {
  return defineNamespace<Item>({
    name,
    version: 1,
    ttl: { l1: 1, l2: 600 },
    schema: Item,
    idSchema: z.string().regex(/^[1-9]\d{0,8}$/),
    load: async (id) => ({ id, v: 1 }),
    loadMany: async (list) => new Map(list.map((id) => [id, { id, v: 1 }])),
  });
}

let cluster: RedisCluster | undefined;
let queueRedis: RedisProcess | undefined;
let admin: Cluster | undefined;
const caches: Cache[] = [];
let jobs: JobClient | undefined;
let runtime: FleetRuntime | undefined;

beforeAll(async () => {
  cluster = await startCluster({ masters: 3, replicas: 1 });
  queueRedis = await startRedis();
  admin = new Cluster([...cluster.nodes]);
  admin.on('error', () => {});
}, 90_000);

afterAll(async () => {
  await runtime?.close();
  await jobs?.close();
  await Promise.allSettled(caches.map((c) => c.close()));
  admin?.disconnect();
  await cluster?.stop();
  await queueRedis?.stop();
});

function the<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} not started`);
  return v;
}

async function clusterCache(): Promise<Cache> {
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'cluster', nodes: [...the(cluster, 'cluster').nodes] },
    prefix: PREFIX,
    hotKeys: { enabled: false },
  });
  caches.push(cache);
  await cache.start();
  return cache;
}

describe('invariant 3: a Cluster master SIGKILLed', () => {
  it('reads keep serving, and a pattern invalidation that fanned out before the kill completes', async () => {
    const c = the(cluster, 'cluster');
    const walked = namespace('walked');
    const read = namespace('read');
    const definitions: Definitions = { namespaces: [walked, read], critical: {}, close: async () => {} };

    // The worker: its cache on the Cluster, its queues on the single Redis; one job at a time, so
    // the slices run one after the other.
    const workerCache = await clusterCache();
    workerCache.register(walked, read);
    jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: the(queueRedis, 'queue').url, QUEUE_PREFIX }));
    runtime = new FleetRuntime(
      { cache: workerCache, jobs, definitions, logger: pino({ level: 'silent' }), metrics: new Registry() },
      {
        queues: [{ queue: 'invalidate', concurrency: 1 }],
        lockDurationMs: 30_000,
        stalledIntervalMs: 30_000,
        shutdownMs: 5_000,
      },
    );
    runtime.start();

    const reader = await clusterCache();
    reader.register(read);
    for (let i = 0; i < WALKED; i += 5_000) {
      const w = await reader.fleet.warm(walked, ids(WALKED).slice(i, i + 5_000));
      expect(w.ok && w.value.written).toBe(5_000);
    }
    const w = await reader.fleet.warm(read, ids(READ));
    expect(w.ok && w.value.written).toBe(READ);
    const masters = () => the(admin, 'admin').nodes('master');
    expect(await countKeys(masters(), `${PREFIX}walked:v1:*`)).toBe(WALKED);

    // Reads without pause, from L1 (1 s) and L2, across every master.
    let reading = true;
    const reads = { ok: 0, failed: 0, wrong: 0, maxMs: 0, over1s: 0 };
    const stalls = monitorEventLoopDelay({ resolution: 10 });
    stalls.enable();
    const loop = (async () => {
      let n = 0;
      while (reading) {
        const id = String((n++ % READ) + 1);
        const t0 = performance.now();
        const r = await reader.get(read, id);
        const ms = performance.now() - t0;
        reads.maxMs = Math.max(reads.maxMs, ms);
        if (ms > 1_000) reads.over1s++;
        if (!r.ok) reads.failed++;
        else if (r.value?.id !== id) reads.wrong++;
        else reads.ok++;
        if (n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
    })();

    const job = await jobs.enqueue('invalidate', { scope: 'pattern', namespace: 'walked', pattern: '*' });
    const queue = jobs.queue('invalidate');
    // Fanned out: the slices exist; pick one that has not started, and kill its master.
    const victim = await waitUntil(
      'a slice waiting for its turn',
      async () => {
        for (let i = 0; i < 3; i++) {
          const slice = await queue.getJob(sliceId(job.id, i));
          if (slice === undefined) continue;
          const state = await slice.getState();
          const master = z.object({ payload: z.object({ master: z.string() }) }).parse(slice.data)
            .payload.master;
          if (state === 'waiting' || state === 'prioritized' || state === 'delayed') return master;
        }
        return undefined;
      },
      { intervalMs: 5 },
    );
    const port = Number(victim.split(':')[1]);
    const okBefore = reads.ok;
    await c.node(port).kill();
    const killedAt = performance.now();

    const done = await waitUntil(
      `the invalidation ${job.id} to complete`,
      async (note) => {
        const view = await jobs?.job(job.id);
        note(`${view?.state}: ${view?.failedReason ?? ''}`);
        if (view?.state === 'failed') throw new Error(`failed: ${view.failedReason}`);
        return view?.state === 'completed' ? view : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    const tookMs = performance.now() - killedAt;
    await waitUntil('reads after the failover', async () => (reads.ok > okBefore + 1_000 ? true : undefined));
    reading = false;
    await loop;

    stalls.disable();
    const result = invalidateResultSchema.parse(done.result);
    console.log(
      `master ${victim} SIGKILLed mid-walk: the invalidation completed ${Math.round(tookMs)} ms later ` +
        `(removed ${result.removed}, ${result.slices} slices); reads ${JSON.stringify({ ...reads, maxMs: Math.round(reads.maxMs) })}; ` +
        `longest event-loop stall of this process ${Math.round(stalls.max / 1e6)} ms`,
    );
    expect(result.slices).toBe(3);
    expect(reads.failed).toBe(0);
    expect(reads.wrong).toBe(0);
    expect(reads.ok).toBeGreaterThan(okBefore);
    // Every key of the walked namespace is gone from every master of the new topology.
    await c.waitHealthy();
    const now = await c.masters();
    expect(now.map((m) => m.port)).not.toContain(port);
    const nodes = now.map((m) => new Redis(m.port, m.host));
    try {
      expect(await countKeys(nodes, `${PREFIX}walked:v1:*`)).toBe(0);
      expect(await countKeys(nodes, `${PREFIX}read:v1:*`)).toBeGreaterThan(0);
    } finally {
      for (const n of nodes) n.disconnect();
    }
  }, 180_000);
});
