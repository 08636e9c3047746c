/**
 * The bus's outbox (issue 17): an announcement of a change already made that Redis cannot take at
 * that moment is kept, in order, and published as soon as the publishing connection is ready. Real
 * Redis; the publishing client reaches it through a gate (test/fixtures/bus-gate.ts) that refuses
 * its connections until the test opens it, as for a client whose connection just dropped.
 */
import { cacheKeys, createRedisClient, type RedisClient } from '@cachefleet/redis';
import { afterAll, expect, it } from 'vitest';
import { z } from 'zod';
import { startBusGate } from '../../../test/fixtures/bus-gate.js';
import { startRedis, waitUntil } from '../../../test/helpers/index.js';
import { type CacheEvent, createCache, defineNamespace, EventBus } from '../src/index.js';

const server = await startRedis();
const gate = await startBusGate(server.port);
afterAll(async () => {
  await gate.close();
  await server.stop();
});
const PUB_NAME = 'cachefleet:cache:ob-writer';

const PREFIX = 'ob:';
const items = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => ({ id }),
});

function writerBus(): { bus: EventBus; pub: RedisClient; sub: RedisClient } {
  // Refused until the test opens the gate; the client keeps retrying meanwhile.
  gate.block('refuse', PUB_NAME);
  const pub = createRedisClient(
    { mode: 'single', url: gate.url },
    { role: 'cache', connectionName: PUB_NAME },
  );
  pub.connect().catch(() => {});
  const sub = createRedisClient({ mode: 'single', url: server.url }, { role: 'queue' });
  const noop = { apply: () => undefined, flush: () => {}, disconnected: () => {} };
  const keys = cacheKeys(PREFIX);
  const bus = new EventBus(
    pub,
    sub,
    { stream: keys.bus, channel: keys.busChannel, maxLen: 1000, podId: 'writer', disconnectedTtlMs: 5000 },
    noop,
  );
  return { bus, pub, sub };
}

const event = (id: string) => ({
  event_type: 'invalidate' as const,
  namespace: 'item',
  keys: [id],
  timestamp: Date.now(),
  source_pod: 'writer',
});

it('events Redis cannot take now are kept and published, in order, once the connection is ready', async () => {
  const reader = createCache({ impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix: PREFIX });
  await reader.start();
  reader.register(items);
  const seen: CacheEvent[] = [];
  reader.onEvent((e) => seen.push(e));
  const { bus, pub } = writerBus();
  try {
    // The publishing client is not connected: a plain publish fails at once…
    const plain = await bus.publish(event('x'));
    expect(plain.ok).toBe(false);
    // …while deliver keeps the events.
    const first = bus.deliver(event('1'));
    const second = bus.deliver(event('2'));
    await waitUntil('both events queued', async () => (bus.stats.queued === 2 ? true : undefined));
    expect(bus.undelivered).toBe(2);
    expect(bus.stats.published).toBe(0);
    // A delete's script may not publish its event itself while others wait: they go first, in order.
    expect(bus.inline(event('3'))).toBeUndefined();

    gate.open();
    const [r1, r2] = await Promise.all([first, second]);
    expect(r1.ok && r2.ok).toBe(true);
    expect(bus.undelivered).toBe(0);
    expect(bus.inline(event('3'))?.json).toContain('"keys":["3"]');
    await waitUntil('the reader got both', async () => (seen.length >= 2 ? true : undefined));
    expect(seen.map((e) => (e.event_type === 'invalidate' ? e.keys : []))).toEqual([['1'], ['2']]);
  } finally {
    await bus.close();
    pub.disconnect();
    await reader.close();
  }
});

it('an event still waiting when the bus closes resolves an error instead of hanging', async () => {
  const { bus, pub } = writerBus();
  const waiting = bus.deliver(event('3'));
  await waitUntil('the event queued', async () => (bus.stats.queued === 1 ? true : undefined));
  await bus.close();
  const r = await waiting;
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.error.code).toBe('E_CACHE_CLOSED');
  pub.disconnect();
});
