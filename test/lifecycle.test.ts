/**
 * Migrate and sweep jobs (docs/design-lifecycle.md) against real Redis: a single node, then a
 * 3-master Cluster (the queue Redis is a single node beside it, as in a deployment). The worker is
 * a real FleetRuntime in this process serving the migrate, sweep and invalidate queues with the
 * version 2 definitions; "pods" are caches holding the version 1 or 2 definition, publishing
 * invalidations on the bus as pods do. Values are seeded as version 1 entries with TTLs.
 *
 *  1. migrate: every good entry is written at v2, converted, with its remaining TTL (within 1 s)
 *     and its tags (a tag invalidation reaches it); failures (a throw, a schema refusal) are
 *     counted, listed and not written; tombstones and other generations are not migrated; the
 *     sweep the job enqueues removes the v1 keys
 *  2. dry run: counts and failures, nothing written, no sweep
 *  3. no migration declared: entries reloaded from the source
 *  4. invalidations during a (throttled) migration — keys from a v1 pod, keys from a v2 pod, a
 *     pattern from a v1 pod — are not undone: none of those ids has a live v2 value at the end
 *  5. a worker at the wrong version refuses the job (E_JOB_MIGRATION), without retries
 *  6. a rollout: a v1 pod and a v2 pod read their own version; an invalidation from the v1 pod
 *     reaches the v2 pod's L1
 *  7. sweep after a namespace invalidation: old generation and old version unlinked, the current
 *     and a newer version kept
 */
import { randomBytes } from 'node:crypto';
import {
  type Definitions,
  FleetRuntime,
  JobClient,
  loadQueueConfig,
  migrateResultSchema,
  type QueueConcurrency,
  sweepResultSchema,
} from '@cachefleet/jobs';
import type { RedisConnection } from '@cachefleet/redis';
import { type Cache, createCache, type Namespace } from '@cachefleet/tiered-cache';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  jobSettled,
  type RedisCluster,
  type RedisProcess,
  startCluster,
  startRedis,
  waitUntil,
} from './helpers/index.js';
import { convert, ItemV2, itemV1, itemV2, itemV2Reload, v1Value } from './lifecycle-defs.js';

const TAG = randomBytes(3).toString('hex');
const N = 1_200;
const TTL_MS = 600_000;

let queueRedis: RedisProcess;
let single: RedisProcess;
let cluster: RedisCluster;

beforeAll(async () => {
  [queueRedis, single, cluster] = await Promise.all([startRedis(), startRedis(), startCluster()]);
}, 120_000);

afterAll(async () => {
  await Promise.all([queueRedis?.stop(), single?.stop(), cluster?.stop()]);
});

type Raw = Redis | Cluster;

interface Setup {
  readonly name: string;
  connection(): RedisConnection;
  raw(): Raw;
}

const SETUPS: Setup[] = [
  {
    name: 'single node',
    connection: () => ({ mode: 'single', url: single.url }),
    raw: () => new Redis(single.url),
  },
  {
    name: 'cluster',
    connection: () => ({ mode: 'cluster', nodes: [...cluster.nodes] }),
    raw: () => new Cluster([...cluster.nodes]),
  },
];

let testNo = 0;

interface World {
  readonly prefix: string;
  readonly raw: Raw;
  readonly jobs: JobClient;
  readonly worker: Cache;
  pod(ns: Namespace<unknown>): Promise<Cache>;
  key(version: number, id: string | number, generation?: number): string;
  close(): Promise<void>;
}

async function world(setup: Setup, workerNs: Namespace<unknown>): Promise<World> {
  const n = ++testNo;
  const prefix = `lc${TAG}t${n}:`;
  const queuePrefix = `lcq${TAG}t${n}`;
  const raw = setup.raw();
  raw.on('error', () => {});
  const caches: Cache[] = [];
  const newCache = async (ns: Namespace<unknown>) => {
    const cache = createCache({
      impl: 'redis',
      redis: setup.connection(),
      prefix,
      hotKeys: { enabled: false },
    });
    cache.register(ns);
    await cache.start();
    caches.push(cache);
    return cache;
  };
  const worker = await newCache(workerNs);
  const definitions: Definitions = { namespaces: [workerNs], critical: {}, close: async () => {} };
  const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: queueRedis.url, QUEUE_PREFIX: queuePrefix }));
  const queues: QueueConcurrency[] = [
    { queue: 'migrate', concurrency: 1 },
    { queue: 'sweep', concurrency: 1 },
    { queue: 'invalidate', concurrency: 1 },
  ];
  const runtime = new FleetRuntime(
    { cache: worker, jobs, definitions, logger: pino({ level: 'silent' }), metrics: new Registry() },
    { queues, lockDurationMs: 30_000, stalledIntervalMs: 5_000, shutdownMs: 5_000 },
  );
  runtime.start();
  return {
    prefix,
    raw,
    jobs,
    worker,
    pod: newCache,
    key: (version, id, generation = 0) =>
      `${prefix}item:v${version}:${generation === 0 ? '' : `g${generation}:`}${id}`,
    close: async () => {
      await runtime.close();
      await jobs.close();
      await Promise.all(caches.map((c) => c.close()));
      raw.disconnect();
    },
  };
}

/** Version 1 entries 1…n (TTL 600 s minus i ms, so each remaining TTL differs), plus odd ones. */
async function seed(w: World, n: number): Promise<void> {
  const writes: Promise<unknown>[] = [];
  for (let i = 1; i <= n; i++) {
    writes.push(w.raw.set(w.key(1, i), JSON.stringify(v1Value(i)), 'PX', TTL_MS - i));
  }
  await Promise.all(writes);
}

const settled = (jobs: JobClient, id: string) => jobSettled(jobs, id, 90_000);

async function completed(jobs: JobClient, id: string) {
  const view = await settled(jobs, id);
  expect(view.failedReason).toBeUndefined();
  expect(view.state).toBe('completed');
  return view;
}

/** Every key of the world matching `glob` on every master. */
async function keysOf(w: World, glob: string): Promise<string[]> {
  const nodes = w.raw instanceof Cluster ? w.raw.nodes('master') : [w.raw];
  const out: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${w.prefix}${glob}`, 'COUNT', 1000);
      out.push(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  return out;
}

function live(wire: string | null): unknown {
  if (wire === null || wire.startsWith('~t')) return undefined;
  return JSON.parse(wire);
}

describe.each(SETUPS)('migrate and sweep on $name', (setup) => {
  it('migrates every good entry with its remaining TTL and tags, lists the failures, then sweeps v1', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      await seed(w, N);
      // Odd ones: two failures, a tombstone, an entry of an older generation, and a v2 entry
      // already filled by a new pod (its value wins).
      await w.raw.set(
        w.key(1, 'bad-throw'),
        JSON.stringify({ id: 'bad-throw', title: 'throw', price: 1 }),
        'PX',
        TTL_MS,
      );
      await w.raw.set(
        w.key(1, 'bad-schema'),
        JSON.stringify({ id: 'bad-schema', title: '', price: 1 }),
        'PX',
        TTL_MS,
      );
      await w.raw.set(w.key(1, 'gone'), '~tsometombstone', 'PX', TTL_MS);
      await w.raw.set(w.key(1, 'old', 3), JSON.stringify(v1Value(5)), 'PX', TTL_MS);
      await w.raw.set(
        w.key(2, '7'),
        JSON.stringify({ id: '7', name: 'fresher', priceCents: 1 }),
        'PX',
        TTL_MS,
      );
      const started = Date.now();

      const job = await w.jobs.enqueue('migrate', { namespace: 'item', to: 2 });
      const view = await completed(w.jobs, job.id);
      const r = migrateResultSchema.parse(view.result);
      expect(r).toMatchObject({
        namespace: 'item',
        from: 1,
        to: 2,
        dryRun: false,
        generation: 0,
        overtaken: false,
      });
      expect(r.scanned).toBe(N + 3);
      expect(r.migrated).toBe(N - 1);
      expect(r.present).toBe(1);
      expect(r.skipped).toBe(1);
      expect(r.failed).toBe(2);
      expect(r.failures.map((f) => f.id).sort()).toEqual(['bad-schema', 'bad-throw']);
      expect(r.failures.find((f) => f.id === 'bad-throw')?.reason).toMatch(/migration threw: cannot convert/);
      expect(r.failures.find((f) => f.id === 'bad-schema')?.reason).toMatch(/v2 schema: name/);

      // Values converted, TTL the remaining one (seeded at TTL_MS - i, minus the time since).
      const elapsed = Date.now() - started;
      for (const i of [1, 2, 500, N]) {
        const wire = await w.raw.get(w.key(2, i));
        expect(ItemV2.parse(live(wire))).toEqual(convert(v1Value(i)));
        const pttl = await w.raw.pttl(w.key(2, i));
        expect(pttl).toBeLessThanOrEqual(TTL_MS - i);
        expect(pttl).toBeGreaterThan(TTL_MS - i - elapsed - 1_000);
      }
      expect(live(await w.raw.get(w.key(2, '7')))).toEqual({ id: '7', name: 'fresher', priceCents: 1 });
      for (const id of ['bad-throw', 'bad-schema', 'gone']) expect(await w.raw.exists(w.key(2, id))).toBe(0);
      expect(await w.raw.exists(w.key(2, 'old', 3))).toBe(0);

      // The migrated entries are in the tag index: a v2 pod's tag invalidation reaches them.
      const pod2 = await w.pod(itemV2() as Namespace<unknown>);
      const ns2 = itemV2();
      pod2.register(ns2 as Namespace<unknown>);
      const tagged = await pod2.invalidateTags(ns2, ['mod:1']);
      expect(tagged.ok).toBe(true);
      expect(live(await w.raw.get(w.key(2, 1)))).toBeUndefined();
      expect(live(await w.raw.get(w.key(2, 2)))).toBeDefined();

      // The sweep it enqueued removes every v1 key (older generations included).
      expect(r.sweepJobId).toBeDefined();
      const sweep = sweepResultSchema.parse((await completed(w.jobs, r.sweepJobId as string)).result);
      expect(sweep.unlinked).toBe(N + 4);
      expect(await keysOf(w, 'item:v1:*')).toEqual([]);
      expect((await keysOf(w, 'item:v2:*')).length).toBeGreaterThanOrEqual(N - 1);
    } finally {
      await w.close();
    }
  });

  it('a dry run counts and lists failures and writes nothing', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      await seed(w, 300);
      await w.raw.set(
        w.key(1, 'bad-throw'),
        JSON.stringify({ id: 'bad-throw', title: 'throw', price: 1 }),
        'PX',
        TTL_MS,
      );
      const job = await w.jobs.enqueue('migrate', { namespace: 'item', to: 2, dryRun: true });
      const r = migrateResultSchema.parse((await completed(w.jobs, job.id)).result);
      expect(r).toMatchObject({ dryRun: true, scanned: 301, migrated: 300, failed: 1 });
      expect(r.failures).toEqual([{ id: 'bad-throw', reason: expect.stringMatching(/cannot convert/) }]);
      expect(r.sweepJobId).toBeUndefined();
      expect(await keysOf(w, 'item:v2:*')).toEqual([]);
      expect((await keysOf(w, 'item:v1:*')).length).toBe(301);
    } finally {
      await w.close();
    }
  });

  it('without a migration declared, reloads the entries from the source', async () => {
    const w = await world(setup, itemV2Reload() as Namespace<unknown>);
    try {
      await seed(w, 250);
      const job = await w.jobs.enqueue('migrate', { namespace: 'item', to: 2 });
      const r = migrateResultSchema.parse((await completed(w.jobs, job.id)).result);
      expect(r).toMatchObject({ scanned: 250, migrated: 250, failed: 0 });
      expect(live(await w.raw.get(w.key(2, 42)))).toEqual({ id: '42', name: 'reloaded-42', priceCents: 1 });
    } finally {
      await w.close();
    }
  });

  it('does not undo invalidations made while it runs (v1 and v2 pods, keys and patterns)', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      const n = 1_500;
      await seed(w, n);
      const ns1 = itemV1();
      const ns2 = itemV2();
      const pod1 = await w.pod(ns1 as Namespace<unknown>);
      const pod2 = await w.pod(ns2 as Namespace<unknown>);
      // About 5 s: 300 keys/s in steps of 20.
      const job = await w.jobs.enqueue('migrate', { namespace: 'item', to: 2, rate: 300, count: 20 });
      const invalidated = new Set<string>();
      const patterns: string[] = [];
      let round = 0;
      // Invalidate ids spread over the keyspace while the job runs: some before the walk reaches
      // them, some after it wrote them.
      for (;;) {
        const view = await w.jobs.job(job.id);
        if (view?.state === 'completed' || view?.state === 'failed') break;
        round++;
        const ids = Array.from({ length: 5 }, (_, k) => String(((round * 37 + k * 301) % n) + 1));
        const from1 = ids.slice(0, 3);
        const from2 = ids.slice(3);
        expect((await pod1.delete(ns1, ...from1)).ok).toBe(true);
        expect((await pod2.delete(ns2, ...from2)).ok).toBe(true);
        for (const id of ids) invalidated.add(id);
        if (round === 3) {
          // ids 9, 90–99, 900–999: a pattern invalidation from an old pod (v1 keys only in L2)
          expect((await pod1.invalidatePattern(ns1, '9*')).ok).toBe(true);
          patterns.push('9');
        }
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      expect(round).toBeGreaterThan(5);
      const r = migrateResultSchema.parse((await completed(w.jobs, job.id)).result);
      expect(r.migrated).toBeGreaterThan(0);
      // The last rounds may have run after the walk's end: the v2 pods that heard them tombstone
      // those ids at v2 (an event carries its publisher's version), within the bus's latency.
      const staleAtV2 = async () => {
        const stale: string[] = [];
        for (let i = 1; i <= n; i++) {
          const id = String(i);
          const hit = invalidated.has(id) || patterns.some((p) => id.startsWith(p));
          if (!hit) continue;
          if (live(await w.raw.get(w.key(2, id))) !== undefined) stale.push(id);
        }
        return stale;
      };
      let stale = await staleAtV2();
      for (let tries = 0; stale.length > 0 && tries < 20; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        stale = await staleAtV2();
      }
      expect(stale).toEqual([]);
      // And the rest was migrated.
      expect(live(await w.raw.get(w.key(2, 2)))).toBeDefined();
    } finally {
      await w.close();
    }
  });
});

describe('refusals and the sweep', () => {
  const setup = SETUPS[0] as Setup;

  it('during a rollout a v1 pod and a v2 pod each read their own version, and an invalidation reaches both versions in L1 and L2', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    const pods: Cache[] = [];
    try {
      const ns1 = itemV1();
      const ns2 = itemV2();
      const tiered = async (ns: Namespace<unknown>) => {
        const c = createCache({
          impl: 'tiered',
          redis: setup.connection(),
          prefix: w.prefix,
          hotKeys: { enabled: false },
        });
        c.register(ns);
        await c.start();
        pods.push(c);
        return c;
      };
      const pod1 = await tiered(ns1 as Namespace<unknown>);
      const pod2 = await tiered(ns2 as Namespace<unknown>);
      await w.raw.set(w.key(1, 3), JSON.stringify(v1Value(3)), 'PX', TTL_MS);
      await w.raw.set(w.key(2, 3), JSON.stringify(convert(v1Value(3))), 'PX', TTL_MS);
      // Each reads its own version's entry (into its L1).
      expect(await pod1.get(ns1, '3')).toEqual({ ok: true, value: v1Value(3) });
      expect(await pod2.get(ns2, '3')).toEqual({ ok: true, value: convert(v1Value(3)) });
      // Behind the L1s' back, L2's v2 entry changes: an L1 hit still shows the old one.
      const marker = { id: '3', name: 'from L2', priceCents: 0 };
      await w.raw.set(w.key(2, 3), JSON.stringify(marker), 'PX', TTL_MS);
      expect(await pod2.get(ns2, '3')).toEqual({ ok: true, value: convert(v1Value(3)) });
      // A v1 pod's invalidation reaches the v2 pod, which drops its L1 entry and tombstones the id
      // at v2 in L2 (the event carries version 1): neither its copy nor L2's old one is read again.
      expect((await pod1.delete(ns1, '3')).ok).toBe(true);
      expect(live(await w.raw.get(w.key(1, 3)))).toBeUndefined();
      await waitUntil('the v2 pod to tombstone the id at v2', async () =>
        live(await w.raw.get(w.key(2, 3))) === undefined ? true : undefined,
      );
      expect(await pod2.get(ns2, '3')).toEqual({ ok: true, value: convert(v1Value(3)) });
      // And the other way: a v2 pod's invalidation tombstones the v1 entry a v1 pod would read.
      await w.raw.set(w.key(1, 4), JSON.stringify(v1Value(4)), 'PX', TTL_MS);
      expect((await pod2.delete(ns2, '4')).ok).toBe(true);
      await waitUntil('the v1 pod to tombstone the id at v1', async () =>
        live(await w.raw.get(w.key(1, 4))) === undefined ? true : undefined,
      );
    } finally {
      await Promise.all(pods.map((p) => p.close()));
      await w.close();
    }
  });

  it('a migration saved with masters this worker does not know (a failover since) walks the ones it knows again', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      await seed(w, 300);
      // As a worker that was killed after a failover left it: a cursor on a master that is gone.
      const job = await w.jobs.queue('migrate').add('migrate', {
        payload: { namespace: 'item', to: 2, dryRun: false, rate: 0, count: 50 },
        state: {
          generation: 0,
          masters: ['127.0.0.1:1'],
          index: 0,
          cursor: '4242',
          total: 300,
          totals: { scanned: 40, migrated: 40, present: 0, changed: 0, skipped: 0, failed: 0 },
          failures: [],
          overtaken: false,
        },
      });
      const r = migrateResultSchema.parse((await completed(w.jobs, job.id ?? '')).result);
      // Every entry is migrated: the walk started over on the master the worker knows.
      expect(r.failed).toBe(0);
      for (const i of [1, 150, 300]) expect(live(await w.raw.get(w.key(2, i)))).toEqual(convert(v1Value(i)));
      expect(await keysOf(w, 'item:v2:*')).toHaveLength(300);
    } finally {
      await w.close();
    }
  });

  it('a worker whose definition is not at the version asked refuses the job without retries', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      const job = await w.jobs.enqueue('migrate', { namespace: 'item', to: 3 });
      const view = await settled(w.jobs, job.id);
      expect(view.state).toBe('failed');
      expect(view.failedReason).toMatch(/^E_JOB_MIGRATION: .*version 2, not 3/);
      expect(view.attemptsMade).toBe(1);
    } finally {
      await w.close();
    }
  });

  it('after a namespace invalidation, the sweep unlinks old generations and versions, never a newer version', async () => {
    const w = await world(setup, itemV2() as Namespace<unknown>);
    try {
      for (let i = 1; i <= 300; i++) {
        await w.raw.set(w.key(2, i), JSON.stringify(convert(v1Value(i))), 'PX', TTL_MS);
        await w.raw.set(w.key(1, i), JSON.stringify(v1Value(i)), 'PX', TTL_MS);
      }
      await w.raw.set(w.key(3, 'newer'), '{}', 'PX', TTL_MS);
      await w.raw.set(`${w.prefix}other:v1:1`, '{}', 'PX', TTL_MS);
      const inv = await w.jobs.enqueue('invalidate', { scope: 'namespace', namespace: 'item' });
      const ir = (await completed(w.jobs, inv.id)).result as { generation: number; sweepJobId?: string };
      expect(ir.generation).toBe(1);
      // Written after the bump: the current generation, kept.
      await w.raw.set(w.key(2, 'fresh', 1), '{}', 'PX', TTL_MS);
      const sweepId = ir.sweepJobId as string;
      const r = sweepResultSchema.parse((await completed(w.jobs, sweepId)).result);
      expect(r.unlinked).toBe(600);
      expect((await keysOf(w, 'item:*')).sort()).toEqual([w.key(2, 'fresh', 1), w.key(3, 'newer')].sort());
      expect(await w.raw.exists(`${w.prefix}other:v1:1`)).toBe(1);
    } finally {
      await w.close();
    }
  });
});
