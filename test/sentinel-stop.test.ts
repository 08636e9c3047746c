/**
 * Issue 9, invariant 2, short form (the long one is `npm run test:chaos`): the Sentinel master
 * SIGSTOPped for 20 s while two pods write and read. A private Sentinel set (3 Sentinels, a master
 * and 2 replicas, down-after 1 s) whose data nodes run `min-replicas-to-write 1` (as the shipped
 * queue Redis does), and two caches in this process standing for two pods: pod A writes (the source
 * of truth, a Map, then `cache.delete`, as the API's PATCH does), pod B reads.
 *
 * Checked: no read fails (a fault is never a user error); no read returns a value older than a
 * write acknowledged more than `bus.disconnectedTtlMs` before it began (an acknowledged
 * invalidation lost in the failover would show here as a stale value kept past the bound); writes
 * are acknowledged again before the stopped master wakes (a replica was promoted, the writes did
 * not wait for the old master); and after it wakes (it still believes it is master, and pod
 * connections to it still exist) nothing it accepts is lost: `min-replicas-to-write` makes it
 * refuse writes once its replicas are gone, until Sentinel demotes it.
 */
import { type Cache, createCache, defineNamespace } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { type SentinelSet, startSentinelSet, waitUntil } from './helpers/index.js';

const BOUND_MS = 5_000;
const STOP_MS = 20_000;
const IDS = Array.from({ length: 10 }, (_, i) => String(i));

const source = new Map<string, number>(IDS.map((id) => [id, 0]));
const items = defineNamespace({
  name: 'stopitem',
  version: 1,
  ttl: { l1: 600, l2: 600 },
  schema: z.object({ n: z.number() }),
  load: async (id) => ({ n: source.get(id) ?? 0 }),
});

let set: SentinelSet;
const caches: Cache[] = [];

beforeAll(async () => {
  set = await startSentinelSet({
    replicas: 2,
    args: ['--min-replicas-to-write', '1', '--min-replicas-max-lag', '5'],
  });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(caches.map((c) => c.close()));
  await set?.stop();
});

function pod(): Cache {
  const c = createCache({
    impl: 'tiered',
    redis: { mode: 'sentinel', sentinels: [...set.sentinels], name: set.name },
    prefix: 'stop:',
    hotKeys: { enabled: false },
    telemetry: { enabled: false },
  });
  caches.push(c);
  return c;
}

it('the master SIGSTOPped 20 s under writes and reads: no failed read, nothing stale past the bound', async () => {
  const a = pod();
  const b = pod();
  await Promise.all([a.start(), b.start()]);
  /** Per id, each acknowledged write: its value and when the delete resolved ok. */
  const acks = new Map<string, { n: number; at: number }[]>(IDS.map((id) => [id, []]));
  let n = 0;
  let stop = false;
  let reads = 0;
  const failedReads: string[] = [];
  const stalePastBound: string[] = [];
  let ackedDuringStop = 0;
  let stoppedAt = Number.POSITIVE_INFINITY;
  let resumedAt = Number.POSITIVE_INFINITY;

  const writer = async () => {
    while (!stop) {
      const id = IDS[n % IDS.length] as string;
      source.set(id, ++n);
      const value = n;
      const r = await a.delete(items, id);
      const at = performance.now();
      if (r.ok) {
        acks.get(id)?.push({ n: value, at });
        if (at > stoppedAt && at < resumedAt) ackedDuringStop++;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const reader = async () => {
    while (!stop) {
      // L1 hits resolve without I/O: a pause each round lets timers run and keeps a core free.
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (const id of IDS) {
        const began = performance.now();
        const r = await b.get(items, id);
        reads++;
        if (!r.ok || r.value === undefined) {
          failedReads.push(`${id}: ${r.ok ? 'undefined' : r.error.code}`);
          continue;
        }
        const newest = (acks.get(id) ?? []).filter((x) => x.at < began - BOUND_MS).at(-1);
        if (newest !== undefined && r.value.n < newest.n)
          stalePastBound.push(
            `${id}: read ${r.value.n}, ${Math.round(began - newest.at)} ms after ${newest.n}`,
          );
      }
    }
  };
  const load = [writer(), reader(), reader()];
  try {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const master = await set.currentMasterProcess();
    const before = await set.currentMaster();
    master.pause();
    stoppedAt = performance.now();
    try {
      await set.waitForMaster(before, 15_000);
      await waitUntil('a write acknowledged through the new master', async () =>
        ackedDuringStop > 0 ? true : undefined,
      );
      const left = STOP_MS - (performance.now() - stoppedAt);
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    } finally {
      master.resume();
      resumedAt = performance.now();
    }
    await set.waitSettled();
    // The load goes on past the bound, so a lost acknowledged invalidation would be seen stale.
    await new Promise((resolve) => setTimeout(resolve, BOUND_MS + 2_000));
  } finally {
    stop = true;
    await Promise.all(load);
  }
  expect(failedReads).toEqual([]);
  expect(stalePastBound).toEqual([]);
  expect(ackedDuringStop, 'writes acknowledged before the stopped master woke').toBeGreaterThan(0);
  // Every id's final value, read fresh through pod B after the bound, is the last acknowledged.
  for (const id of IDS) {
    const last = acks.get(id)?.at(-1)?.n ?? 0;
    const r = await b.get(items, id);
    expect(r.ok && r.value !== undefined && r.value.n >= last, `id ${id}: last acknowledged ${last}`).toBe(
      true,
    );
  }
  console.info(
    `sentinel stop: ${reads} reads, 0 failed, 0 stale past ${BOUND_MS} ms; ${n} writes, ${ackedDuringStop} acknowledged while the old master was stopped`,
  );
}, 120_000);
