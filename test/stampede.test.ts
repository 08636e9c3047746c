/**
 * DESIGN invariant 3 — one loader call per key across the fleet. Real processes ("pods", see
 * fixtures/pod.ts), one private redis-server, no mocks: every pod fires its share of reads at the
 * same wall-clock instant and the loader's INCR counters in Redis say how often the source of
 * truth was hit.
 */
import { connect, createServer, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorInfo, type Pod, startPod as startSharedPod } from './fixtures/pods.js';
import { type RedisProcess, startRedis } from './helpers/index.js';

const PODS = 8;
const PER_POD = 125;
const PREFIX = `st${Date.now()}:`;
const COUNTERS = `loads:${PREFIX}`;
const NS = 'item';

const Value = z.object({ id: z.string(), n: z.number(), by: z.string() });
const BurstReply = z.object({
  ok: z.literal(true),
  n: z.number(),
  okCount: z.number(),
  errCount: z.number(),
  values: z.array(z.object({ value: z.unknown(), count: z.number() })),
  errors: z.array(ErrorInfo),
  ms: z.number(),
});
const GetReply = z.object({ ok: z.literal(true), value: Value });
const GetManyReply = z.object({ ok: z.literal(true), value: z.array(Value) });

/** A pod of this file: its prefix, namespace and load counters. */
function startPod(options: {
  readonly redisUrl: string;
  readonly role: string;
  readonly counterUrl?: string;
}) {
  return startSharedPod({ ...options, prefix: PREFIX, ns: NS, counterPrefix: COUNTERS });
}

/** A TCP proxy that delays client → Redis bytes (order kept), the replies pass at once. */
async function startLatencyProxy(targetPort: number, delayMs: number) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk) => {
      // Equal durations fire in creation order, so the byte stream is not reordered.
      setTimeout(() => {
        if (!upstream.destroyed) upstream.write(chunk);
      }, delayMs);
    });
    upstream.on('data', (chunk) => {
      if (!client.destroyed) client.write(chunk);
    });
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    url: `redis://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

let redis: RedisProcess | undefined;
let raw: Redis | undefined;
const pods: Pod[] = [];
const extraPods: Pod[] = [];
const proxies: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
  const t0 = performance.now();
  const started = await Promise.allSettled(
    Array.from({ length: PODS }, (_, i) => startPod({ redisUrl: redis?.url ?? '', role: `pod${i}` })),
  );
  for (const s of started) if (s.status === 'fulfilled') pods.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  console.log(`${PODS} pods ready in ${Math.round(performance.now() - t0)} ms`);
});

afterAll(async () => {
  await Promise.allSettled([...pods, ...extraPods].map((p) => p.close()));
  await Promise.allSettled(proxies.map((p) => p.close()));
  raw?.disconnect();
  await redis?.stop();
});

function client(): Redis {
  if (!raw) throw new Error('no redis');
  return raw;
}

async function loads(id: string): Promise<number> {
  return Number((await client().get(COUNTERS + id)) ?? 0);
}

/** When every pod fires: a little ahead, so all pods have the request before it is due. */
function soon(ms = 300): number {
  return Date.now() + ms;
}

describe('stampede: one load per key across the fleet (DESIGN invariant 3)', () => {
  async function stampede(id: string, loadMs: number): Promise<void> {
    expect(await loads(id)).toBe(0);
    const at = soon();
    const t0 = performance.now();
    // All requests are written in the same tick and carry the same firing instant.
    const replies = await Promise.all(
      pods.map((p) => p.request({ cmd: 'burst', id, n: PER_POD, at, loadMs })),
    );
    const bursts = replies.map((r) => BurstReply.parse(r));
    const elapsed = performance.now() - t0;
    const total = bursts.reduce((sum, b) => sum + b.okCount, 0);
    const errors = bursts.flatMap((b) => b.errors);
    const values = bursts.flatMap((b) => b.values);
    console.log(
      `stampede ${id} (loader ${loadMs} ms): ${total}/${PODS * PER_POD} ok in ${Math.round(elapsed)} ms; ` +
        `per pod ${bursts.map((b) => Math.round(b.ms)).join('/')} ms; loads=${await loads(id)}`,
    );
    expect(errors).toEqual([]);
    expect(total).toBe(PODS * PER_POD);
    // Every one of the 1,000 results carries the one loaded value.
    const first = values[0]?.value;
    expect(Value.parse(first)).toMatchObject({ id, n: 1 });
    for (const v of values) expect(v.value).toEqual(first);
    expect(values.reduce((sum, v) => sum + v.count, 0)).toBe(PODS * PER_POD);
    expect(await loads(id)).toBe(1);
  }

  it('1,000 concurrent gets of one missing key from 8 pods → exactly 1 loader call (loader 50 ms)', async () => {
    await stampede('hot-1', 50);
  });

  it('1,000 concurrent gets of one missing key from 8 pods → exactly 1 loader call (loader 300 ms)', async () => {
    await stampede('hot-2', 300);
  });

  it('getMany on overlapping id sets from 4 pods → each id loaded exactly once across the fleet', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `g${i}`);
    // Pod i asks for 30 of the 40 ids starting at 10·i: every id is wanted by 3 pods, in different orders.
    const sets = [0, 1, 2, 3].map((i) => {
      const mine = Array.from({ length: 30 }, (_, j) => ids[(10 * i + j) % ids.length] as string);
      return i % 2 === 0 ? mine : mine.reverse();
    });
    const group = pods.slice(0, 4);
    const at = soon();
    const replies = await Promise.all(
      group.map((p, i) => p.request({ cmd: 'getMany', ids: sets[i], at, loadMs: 50 })),
    );
    const seen = new Map<string, unknown>();
    replies.forEach((reply, i) => {
      expect(reply.error).toBeUndefined();
      const values = GetManyReply.parse(reply).value;
      const asked = sets[i] ?? [];
      expect(values.map((v) => v.id)).toEqual(asked);
      values.forEach((v) => {
        const before = seen.get(v.id);
        if (before === undefined) seen.set(v.id, v);
        else expect(v, `pods disagree on ${v.id}`).toEqual(before);
      });
    });
    const counts = await Promise.all(ids.map(async (id) => [id, await loads(id)] as const));
    const twice = counts.filter(([, n]) => n !== 1);
    console.log(
      `getMany: ${ids.length} ids, loadMany calls fleet-wide=${await client().get(`${COUNTERS}__loadMany`)}, ` +
        `ids not loaded exactly once: ${JSON.stringify(twice)}`,
    );
    expect(twice).toEqual([]);
  });
});

/**
 * The window that matters for invariant 3: a pod misses L2, then asks for the fleet lock after the
 * holder has written L2 and released the lock. A latency proxy in front of one pod (300 ms on the
 * way to Redis) opens that window wide so the race happens every time instead of by luck.
 */
describe('stampede with a slow link: the lock winner re-checks L2 before loading', () => {
  const DELAY_MS = 300;
  const LOAD_MS = 450;
  let slow: Pod | undefined;

  beforeAll(async () => {
    if (!redis) throw new Error('no redis');
    const proxy = await startLatencyProxy(redis.port, DELAY_MS);
    proxies.push(proxy);
    // The counter goes straight to Redis: only the cache's own traffic is slow.
    slow = await startPod({ redisUrl: proxy.url, counterUrl: redis.url, role: 'slow' });
    extraPods.push(slow);
  });

  function pair(): [Pod, Pod] {
    const fast = pods[0];
    if (!fast || !slow) throw new Error('pods not started');
    return [fast, slow];
  }

  it('get: a pod that missed L2 while the holder was loading does not load again', async () => {
    const [fast, lagging] = pair();
    const at = soon();
    const [a, b] = await Promise.all([
      fast.request({ cmd: 'get', id: 'slow-get', at, loadMs: LOAD_MS }),
      lagging.request({ cmd: 'get', id: 'slow-get', at, loadMs: LOAD_MS }),
    ]);
    expect(GetReply.parse(a).value).toEqual(GetReply.parse(b).value);
    expect(await loads('slow-get')).toBe(1);
  });

  it('getMany: a pod that missed L2 while the holder was loading does not load again', async () => {
    const [fast, lagging] = pair();
    const at = soon();
    const [a, b] = await Promise.all([
      fast.request({ cmd: 'getMany', ids: ['slow-many'], at, loadMs: LOAD_MS }),
      lagging.request({ cmd: 'getMany', ids: ['slow-many'], at, loadMs: LOAD_MS }),
    ]);
    const va = GetManyReply.parse(a).value;
    const vb = GetManyReply.parse(b).value;
    console.log(`slow getMany: fast pod got ${JSON.stringify(va)}, slow pod got ${JSON.stringify(vb)}`);
    // Proves the batch path re-reads L2 for the ids whose lock it wins, as the single-key path does:
    // the lagging pod takes the holder's value instead of calling loadMany a second time.
    expect(await loads('slow-many')).toBe(1);
    expect(vb).toEqual(va);
  });
});
