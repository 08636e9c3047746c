import { type RedisCluster, startCluster, startRedis } from '@cachefleet/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cacheKeys,
  createRedisClient,
  entryGlob,
  findMaster,
  masterName,
  masters,
  type RedisClient,
  scanFraction,
  scanMasters,
  scanStep,
} from '../src/index.js';

/** A prefix with glob metacharacters: a walk must match it literally, never widen to other prefixes. */
const keys = cacheKeys('sc*[1]:');
const N = 2_500;
const idsOf = (n: number) => Array.from({ length: n }, (_, i) => `${i}`);

async function plant(client: RedisClient): Promise<void> {
  await Promise.all(idsOf(N).map((id) => client.set(keys.entryOf({ name: 'item', version: 1 }, id), id)));
  // Matched by the prefix's metacharacters if they were not escaped.
  await Promise.all(idsOf(100).map((id) => client.set(`scx1:item:v1:${id}`, id)));
  await Promise.all(idsOf(100).map((id) => client.set(keys.entryOf({ name: 'other', version: 1 }, id), id)));
}

/** Walks every master in steps, as a worker does, resuming each step from the cursor it saved. */
async function stepWalk(client: RedisClient, match: string): Promise<Set<string>> {
  const seen = new Set<string>();
  for (const name of masters(client).map(masterName)) {
    let cursor = '0';
    do {
      const node = findMaster(client, name);
      if (node === undefined) throw new Error(`no master ${name}`);
      const step = await scanStep(node, match, cursor, 200);
      for (const k of step.keys) seen.add(k);
      cursor = step.cursor;
    } while (cursor !== '0');
  }
  return seen;
}

function suite(connect: () => Promise<RedisClient>, masterCount: number) {
  let client: RedisClient;
  beforeAll(async () => {
    client = await connect();
    await plant(client);
  });
  afterAll(() => client?.disconnect());

  it('names every master', () => {
    expect(masters(client)).toHaveLength(masterCount);
    for (const node of masters(client)) expect(findMaster(client, masterName(node))).toBe(node);
    expect(findMaster(client, '127.0.0.1:1')).toBeUndefined();
  });

  it('walks every master whole, and only the prefix', async () => {
    const found = new Set<string>();
    const total = await scanMasters(client, keys.entryMatch(entryGlob('item:v1:', '*')), (batch) => {
      for (const k of batch) found.add(k);
      return batch.length;
    });
    expect(found.size).toBe(N);
    expect(total).toBeGreaterThanOrEqual(N); // SCAN may return a key twice
    expect([...found].every((k) => k.startsWith('sc*[1]:item:v1:'))).toBe(true);
  });

  it('resumes step by step from a saved cursor and finds the same keys', async () => {
    const seen = await stepWalk(client, keys.entryMatch(entryGlob('item:v1:', '1*')));
    expect(seen.size).toBe(idsOf(N).filter((id) => id.startsWith('1')).length);
  });

  it("estimates each master's keys from the share of its buckets a step walk has covered", async () => {
    const match = keys.entryMatch(entryGlob('item:v1:', '*'));
    for (const name of masters(client).map(masterName)) {
      const node = findMaster(client, name);
      if (node === undefined) throw new Error(`no master ${name}`);
      let cursor = '0';
      let share = 0;
      let seen = 0;
      let estimate: number | undefined;
      do {
        const step = await scanStep(node, match, cursor, 100);
        cursor = step.cursor;
        seen += step.keys.length;
        const now = scanFraction(cursor);
        if (cursor !== '0') expect(now).toBeGreaterThan(share); // only forward
        share = now;
        if (estimate === undefined && share >= 0.25) estimate = seen / share;
      } while (cursor !== '0');
      // A quarter of the way through, the estimate is within a third of what the master holds.
      expect(estimate).toBeDefined();
      expect(Math.abs((estimate ?? 0) - seen) / seen).toBeLessThan(1 / 3);
    }
  });

  it('stops a master once the caller has enough', async () => {
    let batches = 0;
    await scanMasters(
      client,
      keys.entryMatch('*'),
      () => {
        batches++;
        return 0;
      },
      { count: 10, enough: () => true },
    );
    expect(batches).toBeLessThanOrEqual(masterCount);
  });
}

describe('scanFraction', () => {
  it('reads the cursor bit-reversed over 64 bits', () => {
    expect(scanFraction('0')).toBe(0);
    expect(scanFraction('1')).toBe(0.5);
    expect(scanFraction('3')).toBe(0.75);
    expect(scanFraction('2')).toBe(0.25);
    expect(scanFraction(String(2n ** 63n))).toBe(2 ** -64);
    expect(scanFraction('junk')).toBe(0);
  });
});

describe('SCAN over a single node', () => {
  let server: Awaited<ReturnType<typeof startRedis>>;
  afterAll(() => server?.stop());
  suite(async () => {
    server = await startRedis();
    const c = createRedisClient({ mode: 'single', url: server.url }, { role: 'cache' });
    await c.connect();
    return c;
  }, 1);
});

describe('SCAN over every master of a Cluster', () => {
  let cluster: RedisCluster;
  afterAll(() => cluster?.stop());
  suite(async () => {
    cluster = await startCluster();
    const c = createRedisClient({ mode: 'cluster', nodes: [...cluster.nodes] }, { role: 'cache' });
    await c.connect();
    return c;
  }, 3);
});
