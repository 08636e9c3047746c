/**
 * What Redis's own CPU costs a key for each command a migration needs at the least, measured on a
 * private `redis-server` (a free port, no persistence, removed at the end): the ceiling a migration
 * job could reach on this machine with no fence at all (docs/benchmarks.md, "Lifecycle jobs").
 *
 *   node --import tsx scripts/redis-command-cost.ts [keys]      (default 500,000)
 *
 * Fills `keys` entries `cf:product:v1:<i>` (150-byte values, TTL 1 h), then for each command reads
 * `INFO cpu` (user + sys) before and after walking every key with it, pipelined 1,000 at a time (or
 * 500 keys a call for MGET and UNLINK): SCAN MATCH COUNT 1000, GET, MGET, PTTL, SET … PX … NX of a
 * new `v2` key, UNLINK. Prints µs of Redis CPU a key per command, and their sum as keys/s.
 */
import { Redis } from 'ioredis';
import { z } from 'zod';
import { startRedis } from '../test/helpers/index.js';

const keys = z.coerce
  .number()
  .int()
  .min(1_000)
  .max(10_000_000)
  .parse(process.argv[2] ?? '500000');
const VALUE = 'x'.repeat(150);
const TTL_MS = 3_600_000;
const v1 = (i: number) => `cf:product:v1:${i}`;

const server = await startRedis();
const redis = new Redis({ port: server.port, maxRetriesPerRequest: 1 });
try {
  const cpuSeconds = async (): Promise<number> => {
    const info = await redis.info('cpu');
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
    return field('used_cpu_user') + field('used_cpu_sys');
  };
  const pipelined = async (add: (p: ReturnType<Redis['pipeline']>, i: number) => void) => {
    for (let at = 0; at < keys; at += 1_000) {
      const p = redis.pipeline();
      for (let i = at; i < Math.min(keys, at + 1_000); i++) add(p, i);
      await p.exec();
    }
  };
  const perCall = async (call: (names: string[]) => Promise<unknown>) => {
    for (let at = 0; at < keys; at += 500)
      await call(Array.from({ length: Math.min(500, keys - at) }, (_, j) => v1(at + j)));
  };

  await pipelined((p, i) => p.set(v1(i), VALUE, 'PX', TTL_MS));
  const rows: [string, number][] = [];
  const measure = async (name: string, walk: () => Promise<void>) => {
    const before = await cpuSeconds();
    await walk();
    const us = (((await cpuSeconds()) - before) * 1e6) / keys;
    rows.push([name, us]);
    process.stdout.write(`${name.padEnd(28)} ${us.toFixed(2)} µs a key\n`);
  };
  await measure('SCAN MATCH COUNT 1000', async () => {
    let cursor = '0';
    do [cursor] = await redis.scan(cursor, 'MATCH', 'cf:product:v1:*', 'COUNT', 1000);
    while (cursor !== '0');
  });
  await measure('GET, pipelined', () => pipelined((p, i) => p.get(v1(i))));
  await measure('MGET of 500', () => perCall((names) => redis.mget(...names)));
  await measure('PTTL, pipelined', () => pipelined((p, i) => p.pttl(v1(i))));
  await measure('SET PX NX (new), pipelined', () =>
    pipelined((p, i) => p.set(`cf:product:v2:${i}`, VALUE, 'PX', TTL_MS, 'NX')),
  );
  await measure('UNLINK of 500', () => perCall((names) => redis.unlink(...names)));
  const least = rows.filter(([name]) => !name.startsWith('GET')).reduce((sum, [, us]) => sum + us, 0);
  process.stdout.write(
    `SCAN + MGET + PTTL + SET NX + UNLINK: ${least.toFixed(2)} µs a key → at most ${Math.round(1e6 / least).toLocaleString('en-US')} keys/s on one Redis core\n`,
  );
} finally {
  redis.disconnect();
  await server.stop();
}
