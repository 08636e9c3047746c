/**
 * Issue 9, invariant 8: ACL users in Sentinel mode. A `rediss://user:password@` URL names the user
 * in single mode; Sentinel mode had only a password, so the fleet had to run as `default` there.
 * CACHE_REDIS_USERNAME / QUEUE_REDIS_USERNAME name the data nodes' ACL user: here a real Sentinel set
 * whose data nodes have a `fleet` user, reached through the settings a deployment sets.
 */

import { loadQueueConfig } from '@cachefleet/jobs';
import { createRedisClient, type RedisClient, type ResolvedRedisConnection } from '@cachefleet/redis';
import { loadCacheConfig } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type SentinelSet, startSentinelSet } from './helpers/index.js';

const PASSWORD = 'fleet-password-0123456789';
let set: SentinelSet | undefined;
const clients: RedisClient[] = [];

beforeAll(async () => {
  set = await startSentinelSet({
    replicas: 1,
    args: ['--user', 'fleet', 'on', `>${PASSWORD}`, '~*', '&*', '+@all'],
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await set?.stop();
});

function sentinels(s: SentinelSet): string {
  return s.sentinels.map((a) => `${a.host}:${a.port}`).join(',');
}

/** The cache connection a deployment's settings make: user `fleet`, with `password`. */
function cacheAsFleet(s: SentinelSet, password: string): ResolvedRedisConnection {
  const conn = loadCacheConfig({
    CACHE_REDIS_MODE: 'sentinel',
    CACHE_REDIS_SENTINELS: sentinels(s),
    CACHE_REDIS_SENTINEL_NAME: s.name,
    CACHE_REDIS_USERNAME: 'fleet',
    CACHE_REDIS_PASSWORD: password,
  }).redis;
  if (conn === undefined) throw new Error('no cache connection');
  return conn;
}

it('the cache and the queue connections log in as the named user on the master the sentinels name', async () => {
  if (!set) throw new Error('no set');
  const cache = cacheAsFleet(set, PASSWORD);
  const queue = loadQueueConfig({
    QUEUE_REDIS_MODE: 'sentinel',
    QUEUE_REDIS_SENTINELS: sentinels(set),
    QUEUE_REDIS_SENTINEL_NAME: set.name,
    QUEUE_REDIS_USERNAME: 'fleet',
    QUEUE_REDIS_PASSWORD: PASSWORD,
  }).redis;
  for (const [role, conn] of [
    ['cache', cache],
    ['queue', queue],
  ] as const) {
    const c = createRedisClient(conn, { role });
    clients.push(c);
    if (c.status === 'wait') await c.connect();
    expect(await c.call('ACL', 'WHOAMI'), role).toBe('fleet');
    expect(await c.set(`${role}:probe`, '1'), role).toBe('OK');
  }
}, 30_000);

it('a wrong password for the named user is refused (WRONGPASS), not taken as the default user', async () => {
  if (!set) throw new Error('no set');
  const conn = cacheAsFleet(set, 'not-the-password');
  const errors: string[] = [];
  const c = createRedisClient(conn, { role: 'cache', onError: (e) => errors.push(e.message) });
  clients.push(c);
  await c.connect().catch((e: unknown) => errors.push(e instanceof Error ? e.message : String(e)));
  expect(errors.join('\n')).toMatch(/WRONGPASS/);
}, 30_000);

it('names the user only where the URL cannot: single mode refuses the setting', () => {
  expect(() =>
    loadCacheConfig({ CACHE_REDIS_URL: 'redis://127.0.0.1:1', CACHE_REDIS_USERNAME: 'fleet' }),
  ).toThrow(/CACHE_REDIS_USERNAME: only with CACHE_REDIS_MODE=sentinel or cluster/);
  expect(() =>
    loadQueueConfig({ QUEUE_REDIS_URL: 'redis://127.0.0.1:1', QUEUE_REDIS_USERNAME: 'fleet' }),
  ).toThrow(/QUEUE_REDIS_USERNAME: only with QUEUE_REDIS_MODE=sentinel/);
});
