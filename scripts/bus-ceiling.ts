/**
 * What the bus's Redis side costs an invalidation's delivery to 8 processes, with none of the
 * library's work on either side: the ceiling under issue 15's "applied by 8 pods" figure
 * (docs/benchmarks.md, "Invalidation seen by 8 pods").
 *
 *   node --import tsx scripts/bus-ceiling.ts [messages]     (default 3,000: 1,000 a row)
 *
 * A private `redis-server` (the tests' `startRedis`: a free port, no persistence, removed at the end) and 8 subscriber
 * processes (this file with `--sub`): plain ioredis subscribers that `JSON.parse` what they get and
 * note when, on a clock shared by the processes of one machine. One publisher sends, in blocks of
 * 50 taking turns, each message after a 2 ms pause:
 * - `floor`: PUBLISH of a 220-byte message (the invalidation bench's floor);
 * - `two scripts`: the shipped `invalidate-1.lua` (the tombstone), awaited, then the shipped
 *   `bus-publish-1.lua` (XREVRANGE, XADD, PUBLISH): the two round trips `cache.delete` makes;
 * - `one script`: the shipped `invalidate-publish-n.lua` (the tombstone, then the same XADD and
 *   PUBLISH): the one round trip `cache.delete` makes since 2026-12-02 night.
 * Prints, per row, the time from just before the call until all 8 had the message: p50 and p99,
 * and their ratio to the floor's.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { startRedis } from '../test/helpers/index.js';

const SUBSCRIBERS = 8;
const CHANNEL = 'ceiling';
const now = () => performance.timeOrigin + performance.now();
const script = (path: string) =>
  readFileSync(new URL(`../libs/tiered-cache/src/${path}`, import.meta.url), 'utf8');
/** What a subscriber reads of a bus message: built once (a schema built per message costs more than the rest). */
const messageSchema = z.object({ event: z.object({ seq: z.string() }) });
const ROWS = ['floor', 'two scripts', 'one script'] as const;
type Row = (typeof ROWS)[number];

async function subscriber(port: number): Promise<void> {
  const times: Record<string, number> = {};
  const sub = new Redis({ port });
  sub.on('message', (_channel: string, message: string) => {
    const at = now();
    const seq = message.startsWith('{')
      ? messageSchema.parse(JSON.parse(message)).event.seq
      : message.slice(0, message.indexOf('|'));
    times[seq] = at;
  });
  await sub.subscribe(CHANNEL);
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (line !== 'report') continue;
    process.stdout.write(`${JSON.stringify(times)}\n`);
    break;
  }
  await sub.quit();
}

async function main(): Promise<void> {
  const total = z.coerce.number().int().min(300).max(100_000).default(3_000).parse(process.argv[2]);
  const server = await startRedis();
  const port = server.port;
  const pub = new Redis({ port, maxRetriesPerRequest: 1 });
  const subs: ChildProcessWithoutNullStreams[] = [];
  try {
    const tombstone = String(await pub.script('LOAD', script('drivers/redis/scripts/invalidate-1.lua')));
    const publish = String(await pub.script('LOAD', script('bus/bus-publish-1.lua')));
    const both = String(await pub.script('LOAD', script('drivers/redis/scripts/invalidate-publish-n.lua')));
    const self = new URL(import.meta.url).pathname;
    for (let i = 0; i < SUBSCRIBERS; i++)
      subs.push(spawn(process.execPath, ['--import', 'tsx', self, '--sub', String(port)], { stdio: 'pipe' }));
    const lines = subs.map((s) => createInterface({ input: s.stdout })[Symbol.asyncIterator]());
    for (const l of lines) await l.next();
    const sent = new Map<string, { row: Row; at: number }>();
    for (let i = 0; i < total; i++) {
      const row = ROWS[Math.floor(i / 50) % ROWS.length] ?? 'floor';
      const seq = String(i);
      const key = `item:v1:${seq}`;
      await pub.set(key, 'x'.repeat(150), 'PX', 60_000);
      await new Promise((r) => setTimeout(r, 2));
      const event = JSON.stringify({
        event_type: 'invalidate',
        namespace: 'item',
        keys: [seq],
        version: 1,
        seq,
      });
      const at = now();
      sent.set(seq, { row, at });
      if (row === 'floor') await pub.publish(CHANNEL, `${seq}|`.padEnd(220, 'x'));
      else if (row === 'two scripts') {
        await pub.evalsha(tombstone, 1, key, `~t${seq}`, '60000');
        await pub.evalsha(publish, 1, 'stream', CHANNEL, '10000', event);
      } else await pub.evalsha(both, 2, 'stream', key, CHANNEL, '10000', event, '60000', `~t${seq}`);
    }
    await new Promise((r) => setTimeout(r, 500));
    const reports: Record<string, number>[] = [];
    for (const [k, s] of subs.entries()) {
      s.stdin.write('report\n');
      const line = await lines[k]?.next();
      reports.push(z.record(z.string(), z.number()).parse(JSON.parse(String(line?.value))));
    }
    const latencies = new Map<Row, number[]>(ROWS.map((r) => [r, []]));
    let missing = 0;
    for (const [seq, { row, at }] of sent) {
      const received = reports.map((r) => r[seq]);
      if (received.some((t) => t === undefined)) missing++;
      else latencies.get(row)?.push(Math.max(...received.map((t) => t ?? 0)) - at);
    }
    const pct = (xs: readonly number[], p: number) =>
      [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? 0;
    const floor = latencies.get('floor') ?? [];
    for (const row of ROWS) {
      const xs = latencies.get(row) ?? [];
      const [p50, p99] = [pct(xs, 0.5), pct(xs, 0.99)];
      process.stdout.write(
        `${row.padEnd(12)} all ${SUBSCRIBERS} received: p50 ${p50.toFixed(2)} ms (${(p50 / pct(floor, 0.5)).toFixed(2)}× the floor's), p99 ${p99.toFixed(2)} ms (${(p99 / pct(floor, 0.99)).toFixed(2)}×), ${xs.length} messages\n`,
      );
    }
    if (missing > 0) throw new Error(`${missing} messages did not reach every subscriber`);
  } finally {
    for (const s of subs) s.kill();
    pub.disconnect();
    await server.stop();
  }
}

if (process.argv[2] === '--sub') await subscriber(Number(process.argv[3]));
else await main();
