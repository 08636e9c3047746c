/**
 * One process of the stampede fleet. Separate processes, not one process with many caches,
 * because a per-process lock or coalescing map is exactly what the workload is meant to expose.
 *
 * argv: <lib> <redisPort> <key> <counterKey> <concurrency> <loaderMs>
 * stdout protocol: "ready" once set up, then one JSON line with the result after "go" on stdin.
 */
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { STAMPEDE_ADAPTERS } from './adapters/index.js';
import { errorMessage, isBenchValue, makeValue, sleep } from './data.js';

export interface ChildReport {
  readonly localCalls: number;
  readonly ok: number;
  readonly bad: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly ms: number;
}

async function main(): Promise<void> {
  const [lib = '', portArg = '', key = '', counterKey = '', concurrencyArg = '', loaderMsArg = ''] =
    process.argv.slice(2);
  const spec = STAMPEDE_ADAPTERS[lib];
  const port = Number(portArg);
  const concurrency = Number(concurrencyArg);
  const loaderMs = Number(loaderMsArg);
  if (
    spec === undefined ||
    !Number.isInteger(port) ||
    key === '' ||
    counterKey === '' ||
    !(concurrency > 0)
  ) {
    throw new Error(
      `usage: stampede-child <lib> <port> <key> <counterKey> <concurrency> <loaderMs>, got ${process.argv.slice(2).join(' ')}`,
    );
  }
  const counter = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await counter.connect();
  let localCalls = 0;
  const cache = await spec.setup({
    port,
    tier: 'tiered',
    prefix: `${key}:${lib}:`,
    load: async (k) => {
      localCalls++;
      // Counted in Redis, because the fleet-wide total is what the row reports.
      await counter.incr(counterKey);
      await sleep(loaderMs);
      return makeValue(k);
    },
  });
  try {
    // Opens the library's connections now, so "go" measures the stampede and not the handshake.
    await cache.set('warm-up', makeValue('warm-up'));
    const lines = createInterface({ input: process.stdin });
    process.stdout.write('ready\n');
    let go = false;
    for await (const line of lines) {
      go = line.trim() === 'go';
      if (go) break;
    }
    lines.close();
    process.stdin.destroy();
    // The parent closed stdin without a start signal: it gave up on the fleet, so do nothing.
    if (!go) return;

    const t0 = performance.now();
    const settled = await Promise.allSettled(
      Array.from({ length: concurrency }, async () => cache.unwrap(await cache.get(key))),
    );
    const ms = performance.now() - t0;
    let ok = 0;
    let bad = 0;
    let errors = 0;
    let firstError: string | undefined;
    for (const s of settled) {
      if (s.status === 'rejected') {
        errors++;
        firstError ??= errorMessage(s.reason);
      } else if (isBenchValue(s.value) && s.value.id === key) ok++;
      else bad++;
    }
    const report: ChildReport = { localCalls, ok, bad, errors, ms, ...(firstError ? { firstError } : {}) };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await cache.close();
    await counter.quit();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`stampede-child: ${errorMessage(err)}\n`);
  process.exitCode = 1;
});
