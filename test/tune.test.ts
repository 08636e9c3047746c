/**
 * The tuner end to end (issue 13, Tune (E3); docs/tuning.md): pods (tiered caches with their
 * telemetry), a worker runtime serving the tune and warm queues, a cache Redis with a small
 * maxmemory for the pressure rule and a queue Redis of its own. A workload crosses each threshold
 * in turn; each tick is a real tune job. The rules' flapping properties are in
 * libs/jobs/test/tune-rules.test.ts (pure); here: the action happens once, pods apply it live, it
 * is reverted when the condition clears, a late pod reads the settings in force, pins hold, the
 * audit stream has one entry per decision, and a dry run changes nothing.
 */
import {
  type Definitions,
  FleetRuntime,
  JobClient,
  loadQueueConfig,
  loadTuneConfig,
  pinSetting,
  type TuneResult,
  tuneResultSchema,
  undoLast,
  unpinSetting,
} from '@cachefleet/jobs';
import { cacheKeys } from '@cachefleet/redis';
import { jobSettled, runCli, startRedis, testDatabaseUrl, unwrap, waitUntil } from '@cachefleet/test';
import { type Cache, createCache, defineNamespace } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type FleetPod, startFleetPod, stopAllPods } from './fixtures/fleet-procs.js';

const PREFIX = 'tn:';
// 8 MB: an empty Redis uses about 1 MB, so fillers of a few MB cross 0.85 and deleting them clears it.
const cacheRedis = await startRedis({ args: ['--maxmemory', '8mb', '--maxmemory-policy', 'noeviction'] });
const queueRedis = await startRedis();
const raw = new Redis(cacheRedis.url);
const keys = cacheKeys(PREFIX);

const product = defineNamespace({
  name: 'product',
  version: 1,
  ttl: { l1: 30, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => ({ id }),
});
const definitions: Definitions = { namespaces: [product], critical: {}, close: async () => undefined };

const caches: Cache[] = [];
async function pod(podId: string): Promise<Cache> {
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url: cacheRedis.url },
    prefix: PREFIX,
    bus: { podId },
    hotKeys: { enabled: false },
    telemetry: { intervalSeconds: 1, role: 'api' },
  });
  cache.register(product);
  await cache.start();
  caches.push(cache);
  return cache;
}

// The worker: an L2-only cache (its own snapshot too) and the runtime serving tune and warm.
const workerCache = createCache({
  impl: 'redis',
  redis: { mode: 'single', url: cacheRedis.url },
  prefix: PREFIX,
  bus: { podId: 'worker' },
  telemetry: { intervalSeconds: 1, role: 'worker' },
});
workerCache.register(product);
await workerCache.start();
const jobs = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: queueRedis.url, QUEUE_PREFIX: 'tnq' }));
const metrics = new Registry();
const runtime = new FleetRuntime(
  {
    cache: workerCache,
    jobs,
    definitions,
    logger: pino({ level: 'silent' }),
    metrics,
    // No cool-down here (the pure tests hold it); few reads are enough for a hit rate.
    tune: loadTuneConfig({ TUNE_COOLDOWN_SECONDS: '0', TUNE_MIN_READS: '20' }),
  },
  {
    queues: [
      { queue: 'tune', concurrency: 1 },
      { queue: 'warm', concurrency: 1 },
    ],
    lockDurationMs: 30_000,
    stalledIntervalMs: 30_000,
    shutdownMs: 5_000,
  },
);
runtime.start();

afterAll(async () => {
  await stopAllPods();
  await runtime.close();
  await jobs.close();
  await Promise.all(caches.map((c) => c.close()));
  await workerCache.close();
  raw.disconnect();
  await Promise.all([cacheRedis.stop(), queueRedis.stop()]);
});

const decisionsSeen: TuneResult['decisions'][number][] = [];

async function tick(dryRun = false): Promise<TuneResult> {
  const job = await jobs.enqueue('tune', { dryRun });
  const end = await jobSettled(jobs, job.id);
  expect(end.state, end.failedReason).toBe('completed');
  const r = tuneResultSchema.parse(end.result);
  expect(r.skipped).toBe(false);
  decisionsSeen.push(...r.decisions);
  return r;
}

/** Waits until the snapshots in Redis carry `reads` reads of product in all (published each second). */
async function published(reads: number): Promise<void> {
  await waitUntil(`snapshots carry ${reads} reads`, async () => {
    const v = unwrap(await workerCache.fleetView(0));
    const ns = v.namespaces.find((n) => n.namespace === 'product');
    return ns !== undefined && ns.l1.hits + ns.l1.misses >= reads ? true : undefined;
  });
}

const factors = (c: Cache) => {
  const t = c.stats().find((s) => s.namespace === 'product')?.tuning;
  return [t?.l1TtlFactor, t?.l2TtlFactor];
};

async function stored(): Promise<Record<string, string>> {
  return raw.hgetall(keys.tuneSettings);
}

const a = await pod('pod-a');
const b = await pod('pod-b');
/** A pod in a process of its own (test/fixtures/fleet-pod.ts): only asked for its stats here. */
function procPod(name: string): Promise<FleetPod> {
  return startFleetPod({
    name,
    redisUrl: cacheRedis.url,
    prefix: PREFIX,
    schema: 'tune_unused',
    databaseUrl: testDatabaseUrl(),
  });
}
const proc = await procPod('proc-early');
const procFactors = async (p: FleetPod) => {
  const t = (await p.stats()).tuning;
  return [t?.l1TtlFactor, t?.l2TtlFactor];
};
let reads = 0;
let fresh = 0;
/** Reads ids never read before (misses everywhere) on pod a. */
async function missReads(n: number) {
  for (let i = 0; i < n; i++) unwrap(await a.get(product, `m${fresh++}`));
  reads += n;
}

describe('the tune job', () => {
  it('first tick: no window yet, nothing decided', async () => {
    const r = await tick();
    expect(r.windowSeconds).toBeNull();
    expect(r.decisions).toEqual([]);
  });

  it('L1 and L2 hit rates low: a longer L1 TTL (once, applied live on every pod) and a recommendation', async () => {
    await missReads(50);
    await published(reads);
    const r = await tick();
    expect(r.windowSeconds).toBeGreaterThan(0);
    expect(r.decisions.map((d) => [d.rule, d.action, d.setting ?? '-', d.after ?? '-'])).toEqual([
      ['l2-hit-rate', 'recommend', '-', '-'],
      ['l1-hit-rate', 'set', 'l1TtlFactor', 2],
    ]);
    // The worker applied it; pod b got the config event; pod a too.
    expect(factors(workerCache)).toEqual([2, 1]);
    await waitUntil('every pod, the one in its own process too, applies the L1 factor', async () =>
      factors(a)[0] === 2 && factors(b)[0] === 2 && (await procFactors(proc))[0] === 2 ? true : undefined,
    );
    expect(a.stats().find((s) => s.namespace === 'product')?.tuning.l1TtlMs).toBe(60_000);
    expect(JSON.parse((await stored()).product ?? '{}')).toMatchObject({ l1TtlFactor: 2, l2TtlFactor: 1 });
    // The same condition on the next tick: nothing more (the rule is engaged).
    await missReads(50);
    await published(reads);
    expect((await tick()).decisions).toEqual([]);
    // The pods report the settings in force in their snapshots (the next one each publishes).
    await waitUntil('every snapshot reports the L1 factor', async () => {
      const view = unwrap(await workerCache.fleetView(0));
      const seen = view.pods.map((p) => p.namespaces.find((n) => n.namespace === 'product')?.l1TtlFactor);
      return seen.length === 4 && seen.every((f) => f === 2) ? true : undefined;
    });
  });

  it('a pod that starts later reads the settings in force (in-process and in a process of its own)', async () => {
    const late = await pod('pod-late');
    expect(factors(late)).toEqual([2, 1]);
    await late.close();
    const lateProc = await procPod('proc-late');
    expect(await procFactors(lateProc)).toEqual([2, 1]);
    await lateProc.close();
  });

  it('a dry run reports what it would do and changes nothing', async () => {
    // Now L1 hits: the L1 rule would let go.
    for (let i = 0; i < 60; i++) unwrap(await a.get(product, `m${i % 5}`));
    reads += 60;
    await published(reads);
    const settingsBefore = await stored();
    const stateBefore = await raw.get(keys.tuneState);
    const r = await tick(true);
    expect(r.dryRun).toBe(true);
    expect(r.decisions.map((d) => [d.rule, d.action])).toContainEqual(['l1-hit-rate', 'revert']);
    expect(await stored()).toEqual(settingsBefore);
    expect(await raw.get(keys.tuneState)).toBe(stateBefore);
    expect(factors(a)[0]).toBe(2);
  });

  it('the condition clears: reverted once, on every pod', async () => {
    const r = await tick();
    expect(r.decisions.map((d) => [d.rule, d.action, d.after ?? '-'])).toEqual([
      ['l1-hit-rate', 'revert', 1],
    ]);
    await waitUntil('pods back to factor 1', async () =>
      factors(a)[0] === 1 && factors(b)[0] === 1 ? true : undefined,
    );
  });

  it('memory pressure over 0.85: new L2 writes get a shorter TTL; cleared under 0.75: back', async () => {
    const filler = 'x'.repeat(64 * 1024);
    let n = 0;
    for (;;) {
      const info = await raw.info('memory');
      const used = Number(/used_memory:(\d+)/.exec(info)?.[1]);
      if (used / (8 * 1024 * 1024) > 0.9) break;
      await raw.set(`filler:${n++}`, filler);
    }
    const r = await tick();
    expect(r.pressure).toBeGreaterThan(0.85);
    expect(r.decisions.map((d) => [d.rule, d.action, d.setting ?? '-', d.after ?? '-'])).toEqual([
      ['memory-pressure', 'set', 'l2TtlFactor', 0.5],
    ]);
    await waitUntil('pod b applies the L2 factor', async () => (factors(b)[1] === 0.5 ? true : undefined));
    // A new write on pod b: its L2 TTL is half the definition's (600 s).
    unwrap(await b.set(product, 'fresh-write', { id: 'fresh-write' }));
    const pttl = await raw.pttl(`${PREFIX}product:v1:fresh-write`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300_000);
    // Still high on the next tick: nothing more.
    expect((await tick()).decisions).toEqual([]);
    for (let i = 0; i < n; i++) await raw.unlink(`filler:${i}`);
    await waitUntil('memory down', async () => {
      const used = Number(/used_memory:(\d+)/.exec(await raw.info('memory'))?.[1]);
      return used / (8 * 1024 * 1024) < 0.75 ? true : undefined;
    });
    const back = await tick();
    expect(back.decisions.map((d) => [d.rule, d.action, d.after ?? '-'])).toEqual([
      ['memory-pressure', 'revert', 1],
    ]);
    await waitUntil('pods back to L2 factor 1', async () =>
      factors(a)[1] === 1 && factors(b)[1] === 1 ? true : undefined,
    );
  });

  it('more than 10 invalidations/s: one hot warm of the namespace', async () => {
    for (let i = 0; i < 300; i++) unwrap(await a.delete(product, `m${i}`));
    await waitUntil('the invalidations are published', async () => {
      const v = unwrap(await workerCache.fleetView(0));
      return (v.namespaces.find((x) => x.namespace === 'product')?.deletes ?? 0) >= 300 ? true : undefined;
    });
    const r = await tick();
    expect(r.decisions.map((d) => [d.rule, d.action])).toEqual([['invalidation-rate', 'prewarm']]);
    expect(r.warmJobIds).toHaveLength(1);
    const warm = await jobSettled(jobs, r.warmJobIds[0] as string);
    expect(warm.state).toBe('completed');
    expect(warm.payload).toEqual({ type: 'hot', namespaces: ['product'], top: 1000 });
    // Calm again: the rule lets go, no second warm.
    const calm = await tick();
    expect(calm.decisions.map((d) => [d.rule, d.action])).toEqual([['invalidation-rate', 'clear']]);
    expect(calm.warmJobIds).toEqual([]);
  });

  it('a pinned setting is never changed; unpinned, the tuner takes it back; undo puts back the last change', async () => {
    const store = unwrap(workerCache.tuning);
    await pinSetting(store, 'product', 'l1TtlFactor', 3);
    await waitUntil('pods read the pinned value', async () =>
      factors(a)[0] === 3 && factors(b)[0] === 3 ? true : undefined,
    );
    // High L1 hit rate would revert a factor 3 … but it is pinned.
    for (let i = 0; i < 60; i++) unwrap(await a.get(product, 'hot'));
    reads += 60;
    await published(reads);
    expect((await tick()).decisions.filter((d) => d.setting === 'l1TtlFactor')).toEqual([]);
    expect(factors(a)[0]).toBe(3);
    await unpinSetting(store, 'product', 'l1TtlFactor');
    for (let i = 0; i < 60; i++) unwrap(await a.get(product, 'hot'));
    reads += 60;
    await published(reads);
    const r = await tick();
    expect(r.decisions.map((d) => [d.rule, d.action, d.before, d.after])).toEqual([
      ['l1-hit-rate', 'revert', 3, 1],
    ]);
    const undone = await undoLast(store);
    expect(undone?.after).toBe(1);
    await waitUntil('pods read the undone value', async () =>
      factors(a)[0] === 3 && factors(b)[0] === 3 ? true : undefined,
    );
  });

  it('the audit stream holds one entry per decision (and per operator action), newest first', async () => {
    const store = unwrap(workerCache.tuning);
    const entries = unwrap(await store.audit(1_000));
    const byTuner = entries.filter((e) => e.by.startsWith('tuner:'));
    expect(byTuner).toHaveLength(decisionsSeen.length);
    expect(byTuner.filter((e) => e.mode === 'dry-run').length).toBeGreaterThan(0);
    expect(entries.filter((e) => e.by === 'operator').map((e) => e.action)).toEqual(['undo', 'unpin', 'pin']);
    expect(await raw.xlen(keys.tuneAudit)).toBe(entries.length);
    // Counted on /metrics as well.
    const text = await metrics.metrics();
    expect(text).toMatch(
      /cachefleet_tune_decisions_total\{rule="l1-hit-rate",action="set",mode="applied"\} 1/,
    );
  });

  it('the CLI: tune --dry-run follows the job and prints its decisions; --history prints the audit stream; pin and undo are audited', async () => {
    const env = {
      QUEUE_REDIS_URL: queueRedis.url,
      QUEUE_PREFIX: 'tnq',
      CACHE_REDIS_URL: cacheRedis.url,
      CACHE_KEY_PREFIX: PREFIX,
    };
    const settingsBefore = await stored();
    const dry = await runCli(['tune', '--dry-run'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/dry run: nothing changed; window \d+ s/);
    expect(await stored()).toEqual(settingsBefore);
    const json = await runCli(['tune', '--dry-run', '--json'], env);
    expect(json.code, json.stderr).toBe(0);
    const out = z
      .object({ state: z.literal('completed'), result: tuneResultSchema })
      .parse(JSON.parse(json.stdout));
    expect(out.result.dryRun).toBe(true);
    const pin = await runCli(['tune', 'pin', 'product', 'l2TtlFactor', '0.8'], env);
    expect(pin.code, pin.stderr).toBe(0);
    expect(JSON.parse((await stored()).product ?? '{}')).toMatchObject({ l2TtlFactor: 0.8 });
    const history = await runCli(['tune', '--history', '--limit', '3'], env);
    expect(history.code, history.stderr).toBe(0);
    const rows = history.stdout.trim().split('\n');
    expect(rows).toHaveLength(4); // header + 3
    expect(rows[1]).toMatch(/product\s+pin\s+pin\s+l2TtlFactor\s+1\s+0\.8\s+applied\s+operator/);
    const bad = await runCli(['tune', 'pin', 'product', 'ttl', '2'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/E_CLI_USAGE/);
    // Five CLI processes (each a Node start with tsx), two of them following a job to its end: 30 s
    // was not enough on a loaded 2-core machine (a CI run timed out at 30 s with every step passing).
  }, 120_000);
});
