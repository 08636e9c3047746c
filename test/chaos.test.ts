/**
 * DESIGN invariant 1 — cache faults never become user errors. One cache in this process, a private
 * redis-server per test that the test kills (SIGKILL), hangs (SIGSTOP) and restarts. Every read must
 * come back ok with the loader's value, within a bound, and the cache must recover by itself.
 */

import { cacheKeys } from '@cachefleet/redis';
import {
  type Cache,
  type CacheOptions,
  createCache,
  defineNamespace,
  type Namespace,
  type RedisStore,
  TieredStore,
} from '@cachefleet/tiered-cache';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  delay,
  liveValue,
  type RedisProcess,
  type StartRedisOptions,
  startRedis,
  waitUntil,
} from './helpers/index.js';

const Item = z.object({ id: z.string(), n: z.number() });
type Item = z.infer<typeof Item>;

// ---- resources of the running test, released in afterEach (and afterAll as a backstop) ----
const servers: RedisProcess[] = [];
const caches: Cache[] = [];
const clients: Redis[] = [];

async function cleanup(): Promise<void> {
  await Promise.allSettled(caches.splice(0).map((c) => c.close()));
  for (const c of clients.splice(0)) c.disconnect();
  await Promise.allSettled(servers.splice(0).map((s) => s.stop()));
}
afterEach(cleanup);
afterAll(cleanup);

async function server(options: StartRedisOptions = {}): Promise<RedisProcess> {
  const s = await startRedis(options);
  servers.push(s);
  return s;
}

let seq = 0;
function newPrefix(): string {
  return `chaos${Date.now()}-${++seq}:`;
}

function cacheFor(url: string, prefix: string, extra: Partial<CacheOptions> = {}): Cache {
  const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url }, prefix, ...extra });
  caches.push(cache);
  return cache;
}

function rawClient(url: string): Redis {
  const c = new Redis(url, { maxRetriesPerRequest: 2 });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** A namespace whose loader answers `{ id, n: 1 }` after `loadMs` and counts its calls. */
function itemNamespace(options: { loadMs?: number; l1Ttl?: number } = {}) {
  const calls = { load: 0 };
  const ns = defineNamespace<Item>({
    name: `chaos${++seq}`,
    version: 1,
    ttl: { l1: options.l1Ttl ?? 60, l2: 600 },
    schema: Item,
    load: async (id) => {
      calls.load++;
      await delay(options.loadMs ?? 2);
      return { id, n: 1 };
    },
  });
  return { ns, calls };
}

function l2Of(cache: Cache): RedisStore {
  const store = cache.store;
  if (!(store instanceof TieredStore)) throw new Error(`expected a tiered store, got ${store.impl}`);
  return store.l2;
}

function l2Hits(cache: Cache, ns: Namespace<Item>): number {
  return cache.stats().find((s) => s.namespace === ns.name)?.l2.hits ?? 0;
}

function keyOf(prefix: string, ns: Namespace<Item>, id: string): string {
  return cacheKeys(prefix).entryOf(ns, id);
}

interface ReadLog {
  reads: number;
  failures: string[];
  maxMs: number;
}

/** One timed read that must be ok and carry the loader's (or an equal cached) value. */
async function checkedRead(cache: Cache, ns: Namespace<Item>, id: string, log: ReadLog): Promise<void> {
  const t0 = performance.now();
  const r = await cache.get(ns, id);
  const ms = performance.now() - t0;
  log.reads++;
  log.maxMs = Math.max(log.maxMs, ms);
  if (!r.ok) log.failures.push(`${id}: ${r.error.code} ${r.error.message}`);
  else if (r.value?.id !== id || r.value.n !== 1)
    log.failures.push(`${id}: wrong value ${JSON.stringify(r.value)}`);
}

function newLog(): ReadLog {
  return { reads: 0, failures: [], maxMs: 0 };
}

describe('chaos: cache faults never become user errors (DESIGN invariant 1)', () => {
  it('a. Redis down at start: start() resolves, reads are ok from the loader, L2 serves again after restart', async () => {
    const redis = await server();
    await redis.kill();
    const prefix = newPrefix();
    const { ns, calls } = itemNamespace();
    const cache = cacheFor(redis.url, prefix);

    const t0 = performance.now();
    await cache.start();
    const startMs = performance.now() - t0;
    expect(startMs).toBeLessThan(3_000);

    const log = newLog();
    for (let i = 0; i < 20; i++) await checkedRead(cache, ns, `a${i % 10}`, log);
    expect(log.failures).toEqual([]);
    expect(calls.load).toBe(10);
    const l2 = l2Of(cache);
    expect(cache.status().errors > 0 || l2.breakerState === 'open').toBe(true);

    await redis.restart();
    const restartedAt = performance.now();
    // Another cache writes straight to L2; our cache can only return n = 42 by reading L2.
    const writer = cacheFor(redis.url, prefix);
    await writer.start();
    const hitsBefore = l2Hits(cache, ns);
    let probe = 0;
    await waitUntil(
      'the cache reading L2 again',
      async (note) => {
        const id = `probe${probe++}`;
        const w = await writer.set(ns, id, { id, n: 42 });
        if (!w.ok) throw new Error(`writer could not set: ${w.error.message}`);
        const r = await cache.get(ns, id);
        if (!r.ok) throw new Error(`read failed while recovering: ${r.error.message}`);
        note(`got ${JSON.stringify(r.value)}, breaker ${l2.breakerState}`);
        return r.value?.n === 42 ? true : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    const recoveredMs = performance.now() - restartedAt;
    expect(l2Hits(cache, ns)).toBeGreaterThan(hitsBefore);
    expect(l2.breakerState).toBe('closed');
    console.log(
      `a. start() with Redis down took ${Math.round(startMs)} ms; L2 served again ${Math.round(recoveredMs)} ms after restart (${probe} probes)`,
    );
  });

  it('b. Redis SIGKILLed under a continuous read loop: zero failed reads, recovers by itself', async () => {
    const redis = await server();
    const prefix = newPrefix();
    // A short L1 TTL keeps sending reads to L2, so an outage is felt and a recovery is visible.
    const { ns } = itemNamespace({ loadMs: 2, l1Ttl: 0.25 });
    const cache = cacheFor(redis.url, prefix);
    await cache.start();

    type Phase = 'before' | 'outage' | 'after';
    let phase: Phase = 'before';
    let stop = false;
    const logs: Record<Phase, ReadLog> = { before: newLog(), outage: newLog(), after: newLog() };
    const worker = async (w: number) => {
      let k = w;
      while (!stop) {
        await checkedRead(cache, ns, `b${k++ % 40}`, logs[phase]);
        // L1 hits resolve without a macrotask: yield so timers (and the test) can run.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    const workers = [0, 1, 2].map((w) => worker(w * 13));
    try {
      await waitUntil('L2 hits before the kill', async () => (l2Hits(cache, ns) > 20 ? true : undefined), {
        timeoutMs: 5_000,
      });
      phase = 'outage';
      const killedAt = performance.now();
      await redis.kill();
      await delay(2_000); // the outage itself: reads keep running meanwhile
      const hitsAtRestart = l2Hits(cache, ns);
      await redis.restart();
      phase = 'after';
      const restartedAt = performance.now();
      await waitUntil(
        'L2 hits to rise again after the restart',
        async (note) => {
          note(
            `l2 hits ${l2Hits(cache, ns)} (at restart ${hitsAtRestart}), breaker ${l2Of(cache).breakerState}`,
          );
          return l2Hits(cache, ns) > hitsAtRestart + 20 ? true : undefined;
        },
        { timeoutMs: 8_000 },
      );
      console.log(
        `b. reads: ${logs.before.reads} before, ${logs.outage.reads} during the ${Math.round(restartedAt - killedAt)} ms outage, ` +
          `${logs.after.reads} after; L2 hits rose again ${Math.round(performance.now() - restartedAt)} ms after restart; ` +
          `slowest read ${Math.round(Math.max(logs.before.maxMs, logs.outage.maxMs, logs.after.maxMs))} ms`,
      );
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    expect([...logs.before.failures, ...logs.outage.failures, ...logs.after.failures]).toEqual([]);
    expect(logs.outage.reads).toBeGreaterThan(0);
    expect(l2Of(cache).breakerState).toBe('closed');
  });

  it('c. Redis hung (SIGSTOP): reads stay ok and bounded by the command timeout, then recover', async () => {
    const redis = await server();
    const prefix = newPrefix();
    const { ns } = itemNamespace({ loadMs: 20 });
    const cache = cacheFor(redis.url, prefix, { l2: { commandTimeoutMs: 200 } });
    await cache.start();
    const raw = rawClient(redis.url);

    const warm = newLog();
    for (let i = 0; i < 10; i++) await checkedRead(cache, ns, `w${i}`, warm);
    expect(warm.failures).toEqual([]);
    expect(await raw.exists(keyOf(prefix, ns, 'w0'))).toBe(1);

    const hung = newLog();
    redis.pause();
    const pausedAt = performance.now();
    try {
      // Four concurrent readers for ~2 s: fresh ids (must go to L2, then the loader) and warm ones.
      let k = 0;
      await Promise.all(
        [0, 1, 2, 3].map(async (w) => {
          while (performance.now() - pausedAt < 2_000) {
            const id = w % 2 === 0 ? `fresh${k++}` : `w${k++ % 10}`;
            await checkedRead(cache, ns, id, hung);
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        }),
      );
    } finally {
      redis.resume();
    }
    console.log(
      `c. ${hung.reads} reads while Redis was hung, slowest ${Math.round(hung.maxMs)} ms, breaker ${l2Of(cache).breakerState}`,
    );
    expect(hung.failures).toEqual([]);
    expect(hung.maxMs).toBeLessThan(1_000);

    // After SIGCONT the cache writes L2 again by itself.
    let probe = 0;
    await waitUntil(
      'writes to reach L2 after resume',
      async () => {
        const id = `after${probe++}`;
        const r = await cache.set(ns, id, { id, n: 1 });
        return r.ok && (await raw.exists(keyOf(prefix, ns, id))) === 1 ? true : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 100 },
    );
  });

  it('d. a delete made while Redis is down is replayed once it is back', async () => {
    // AOF on, so the data survives SIGKILL + restart and "gone" can only mean "replayed".
    const redis = await server({ args: ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'] });
    const prefix = newPrefix();
    const { ns, calls } = itemNamespace();
    const cache = cacheFor(redis.url, prefix);
    await cache.start();
    const l2 = l2Of(cache);

    for (const id of ['gone', 'kept']) expect((await cache.get(ns, id)).ok).toBe(true);
    const before = rawClient(redis.url);
    expect(await before.exists(keyOf(prefix, ns, 'gone'), keyOf(prefix, ns, 'kept'))).toBe(2);
    before.disconnect();

    await redis.kill();
    await waitUntil('the cache to notice the outage', async () => (l2.available ? undefined : true), {
      timeoutMs: 3_000,
      intervalMs: 20,
    });
    const del = await cache.delete(ns, 'gone'); // not ok is allowed: Redis is down
    console.log(`d. delete while down → ${del.ok ? `ok(${del.value})` : del.error.code}`);
    expect(l2.pendingDeletes).toBe(1);

    await redis.restart();
    const after = rawClient(redis.url);
    // The AOF brought the data back...
    expect(await after.exists(keyOf(prefix, ns, 'kept'))).toBe(1);
    // ...and the remembered delete removes the deleted one.
    await waitUntil(
      'the replayed delete',
      async (note) => {
        note(`pending ${l2.pendingDeletes}, replayed ${l2.stats.replayedDeletes}`);
        // Replayed as an invalidation: the value is replaced by a tombstone (reads as a miss). The
        // store forgets the pending delete when the reply arrives, a moment after Redis applied it.
        const gone = (await liveValue(after, keyOf(prefix, ns, 'gone'))) === undefined;
        return gone && l2.pendingDeletes === 0 ? true : undefined;
      },
      { timeoutMs: 8_000, intervalMs: 50 },
    );
    expect(l2.pendingDeletes).toBe(0);
    expect(l2.stats.replayedDeletes).toBe(1);
    expect(await after.exists(keyOf(prefix, ns, 'kept'))).toBe(1);

    // And the next read goes back to the source of truth for it.
    const loadsBefore = calls.load;
    const r = await cache.get(ns, 'gone');
    expect(r).toEqual({ ok: true, value: { id: 'gone', n: 1 } });
    expect(calls.load).toBe(loadsBefore + 1);
  });

  it('e. a delete refused while Redis hung (breaker open, connection kept) is replayed after it recovers', async () => {
    const redis = await server();
    const prefix = newPrefix();
    const { ns } = itemNamespace();
    const cache = cacheFor(redis.url, prefix, { l2: { commandTimeoutMs: 200 } });
    await cache.start();
    const l2 = l2Of(cache);
    const raw = rawClient(redis.url);
    expect((await cache.get(ns, 'gone')).ok).toBe(true);
    expect(await raw.exists(keyOf(prefix, ns, 'gone'))).toBe(1);

    redis.pause();
    let probe = 0;
    try {
      // Timed-out reads open the breaker; the socket stays up, so no 'close' and no 'ready' follow.
      await waitUntil(
        'the breaker to open on timeouts',
        async () => {
          const r = await cache.get(ns, `p${probe++}`);
          if (!r.ok) throw new Error(`read failed: ${r.error.message}`);
          return l2.breakerState === 'open' ? true : undefined;
        },
        { timeoutMs: 5_000, intervalMs: 0 },
      );
      // Refused by the open breaker: never sent, so only a replay can remove the key.
      const del = await cache.delete(ns, 'gone');
      expect(del.ok).toBe(false);
      expect(l2.pendingDeletes).toBe(1);
    } finally {
      redis.resume();
    }

    // Reads drive the half-open probe that closes the breaker again.
    await waitUntil(
      'the breaker to close after SIGCONT',
      async () => {
        await cache.get(ns, `q${probe++}`);
        return l2.breakerState === 'closed' ? true : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    const closedAt = performance.now();
    let exists = 1;
    try {
      await waitUntil(
        'the refused delete to be replayed',
        async (note) => {
          exists = (await liveValue(raw, keyOf(prefix, ns, 'gone'))) === undefined ? 0 : 1;
          note(`key exists=${exists}, pending ${l2.pendingDeletes}, breaker ${l2.breakerState}`);
          // The store forgets the pending delete when the reply arrives, a moment after Redis applied it.
          return exists === 0 && l2.pendingDeletes === 0 ? true : undefined;
        },
        { timeoutMs: 3_000, intervalMs: 50 },
      );
    } catch (error) {
      console.log(`e. ${error instanceof Error ? error.message : String(error)}`);
    }
    console.log(
      `e. ${Math.round(performance.now() - closedAt)} ms after the breaker closed: key exists=${exists}, ` +
        `pending deletes ${l2.pendingDeletes}, replayed ${l2.stats.replayedDeletes}`,
    );
    // The breaker closed through a probe on the same connection, so no 'ready' (reconnect) event
    // came: the refused delete is replayed on the breaker's close too, and nothing stays pending.
    expect(exists).toBe(0);
    expect(l2.pendingDeletes).toBe(0);
  });
});
