/**
 * Issue 17, part 2: every client the factory makes comes back from `end`, the state in which plain
 * ioredis stops for good. The trigger is the one seen after a Sentinel switch: a disconnect that
 * lands while a (re)connect is still under way — the failover detector's, while the client asks
 * the sentinels for the master — makes `connect()` fail with "Connection is closed." and ends the
 * client. Real redis-server and a real Sentinel set; no mocks.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  delay,
  type RedisProcess,
  type SentinelSet,
  startRedis,
  startSentinelSet,
  waitUntil,
} from '../../../test/helpers/index.js';
import { createRedisClient, type RedisClient } from '../src/index.js';

let server: RedisProcess | undefined;
let sentinels: SentinelSet | undefined;

beforeAll(async () => {
  [server, sentinels] = await Promise.all([startRedis(), startSentinelSet({ replicas: 1 })]);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([server?.stop(), sentinels?.stop()]);
});

function single(): { mode: 'single'; url: string } {
  if (!server) throw new Error('no redis');
  return { mode: 'single', url: server.url };
}

function sentinel(): {
  mode: 'sentinel';
  sentinels: { host: string; port: number }[];
  name: string;
  db: number;
} {
  if (!sentinels) throw new Error('no sentinel set');
  return { mode: 'sentinel', sentinels: [...sentinels.sentinels], name: sentinels.name, db: 0 };
}

/** Drops the connection, then drops it again the moment the reconnect starts: the client ends. */
async function endByDisconnectDuringConnect(client: Redis | RedisClient): Promise<void> {
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  client.once('connecting', () => client.disconnect(true));
  client.disconnect(true);
  await ended;
}

describe.each([
  ['single node', single],
  ['Sentinel', sentinel],
] as const)('%s', (_mode, conn) => {
  it('plain ioredis stays ended (the failure this guards against)', async () => {
    const c = conn();
    const plain =
      c.mode === 'single'
        ? new Redis(c.url, { lazyConnect: true, retryStrategy: () => 50 })
        : new Redis({ lazyConnect: true, sentinels: c.sentinels, name: c.name, retryStrategy: () => 50 });
    plain.on('error', () => {});
    try {
      await plain.connect();
      await endByDisconnectDuringConnect(plain);
      await delay(1_000);
      expect(plain.status).toBe('end');
    } finally {
      plain.disconnect();
    }
  });

  for (const role of ['cache', 'queue'] as const) {
    it(`a ${role} client from the factory comes back from end and answers again`, async () => {
      const client = createRedisClient(conn(), { role, connectionName: `cachefleet:end-test:${role}` });
      try {
        await client.connect();
        await endByDisconnectDuringConnect(client);
        await waitUntil(
          'the client ready again',
          async () => (client.status === 'ready' ? true : undefined),
          {
            timeoutMs: 10_000,
            intervalMs: 20,
          },
        );
        expect(await client.ping()).toBe('PONG');
      } finally {
        client.disconnect();
      }
    });
  }

  it('a client its owner closed stays closed', async () => {
    const quit = createRedisClient(conn(), { role: 'queue' });
    const dropped = createRedisClient(conn(), { role: 'cache' });
    await Promise.all([quit.connect(), dropped.connect()]);
    await quit.quit();
    dropped.disconnect();
    await delay(1_000);
    expect([quit.status, dropped.status]).toEqual(['end', 'end']);
  });
});
