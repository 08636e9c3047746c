import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RedisCluster,
  type RedisProcess,
  rawCommand,
  type SentinelSet,
  startCluster,
  startRedis,
  startSentinelSet,
  waitUntil,
} from './index.js';

/** Logs how long each start took, so slow machines show where the time goes. */
async function timed<T>(what: string, start: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const value = await start();
  console.info(`[harness] ${what} started in ${Math.round(performance.now() - t0)} ms`);
  return value;
}

describe('startRedis', () => {
  let server: RedisProcess | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await timed('redis-server', () => startRedis());
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('serves a client and survives kill/restart', async () => {
    if (!server) throw new Error('no server');
    client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    await client.set('k', 'v');
    expect(await client.get('k')).toBe('v');
    await server.kill();
    expect(server.running).toBe(false);
    await server.restart();
    expect(await rawCommand(server.port, ['PING'])).toBe('PONG');
  });
});

describe('startSentinelSet', () => {
  let set: SentinelSet | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    set = await timed('sentinel set', () => startSentinelSet());
  });
  afterAll(async () => {
    client?.disconnect();
    await set?.stop();
  });

  it('starts settled: 3 sentinels agree on the master', async () => {
    if (!set) throw new Error('no set');
    expect(set.sentinels).toHaveLength(3);
    expect(await set.currentMaster()).toEqual({ host: '127.0.0.1', port: set.master.port });
    for (const s of set.sentinels) {
      expect(await rawCommand(s.port, ['SENTINEL', 'get-master-addr-by-name', set.name])).toEqual([
        '127.0.0.1',
        String(set.master.port),
      ]);
    }
  });

  it('a sentinel client keeps working across failover()', async () => {
    if (!set) throw new Error('no set');
    client = new Redis({
      sentinels: set.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: set.name,
      failoverDetector: true,
      maxRetriesPerRequest: 5,
    });
    await client.set('before', '1');
    expect(await client.get('before')).toBe('1');
    // Make sure both replicas have the key, so it survives the promotion.
    expect(await client.wait(2, 2_000)).toBe(2);

    const old = await set.currentMaster();
    const t0 = performance.now();
    const promoted = await set.failover();
    console.info(`[harness] failover() took ${Math.round(performance.now() - t0)} ms`);
    expect(promoted.port).not.toBe(old.port);
    expect(await set.currentMaster()).toEqual(promoted);
    expect(await rawCommand(promoted.port, ['GET', 'before'])).toBe('1');

    // The client follows the switch (failoverDetector): its writes land on the new master.
    const c = client;
    let n = 0;
    await waitUntil(
      'the client to write to the new master',
      async () => {
        const key = `after:${n++}`;
        await c.set(key, 'x');
        return (await rawCommand(promoted.port, ['GET', key])) === 'x' ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(await c.get('before')).toBe('1');
    c.disconnect();
  });

  it('fails over by itself after killMaster(); the old master rejoins as a replica', async () => {
    if (!set) throw new Error('no set');
    const t0 = performance.now();
    // After failover() the old master is still being turned into a replica: start from rest.
    await set.waitSettled();
    const settled = Math.round(performance.now() - t0);
    const killed = await set.killMaster();
    const t1 = performance.now();
    const promoted = await set.waitForMaster({ host: '127.0.0.1', port: killed.port });
    const failedOver = Math.round(performance.now() - t1);
    expect(promoted.port).not.toBe(killed.port);
    await killed.restart();
    const t2 = performance.now();
    expect(await set.waitSettled()).toEqual(promoted);
    console.info(
      `[harness] settle ${settled} ms, automatic failover ${failedOver} ms, rejoin ${Math.round(performance.now() - t2)} ms`,
    );
    const repl = await rawCommand(killed.port, ['INFO', 'replication']);
    expect(repl).toContain(`master_port:${promoted.port}`);
  });
});

describe('startCluster', () => {
  let cluster: RedisCluster | undefined;
  let client: InstanceType<typeof Redis.Cluster> | undefined;
  beforeAll(async () => {
    cluster = await timed('cluster (3 masters)', () => startCluster());
  });
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('serves 100 keys spread over all masters', async () => {
    if (!cluster) throw new Error('no cluster');
    const masters = await cluster.masters();
    expect(masters).toHaveLength(3);
    client = new Redis.Cluster(cluster.nodes.map((n) => ({ host: n.host, port: n.port })));
    const keys = Array.from({ length: 100 }, (_, i) => `key:${i}`);
    await Promise.all(keys.map((k) => client?.set(k, `v-${k}`)));
    const values = await Promise.all(keys.map((k) => client?.get(k)));
    expect(values).toEqual(keys.map((k) => `v-${k}`));
    const sizes = await Promise.all(masters.map((m) => rawCommand(m.port, ['DBSIZE'])));
    expect(sizes.every((s) => typeof s === 'number' && s > 0)).toBe(true);
    expect(sizes.reduce<number>((a, s) => a + (typeof s === 'number' ? s : 0), 0)).toBe(100);
  });
});

describe('startCluster with replicas', () => {
  let cluster: RedisCluster | undefined;
  beforeAll(async () => {
    cluster = await timed('cluster (3 masters + 3 replicas)', () => startCluster({ replicas: 1 }));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a replica takes over a killed master; the old one rejoins', async () => {
    if (!cluster) throw new Error('no cluster');
    expect(cluster.nodes).toHaveLength(6);
    const before = await cluster.masters();
    expect(before).toHaveLength(3);
    const victim = before[0];
    if (!victim) throw new Error('no master');
    const t0 = performance.now();
    await cluster.node(victim.port).kill();
    await cluster.waitHealthy();
    const after = await cluster.masters();
    expect(after).toHaveLength(3);
    expect(after.map((m) => m.port)).not.toContain(victim.port);
    await cluster.node(victim.port).restart();
    await cluster.waitHealthy();
    console.info(`[harness] cluster failover + rejoin took ${Math.round(performance.now() - t0)} ms`);
    const topology = await cluster.topology();
    expect(topology.find((n) => n.port === victim.port)?.flags).toContain('slave');
  });
});
