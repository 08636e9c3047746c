/**
 * Fleet-acknowledged invalidation (issue 15, docs/design-fleet-ack.md) across processes: one private
 * redis-server, 4 pod processes (fixtures/pod.ts, telemetry heartbeat every second), no mocks.
 *
 * With `{ wait: 'fleet' }` an invalidation resolves only once every other live pod has applied it to
 * its L1. Each test stalls one pod's event loop (a busy loop, as a long GC pause) across the call, so
 * a call that did not wait would resolve before that pod applied the event: every pod's record of when
 * it applied the event must be at or before the moment the call resolved, and no pod's L1 may still
 * hold an invalidated id. A SIGSTOPped pod makes the call time out naming it; when it runs again its
 * L1 of the namespace is dropped (the fence), ids that were not invalidated included.
 */

import { cacheKeys } from '@cachefleet/redis';
import { type Cache, type CacheOptions, createCache, defineNamespace } from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ok, type Pod, podAt, startPods } from './fixtures/pods.js';
import { type RedisProcess, startRedis, waitUntil } from './helpers/index.js';

const PODS = 4;
/** The pod whose event loop each test stalls across the call (pod 0 calls). */
const STALLED = 2;
/** The pod the timeout test SIGSTOPs. */
const STOPPED = 3;
const RUN = `ack${Date.now()}`;
const PREFIX = `${RUN}:`;
const KEYS = cacheKeys(PREFIX);
const SOURCE = `src:${PREFIX}`;
const NS = 'item';
const podId = (i: number) => `${RUN}-pod${i}`;

const Value = z.object({ id: z.string(), ver: z.number() });
const ReadReply = z.object({ ok: z.literal(true), value: Value, from: z.enum(['l1', 'l2', 'loader']) });
const Fleet = z.object({
  pods: z.array(z.string()),
  acked: z.array(z.string()),
  missing: z.array(z.string()),
  ms: z.number(),
});
const WaitReply = z.object({
  ok: z.literal(true),
  value: z.object({ value: z.number(), fleet: Fleet }),
  resolvedAt: z.number(),
});
const AppliedReply = z.object({
  events: z.array(z.object({ at: z.number(), event: z.looseObject({ ack: z.string().optional() }) })),
});
const PeekReply = z.object({ held: z.array(z.boolean()) });
const BusCounters = z.object({
  stats: z.object({ acks: z.number(), waits: z.number(), timeouts: z.number(), fenced: z.number() }),
});

let redis: RedisProcess | undefined;
let raw: Redis | undefined;
const pods: Pod[] = [];

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 2 });
  raw.on('error', () => {});
  const url = redis.url;
  await startPods(
    Array.from({ length: PODS }, (_, i) => ({
      redisUrl: url,
      role: `pod${i}`,
      podId: podId(i),
      prefix: PREFIX,
      ns: NS,
      telemetryS: 1,
    })),
    pods,
  );
  // Every pod is in the heartbeat (each publishes its snapshot at start).
  await waitUntil('every pod in the heartbeat', async () => {
    const live = await client().zrangebyscore(KEYS.pods, Date.now(), '+inf');
    return live.length === PODS ? live : undefined;
  });
});

afterAll(async () => {
  await Promise.allSettled(pods.splice(0).map((p) => p.close()));
  raw?.disconnect();
  await redis?.stop();
});

function client(): Redis {
  if (!raw) throw new Error('no redis');
  return raw;
}

function pod(i: number): Pod {
  return podAt(pods, i);
}

const others = (caller: number) =>
  Array.from({ length: PODS }, (_, i) => i)
    .filter((i) => i !== caller)
    .map(podId)
    .sort();

async function generation(): Promise<number> {
  return Number((await client().hget(KEYS.generations, NS)) ?? 0);
}

async function peek(p: Pod, ids: readonly string[]): Promise<boolean[]> {
  return PeekReply.parse(await ok(p, { cmd: 'peek', ids, generation: await generation() })).held;
}

/** Every pod reads each id twice: the second read is an L1 hit of version `ver`. */
async function warm(ids: readonly string[], ver: number): Promise<void> {
  await Promise.all(
    pods.map(async (p) => {
      for (const id of ids) {
        await ok(p, { cmd: 'read', id });
        const second = ReadReply.parse(await ok(p, { cmd: 'read', id }));
        expect(second.from, `${p.role} second read of ${id}`).toBe('l1');
        expect(second.value.ver).toBe(ver);
      }
    }),
  );
}

async function setSource(ids: readonly string[], ver: number): Promise<void> {
  await client().mset(...ids.flatMap((id) => [SOURCE + id, String(ver)]));
}

interface Kind {
  readonly name: string;
  readonly ids: readonly string[];
  readonly request: Record<string, unknown>;
}

// Values carry the tag `group:<last character of the id>`. The namespace comes last: it moves the generation.
const KINDS: readonly Kind[] = [
  { name: 'delete', ids: ['d-1a'], request: { cmd: 'delete', ids: ['d-1a'] } },
  { name: 'tags', ids: ['t-1x', 't-2x'], request: { cmd: 'invalidateTags', tags: ['group:x'] } },
  { name: 'pattern', ids: ['p-1b', 'p-2b'], request: { cmd: 'invalidatePattern', pattern: 'p-*' } },
  { name: 'namespace', ids: ['n-1c'], request: { cmd: 'invalidateNamespace' } },
];

describe('fleet-acknowledged invalidation', () => {
  it('without the option, an invalidation resolves what it always did; junk options are refused', async () => {
    await warm(['j-1d'], 0);
    const plain = await ok(pod(0), { cmd: 'delete', ids: ['j-1d'] });
    expect(plain.value).toBeTypeOf('number');
    for (const wait of [
      { wait: 'all' },
      { wait: 'fleet', timeoutMs: 0 },
      { wait: 'fleet', timeoutMs: 'soon' },
      { wait: 'fleet', extra: 1 },
    ]) {
      const r = await pod(0).request({ cmd: 'delete', ids: ['j-1d'], wait });
      expect(r.ok, JSON.stringify(wait)).toBe(false);
      expect(r.error?.code).toBe('E_CACHE_INVALID_OPTION');
    }
    const r = await pod(0).request({ cmd: 'invalidateTags', tags: ['group:d'], wait: { wait: 'pod' } });
    expect(r.error?.code).toBe('E_CACHE_INVALID_OPTION');
  });

  for (const [k, kind] of KINDS.entries()) {
    it(`${kind.name}: resolves only after every other live pod applied it to its L1`, async () => {
      const ver = 10 + k;
      await setSource(kind.ids, ver - 1);
      await warm(kind.ids, ver - 1);
      await setSource(kind.ids, ver);
      // Pod STALLED's event loop is busy for 400 ms from `at`; the call starts 50 ms into that.
      const at = Date.now() + 150;
      const [, reply] = await Promise.all([
        ok(pod(STALLED), { cmd: 'block', ms: 400, at }),
        (async () => {
          await new Promise((resolve) => setTimeout(resolve, at + 50 - Date.now()));
          return WaitReply.parse(
            await ok(pod(0), { ...kind.request, wait: { wait: 'fleet', timeoutMs: 10_000 } }),
          );
        })(),
      ]);
      const { fleet } = reply.value;
      expect([...fleet.pods].sort()).toEqual(others(0));
      expect([...fleet.acked].sort()).toEqual(others(0));
      expect(fleet.missing).toEqual([]);
      for (let i = 1; i < PODS; i++) {
        const { events } = AppliedReply.parse(await ok(pod(i), { cmd: 'applied' }));
        const acked = events.filter((e) => e.event.ack !== undefined);
        const last = acked[acked.length - 1];
        expect(last, `pod${i} applied the event`).toBeDefined();
        // Applied (L1 removal done, then onEvent) no later than the call resolved.
        expect(last?.at, `pod${i} applied it before the call resolved`).toBeLessThanOrEqual(reply.resolvedAt);
        expect(await peek(pod(i), kind.ids), `pod${i} L1`).toEqual(kind.ids.map(() => false));
      }
      // Read-your-writes on every pod.
      for (const p of pods) {
        for (const id of kind.ids) {
          const r = ReadReply.parse(await ok(p, { cmd: 'read', id }));
          expect(r.value.ver, `${p.role} ${id}`).toBe(ver);
        }
      }
    });

    if (kind.name === 'pattern') {
      // Before the namespace test (generation 0 keeps the keys simple to read).
      it('a SIGSTOPped pod: the call times out naming it, and once it runs again its L1 of the namespace is dropped', async () => {
        const ids = ['s-1e', 's-2e'];
        await warm(ids, 0);
        await setSource(['s-1e'], 1);
        const stopped = pod(STOPPED);
        process.kill(stopped.pid, 'SIGSTOP');
        let reply: z.infer<typeof WaitReply>;
        let fences: string[];
        try {
          reply = WaitReply.parse(
            await ok(pod(0), { cmd: 'delete', ids: ['s-1e'], wait: { wait: 'fleet', timeoutMs: 800 } }),
          );
          fences = await client().smembers(KEYS.fenced(podId(STOPPED)));
        } finally {
          process.kill(stopped.pid, 'SIGCONT');
        }
        expect(reply.value.fleet.missing).toEqual([podId(STOPPED)]);
        expect([...reply.value.fleet.acked].sort()).toEqual(others(0).filter((p) => p !== podId(STOPPED)));
        expect(fences).toEqual([NS]);
        // s-2e was not invalidated: only the fence removes it, and only from the stopped pod.
        await waitUntil(
          'the stopped pod dropped the fenced namespace from its L1',
          async () => ((await peek(stopped, ['s-2e']))[0] === false ? true : undefined),
          { timeoutMs: 15_000, intervalMs: 100 },
        );
        expect(await peek(pod(1), ['s-2e'])).toEqual([true]);
        expect(await client().exists(KEYS.fenced(podId(STOPPED)))).toBe(0);
        const r = ReadReply.parse(await ok(stopped, { cmd: 'read', id: 's-1e' }));
        expect(r.value.ver).toBe(1);
        // The counters behind cachefleet_cache_bus_events_total{outcome=acks|waits|timeouts|fenced}.
        const statsOf = async (p: Pod) => BusCounters.parse(await ok(p, { cmd: 'bus' })).stats;
        expect((await statsOf(stopped)).fenced).toBe(1);
        const caller = await statsOf(pod(0));
        expect(caller.timeouts).toBe(1);
        expect(caller.waits).toBeGreaterThan(1);
        expect((await statsOf(pod(1))).acks).toBeGreaterThanOrEqual(caller.waits);
      });
    }
  }
});

describe('fleet-acknowledged invalidation: the cases with nobody to wait for', () => {
  const items = defineNamespace({
    name: 'solo',
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: Value,
    load: async (id) => ({ id, ver: 0 }),
  });
  const FLEET = { wait: 'fleet', timeoutMs: 60_000 } as const;

  /** Runs `body` with a started cache of these options, closed after. */
  async function withCache(options: CacheOptions, body: (cache: Cache) => Promise<void>): Promise<void> {
    const cache = createCache(options);
    await cache.start();
    try {
      await body(cache);
    } finally {
      await cache.close();
    }
  }
  const tiered = (): CacheOptions => ({
    impl: 'tiered',
    redis: { mode: 'single', url: redis?.url ?? '' },
    prefix: PREFIX,
  });

  it('without a bus (impl memory) it resolves at once with no pods', () =>
    withCache({ impl: 'memory' }, async (cache) => {
      const r = await cache.delete(items, 'a', FLEET);
      expect(r.ok && r.value.fleet).toMatchObject({ pods: [], acked: [], missing: [] });
      expect(r.ok && r.value.value).toBeTypeOf('number');
    }));

  it('an invalidation of nothing sends no event and does not wait out the timeout', () =>
    withCache({ ...tiered(), bus: { podId: `${RUN}-solo` } }, async (cache) => {
      // 60 s timeouts: waiting for an event never sent would outlast the test's own timeout.
      const none = await cache.delete(items, FLEET);
      expect(none.ok && none.value.fleet.pods).toEqual([]);
      const noTags = await cache.invalidateTags(items, [], FLEET);
      expect(noTags.ok && noTags.value.value).toBe(0);
    }));

  it('with telemetry off there is no membership to wait on: E_CACHE_CONFIG', () =>
    withCache({ ...tiered(), telemetry: { enabled: false } }, async (cache) => {
      const r = await cache.invalidateNamespace(items, FLEET);
      expect(r.ok ? 'ok' : r.error.code).toBe('E_CACHE_CONFIG');
    }));
});
