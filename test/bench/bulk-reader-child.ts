/**
 * The concurrent reader of the bulk-invalidate bench, in its own process so that the event loop
 * timing the reads is not the one doing the walk. It GETs one fixed key in a loop, one command at
 * a time, awaited, and keeps every latency while a window is open.
 *
 * argv: <redisPort> <key>
 * stdout: `{"ready":true}` once connected and the key reads back non-null; then one line per
 * command: `{"started":true}` after `start`, a ReaderStats line after `stop`.
 * stdin: `start` opens a window, `stop` closes it; end of stdin closes the client (the process exits).
 */
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { errorMessage } from './data.js';
import { percentile } from './measure.js';
import type { ReaderStats } from './workloads/bulk-invalidate.js';

function statsOf(latencies: readonly number[], missing: number, seconds: number): ReaderStats {
  const sorted = Float64Array.from(latencies).sort();
  let over10 = 0;
  for (const ms of sorted) if (ms >= 10) over10++;
  return {
    count: sorted.length,
    seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    over10,
    missing,
  };
}

async function main(): Promise<void> {
  const [portArg = '', key = ''] = process.argv.slice(2);
  const port = Number(portArg);
  if (!Number.isInteger(port) || key === '') {
    throw new Error(`usage: bulk-reader-child <port> <key>, got ${process.argv.slice(2).join(' ')}`);
  }
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableAutoPipelining: false });
  await client.connect();
  try {
    if ((await client.get(key)) === null) throw new Error(`${key} does not exist`);
    let open = false;
    let latencies: number[] = [];
    let missing = 0;
    let loop: Promise<void> = Promise.resolve();
    const read = async (): Promise<void> => {
      while (open) {
        const t0 = performance.now();
        const v = await client.get(key);
        latencies.push(performance.now() - t0);
        if (v === null) missing++;
      }
    };
    let openedAt = 0;
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    for await (const line of createInterface({ input: process.stdin })) {
      const command = line.trim();
      if (command === 'start' && !open) {
        latencies = [];
        missing = 0;
        open = true;
        openedAt = performance.now();
        loop = read();
        process.stdout.write(`${JSON.stringify({ started: true })}\n`);
      } else if (command === 'stop') {
        open = false;
        await loop;
        const stats = statsOf(latencies, missing, (performance.now() - openedAt) / 1000);
        process.stdout.write(`${JSON.stringify(stats)}\n`);
      }
    }
  } finally {
    process.stdin.destroy();
    await client.quit().catch(() => {});
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bulk-reader-child: ${errorMessage(err)}\n`);
  process.exitCode = 1;
});
