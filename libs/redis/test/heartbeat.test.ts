import { startRedis, waitUntil } from '@cachefleet/test';
import { afterAll, describe, expect, it } from 'vitest';
import { createRedisClient, startHeartbeat } from '../src/index.js';

const server = await startRedis();
afterAll(() => server.stop());

/**
 * The heartbeat, caused for real: the server SIGSTOPped (sockets stay open, nothing answers), as a
 * silent partition looks to an idle connection that no command would ever time out on.
 */
describe('the heartbeat', () => {
  it.each(['subscriber', 'queue client'] as const)(
    'a %s that hears nothing is dropped and reconnects once the server answers again',
    async (kind) => {
      const client = createRedisClient({ mode: 'single', url: server.url }, { role: 'queue' });
      const silent: number[] = [];
      const beat = startHeartbeat(client, {
        intervalMs: 100,
        onSilent: (lastHeard) => silent.push(lastHeard),
      });
      try {
        await client.connect();
        if (kind === 'subscriber') await client.subscribe('hb-test');
        // Answering: several intervals pass, nothing is declared.
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(silent).toEqual([]);
        const heardBefore = beat.lastHeard;
        expect(Date.now() - heardBefore).toBeLessThan(1_000);
        server.pause();
        let cutAt = 0;
        try {
          await waitUntil('the silence to be noticed', async () => (silent.length > 0 ? true : undefined));
          cutAt = Date.now();
          // It is no longer `ready` (ioredis reconnects): its owner sees it down.
          expect(client.status).not.toBe('ready');
          // It was last heard before the pause, not when the silence was noticed.
          expect(silent[0]).toBeLessThanOrEqual(cutAt);
        } finally {
          server.resume();
        }
        await waitUntil('the client to be ready again', async () =>
          client.status === 'ready' ? true : undefined,
        );
        if (kind === 'subscriber') {
          // ioredis subscribed again: a message published now arrives.
          const got = new Promise<string>((resolve) =>
            client.once('message', (_c: string, m: string) => resolve(m)),
          );
          const pub = createRedisClient({ mode: 'single', url: server.url }, { role: 'queue' });
          await waitUntil('the message to arrive', async () => {
            await pub.publish('hb-test', 'back');
            return Promise.race([got, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
          });
          pub.disconnect();
        }
        expect(beat.lastHeard).toBeGreaterThan(heardBefore);
      } finally {
        beat.stop();
        client.disconnect();
      }
    },
    30_000,
  );
});
