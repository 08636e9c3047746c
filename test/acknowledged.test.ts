/**
 * Issue 17, part 1 — an acknowledged invalidation reaches every pod's L1 even when the writing pod's
 * cache connection fails at the moment of the write (DESIGN invariant 2). Real processes, one private
 * redis-server, no mocks: a writer pod (A) and two readers (B, C) from test/fixtures/pod.ts. The
 * "database write" is the new version in the source key the pods' loader reads; then A's cache
 * connection is killed and A invalidates at once, as `PATCH /products/:id` does after its UPDATE.
 *
 * Before the fix A kept the delete as pending, resolved without publishing, and the replay wrote
 * the tombstone but published nothing: B and C served the old version until their L1 TTL (60 s).
 *
 * 1. `CLIENT KILL ID` of `cachefleet:cache:<A>` between the source write and the delete (the
 *    issue's repro, several rounds): the delete resolves ok, and no read that B or C start more than
 *    BUS_SLACK_MS after that answer returns the old version.
 * 2. A's cache connection kept out (a gate refuses its reconnects) for longer than
 *    bus.announceWaitMs: the delete reports the fault; B and C may serve the old version while A
 *    cannot reach Redis (the stated bound), and once A is back they serve the new one within
 *    RECOVERY_MS, never the old one again.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { type BusGate, startBusGate } from './fixtures/bus-gate.js';
import { ok, type Pod, podAt, startPods } from './fixtures/pods.js';
import { clientIds, delay, type RedisProcess, startRedis, waitUntil } from './helpers/index.js';

const RUN = `ack${Date.now()}`;
const PREFIX = `${RUN}:`;
const SOURCE = `src:${PREFIX}`;
const NS = 'item';
/** Bus delivery after the answer, on 2 cores shared with other jobs (measured: a few ms). */
const BUS_SLACK_MS = 1_000;
/** After A's connection is let back in: ioredis back-off (≤ 2 s) + replay + bus, with slack. */
const RECOVERY_MS = 6_000;
/** How long the readers keep checking after the answer (the old value lived 60 s in L1 before). */
const WATCH_MS = 2_500;

const Value = z.object({ id: z.string(), ver: z.number() });
const ReadReply = z.object({
  ok: z.literal(true),
  value: Value,
  from: z.enum(['l1', 'l2', 'loader']),
});
const Tiers = z.object({
  tiers: z.object({
    l2: z.object({ available: z.boolean(), pendingDeletes: z.number(), replayedDeletes: z.number() }),
  }),
});

let redis: RedisProcess | undefined;
let raw: Redis | undefined;
let gate: BusGate | undefined;
const pods: Pod[] = [];

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { maxRetriesPerRequest: 2 });
  raw.on('error', () => {});
  gate = await startBusGate(redis.port);
  const common = { counterUrl: redis.url, prefix: PREFIX, ns: NS, sourcePrefix: SOURCE, loadMs: 5 };
  await startPods(
    [
      // A reaches Redis through the gate, so test 2 can keep its cache connection out.
      { ...common, redisUrl: gate.url, role: 'writer', podId: `${RUN}-a` },
      { ...common, redisUrl: redis.url, role: 'reader-b', podId: `${RUN}-b` },
      { ...common, redisUrl: redis.url, role: 'reader-c', podId: `${RUN}-c` },
    ],
    pods,
  );
});

afterAll(async () => {
  gate?.open();
  await Promise.allSettled(pods.splice(0).map((p) => p.close()));
  await gate?.close();
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

async function read(p: Pod, id: string): Promise<z.infer<typeof ReadReply>> {
  return ReadReply.parse(await ok(p, { cmd: 'read', id }));
}

async function l2Of(p: Pod): Promise<z.infer<typeof Tiers>['tiers']['l2']> {
  return Tiers.parse(await ok(p, { cmd: 'status' })).tiers.l2;
}

const cacheConnection = `cachefleet:cache:${RUN}-a`;

/** The Redis client id of the connection with this name (CLIENT LIST), if connected. */
async function clientIdByName(name: string): Promise<string | undefined> {
  return (await clientIds(client(), (n) => n === name))[0];
}

/** Puts version `ver` of `id` into B's and C's L1 (the second read must come from L1). */
async function warmReaders(id: string, ver: number): Promise<void> {
  for (const p of [pod(1), pod(2)]) {
    expect((await read(p, id)).value.ver).toBe(ver);
    const again = await read(p, id);
    expect(again.from, `${p.role} holds ${id} in L1`).toBe('l1');
    expect(again.value.ver).toBe(ver);
  }
}

interface Seen {
  readonly who: string;
  /** When the read was sent, ms after the delete's answer. */
  readonly at: number;
  readonly ver: number;
  readonly from: string;
}

/** B and C read `id` back to back for `ms`; every read with when it started (after `t0`). */
async function watchReaders(id: string, t0: number, ms: number): Promise<Seen[]> {
  const seen: Seen[] = [];
  await Promise.all(
    [pod(1), pod(2)].map(async (p) => {
      while (performance.now() - t0 < ms) {
        const at = performance.now() - t0;
        const r = await read(p, id);
        seen.push({ who: p.role, at, ver: r.value.ver, from: r.from });
        await delay(20);
      }
    }),
  );
  return seen;
}

it('1. the writer’s cache connection killed between the source write and the delete: every pod drops the old value', async () => {
  const rounds = 5;
  for (let round = 1; round <= rounds; round++) {
    const id = `p50${round}`;
    await warmReaders(id, 0);
    const before = (await l2Of(pod(0))).replayedDeletes;

    await client().set(SOURCE + id, String(round)); // the database write
    const killed = await clientIdByName(cacheConnection);
    if (killed === undefined) throw new Error(`no ${cacheConnection}`);
    expect(await client().client('KILL', 'ID', killed)).toBe(1);
    const reply = await pod(0).request({ cmd: 'delete', ids: [id] });
    const answered = performance.now();

    const seen = await watchReaders(id, answered, WATCH_MS);
    const stale = seen.filter((s) => s.ver !== round);
    console.log(
      `1. round ${round}: delete ${reply.ok ? 'ok' : reply.error?.code}; ${seen.length} reads after ` +
        `the answer, ${stale.length} stale` +
        (stale.length > 0 ? ` (last at ${Math.round(Math.max(...stale.map((s) => s.at)))} ms)` : ''),
    );
    expect(stale.filter((s) => s.at > BUS_SLACK_MS)).toEqual([]);
    expect(seen.filter((s) => s.ver === round).length).toBeGreaterThan(0);
    // The blip is shorter than bus.announceWaitMs (1 s): the delete waited for the replay.
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    // The kill did hit the delete: it went through the pending list and its replay.
    const after = await l2Of(pod(0));
    expect(after.replayedDeletes, `round ${round}: the delete was replayed`).toBe(before + 1);
    expect(after.pendingDeletes).toBe(0);
  }
});

it('2. the writer cut off from Redis past announceWaitMs: the fault is reported, and the invalidation reaches every pod once it is back', async () => {
  const g = gate;
  if (!g) throw new Error('no gate');
  const id = 'p600';
  await warmReaders(id, 0);
  const before = (await l2Of(pod(0))).replayedDeletes;

  await waitUntil('A’s cache connection', async () =>
    (await clientIdByName(cacheConnection)) === undefined ? undefined : true,
  );
  await client().set(SOURCE + id, '7');
  g.block('refuse', cacheConnection);
  let answered: number;
  try {
    expect(g.cut(cacheConnection)).toBe(1);
    const reply = await pod(0).request({ cmd: 'delete', ids: [id] });
    answered = performance.now();
    // Not acknowledged: Redis could not take it within bus.announceWaitMs.
    expect(reply.ok).toBe(false);
    expect(reply.error?.code).toBe('E_CACHE_L2_UNAVAILABLE');
    expect((await l2Of(pod(0))).pendingDeletes).toBe(1);
    // While A cannot reach Redis, the others cannot know: they still serve their L1 copy.
    expect((await read(pod(1), id)).value.ver).toBe(0);
  } finally {
    g.open();
  }
  const opened = performance.now();
  const fresh = await waitUntil(
    'B and C to serve the new version',
    async (note) => {
      const vers = [(await read(pod(1), id)).value.ver, (await read(pod(2), id)).value.ver];
      note(`versions ${vers.join(', ')}`);
      return vers.every((v) => v === 7) ? performance.now() : undefined;
    },
    { timeoutMs: RECOVERY_MS, intervalMs: 20 },
  );
  console.log(
    `2. answered (fault) ${Math.round(opened - answered)} ms before the gate opened; ` +
      `new version everywhere ${Math.round(fresh - opened)} ms after it opened`,
  );
  const seen = await watchReaders(id, fresh, 1_000);
  expect(seen.filter((s) => s.ver !== 7)).toEqual([]);
  const after = await l2Of(pod(0));
  expect(after.replayedDeletes).toBe(before + 1);
  expect(after.pendingDeletes).toBe(0);
});
