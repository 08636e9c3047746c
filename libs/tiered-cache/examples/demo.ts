/**
 * `npm start`: the library end to end against a real Redis. Uses CACHE_REDIS_URL (default
 * redis://127.0.0.1:6379); when nothing answers there and `redis-server` is on PATH it starts a
 * private one for the run. The API pod and the worker fleet take over this command later.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { z } from 'zod';
import { createCache, defineNamespace, loadCacheConfig } from '../src/index.js';

const log = pino({ name: 'cachefleet-demo' });

function answers(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port });
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (b) => {
      s.destroy();
      resolve(b.toString().startsWith('+PONG'));
    });
  });
}

async function redisUrl(): Promise<{ url: string; stop: () => void }> {
  const url = process.env.CACHE_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const { hostname, port } = new URL(url);
  if (await answers(Number(port || 6379), hostname)) return { url, stop: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'cachefleet-demo-'));
  const privatePort = 16379;
  log.warn(
    { url, dir, port: privatePort },
    'no Redis answered; starting a private redis-server for this run',
  );
  const child = spawn(
    'redis-server',
    ['--port', String(privatePort), '--bind', '127.0.0.1', '--dir', dir, '--save', ''],
    {
      stdio: 'ignore',
    },
  );
  child.once('error', () => {
    log.error('redis-server is not installed: apt-get install redis-server, or set CACHE_REDIS_URL');
    process.exit(1);
  });
  for (let i = 0; i < 100 && !(await answers(privatePort, '127.0.0.1')); i++)
    await new Promise((r) => setTimeout(r, 50));
  return { url: `redis://127.0.0.1:${privatePort}`, stop: () => child.kill() };
}

const redis = await redisUrl();
const config = loadCacheConfig({ ...process.env, CACHE_REDIS_URL: redis.url, CACHE_KEY_PREFIX: 'demo:' });
const cache = createCache(config, { logger: log });
await cache.start();

let dbReads = 0;
const users = defineNamespace({
  name: 'user',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string(), name: z.string() }),
  load: async (id) => {
    dbReads++;
    await new Promise((r) => setTimeout(r, 20)); // a pretend database round trip
    return { id, name: `user ${id}` };
  },
});

const started = performance.now();
await Promise.all(Array.from({ length: 1000 }, (_, i) => cache.get(users, String(i % 50))));
for (let i = 0; i < 10_000; i++) await cache.get(users, String(i % 50));
log.info(
  {
    reads: 11_000,
    dbReads,
    ms: Math.round(performance.now() - started),
    status: cache.status(),
    stats: cache.stats(),
  },
  'demo finished',
);
await cache.invalidateNamespace(users);
await cache.close();
redis.stop();
