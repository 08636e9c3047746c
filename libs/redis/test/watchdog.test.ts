import { startRedis, waitUntil } from '@cachefleet/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, HangWatchdog, type RedisClient } from '../src/index.js';

const server = await startRedis();
afterAll(() => server.stop());

/** The hang watchdog, caused for real: the server is stopped with SIGSTOP (sockets stay open). */
describe('the hang watchdog', () => {
  let client: RedisClient;
  let hangs = 0;
  let watchdog: HangWatchdog;
  beforeAll(async () => {
    client = createRedisClient({ mode: 'single', url: server.url }, { role: 'cache' });
    await client.connect();
    watchdog = new HangWatchdog(client, { timeoutMs: 200, onHang: () => hangs++ });
    watchdog.start();
  });
  afterAll(() => {
    watchdog.stop();
    client.disconnect();
  });

  it('declares nothing while no command waits, even on a stopped server', async () => {
    server.pause();
    try {
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(hangs).toBe(0);
      expect(client.status).toBe('ready');
    } finally {
      server.resume();
    }
  });

  it('drops the sockets of a hung server: the waiting command fails instead of waiting', async () => {
    server.pause();
    try {
      const waiting = watchdog.track(client.get('k'));
      await expect(waiting).rejects.toThrow();
      expect(hangs).toBe(1);
      expect(watchdog.inFlight).toBe(0);
    } finally {
      server.resume();
    }
    await waitUntil('the client to reconnect', async () => (client.status === 'ready' ? true : undefined));
    expect(await watchdog.track(client.ping())).toBe('PONG');
    expect(hangs).toBe(1);
  });
});
