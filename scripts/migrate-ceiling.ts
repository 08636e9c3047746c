/**
 * The fastest a migration's walk can go on this machine, with no Node work at all: a private
 * `redis-server` (the tests' `startRedis`: a free port, no persistence, removed at the end) is filled with `keys` entries
 * `cf:product:v1:<i>` (150-byte JSON, TTL 1 h) and walked as the migrate job walks it — SCAN
 * MATCH COUNT 1,000, the step's values by MGET of 500 (the walk counter first), then the step's
 * writes as Lua calls of 100 pairs, all of a step's calls sent at once — but the "converted" value
 * is a constant and nothing is decoded, validated or encoded. Two writes, each walked one step at a
 * time (as the job writes) and with three steps in flight (each SCAN sent as soon as the cursor
 * before it is known: Redis kept busy), the four rows taking turns on a fresh fill each:
 *
 * - `fenced`: the shipped `migrate-n.lua` (the walk counter, then per pair the old value compared
 *   with the one read, its PTTL, `SET NX PX` of the new key);
 * - `unfenced`: the same without the per-pair compare (the walk counter, PTTL, `SET NX PX`): what
 *   a fence checked once per call instead of once per key could at best save.
 *
 *   node --import tsx scripts/migrate-ceiling.ts [keys] [rounds]     (default 300,000 keys, 3 rounds)
 *
 * Prints, per row, Redis's CPU a key (`INFO cpu` user + sys over the walk, so SCAN and MGET are
 * in it), keys/s, and how busy Redis was (its CPU over the walk's wall time): the median of the
 * rounds with min–max (docs/benchmarks.md, "Lifecycle jobs").
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { startRedis } from '../test/helpers/index.js';

const args = z
  .tuple([
    z.coerce.number().int().min(10_000).max(5_000_000).default(300_000),
    z.coerce.number().int().min(1).max(20).default(3),
  ])
  .parse([process.argv[2], process.argv[3]]);
const [keys, rounds] = args;

const OLD = JSON.stringify({
  id: '1',
  sku: 'SKU-00000001',
  name: 'Product 1',
  category: 'cat-2',
  price_cents: 92497,
  stock: 2,
  updated_at: '2026-11-22T04:00:00.000Z',
}).padEnd(150, ' ');
const NEW = OLD.replace('price_cents', 'priceCents');
const TTL_MS = 3_600_000;
const COUNTER = 'cf:__inv:product';
const STEP = 1_000;
const READ_CHUNK = 500;
const WRITE_CHUNK = 100;

const FENCED = readFileSync(
  new URL('../libs/tiered-cache/src/drivers/redis/scripts/migrate-n.lua', import.meta.url),
  'utf8',
);
const UNFENCED = `
local call = redis.call
if (call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -1 end
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local ttl = call('PTTL', KEYS[2 * i])
  if ttl == -2 then
    out[i] = 0
  else
    if ttl < 1 then ttl = tonumber(ARGV[2 * i + 1]) end
    if call('SET', KEYS[2 * i + 1], ARGV[2 * i], 'NX', 'PX', ttl) then out[i] = ttl else out[i] = -1 end
  end
end
return out`;

type Variant = 'fenced' | 'unfenced';
interface Run {
  readonly usPerKey: number;
  readonly keysPerSec: number;
  readonly busy: number;
}

const server = await startRedis();
const redis = new Redis({ port: server.port, maxRetriesPerRequest: 1 });
try {
  const sha: Record<Variant, string> = {
    fenced: String(await redis.script('LOAD', FENCED)),
    unfenced: String(await redis.script('LOAD', UNFENCED)),
  };
  const cpuSeconds = async (): Promise<number> => {
    const info = await redis.info('cpu');
    const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? Number.NaN);
    return field('used_cpu_user') + field('used_cpu_sys');
  };
  const fill = async (): Promise<void> => {
    // The walk before's keys (v1 and v2) go first: SCAN + UNLINK of this script's own prefix.
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', 'cf:*', 'COUNT', 1_000);
      cursor = next;
      if (found.length > 0) await redis.unlink(...found);
    } while (cursor !== '0');
    for (let at = 0; at < keys; at += 1_000) {
      const p = redis.pipeline();
      for (let i = at; i < Math.min(keys, at + 1_000); i++) p.set(`cf:product:v1:${i}`, OLD, 'PX', TTL_MS);
      await p.exec();
    }
  };
  const step = async (variant: Variant, found: readonly string[]): Promise<number> => {
    if (found.length === 0) return 0;
    const reads: Promise<(string | null)[]>[] = [];
    for (let at = 0; at < found.length; at += READ_CHUNK) {
      const chunk = found.slice(at, at + READ_CHUNK);
      reads.push(redis.mget(at === 0 ? [COUNTER, ...chunk] : chunk));
    }
    const replies = await Promise.all(reads);
    const inv = replies[0]?.[0] ?? '0';
    const values = replies.flatMap((r, n) => (n === 0 ? r.slice(1) : r));
    const writes: Promise<unknown>[] = [];
    for (let at = 0; at < found.length; at += WRITE_CHUNK) {
      const names: string[] = [];
      const argv: string[] = [];
      for (let i = at; i < Math.min(found.length, at + WRITE_CHUNK); i++) {
        const key = found[i] ?? '';
        names.push(key, key.replace(':v1:', ':v2:'));
        if (variant === 'fenced') argv.push(values[i] ?? '', NEW, String(TTL_MS));
        else argv.push(NEW, String(TTL_MS));
      }
      writes.push(redis.evalsha(sha[variant], names.length + 1, COUNTER, ...names, inv, ...argv));
    }
    const codes = (await Promise.all(writes)).flat();
    return codes.filter((c) => typeof c === 'number' && c > 0).length;
  };
  const scan = (cursor: string) => redis.scan(cursor, 'MATCH', 'cf:product:v1:*', 'COUNT', STEP);
  const walk = async (variant: Variant, inFlight: number): Promise<Run> => {
    await fill();
    const before = await cpuSeconds();
    const t0 = performance.now();
    let written = 0;
    // Up to `inFlight` steps read and written at once, each SCAN sent as soon as the cursor
    // before it is known: with one, Redis waits for each round trip as the job does.
    const steps = new Set<Promise<void>>();
    let next: Promise<[string, string[]]> | undefined = scan('0');
    while (next !== undefined) {
      const [cursor, found]: [string, string[]] = await next;
      next = cursor === '0' ? undefined : scan(cursor);
      const s: Promise<void> = step(variant, found).then((n) => {
        written += n;
        steps.delete(s);
      });
      steps.add(s);
      if (steps.size >= inFlight) await Promise.race(steps);
    }
    await Promise.all(steps);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (await cpuSeconds()) - before;
    if (written !== keys) throw new Error(`${variant}: ${written} of ${keys} keys written`);
    return { usPerKey: (cpu * 1e6) / keys, keysPerSec: keys / seconds, busy: cpu / seconds };
  };

  const rows = [
    { name: 'fenced, 1 step at a time', variant: 'fenced', inFlight: 1 },
    { name: 'unfenced, 1 step at a time', variant: 'unfenced', inFlight: 1 },
    { name: 'fenced, 3 steps in flight', variant: 'fenced', inFlight: 3 },
    { name: 'unfenced, 3 steps in flight', variant: 'unfenced', inFlight: 3 },
  ] as const;
  const runs = new Map<string, Run[]>(rows.map((r) => [r.name, []]));
  for (let round = 0; round < rounds; round++) {
    // Taking turns, the order reversed every other round: a drift of the machine touches all alike.
    const order = round % 2 === 0 ? rows : [...rows].reverse();
    for (const row of order) {
      const r = await walk(row.variant, row.inFlight);
      runs.get(row.name)?.push(r);
      process.stdout.write(
        `round ${round + 1} ${row.name.padEnd(28)} ${r.usPerKey.toFixed(2)} µs of Redis CPU a key, ${Math.round(r.keysPerSec).toLocaleString('en-US')} keys/s, Redis ${(r.busy * 100).toFixed(0)}% busy\n`,
      );
    }
  }
  const median = (xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = s.length >> 1;
    const m = s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
    return `${m.toFixed(2)} (${(s[0] ?? 0).toFixed(2)}–${(s[s.length - 1] ?? 0).toFixed(2)})`;
  };
  for (const [name, rs] of runs) {
    process.stdout.write(
      `${name.padEnd(28)} median of ${rs.length}: ${median(rs.map((r) => r.usPerKey))} µs a key; ${median(rs.map((r) => r.keysPerSec / 1000))} k keys/s; Redis busy ${median(rs.map((r) => r.busy * 100))} %\n`,
    );
  }
} finally {
  redis.disconnect();
  await server.stop();
}
