/**
 * One library's L1 in a process of its own (`--expose-gc`), so that its heap holds nothing of the
 * others: the heap after a full GC, before and after `n` entries went into L1. Each entry is written
 * with the library's set() and then read once with get(), so that every library holds it in L1 the
 * way it keeps a read value (a library whose set writes only L2 fills L1 on that read).
 *
 * argv[2]: the JSON of `memoryChildArgsSchema`. stdout: one JSON line, `memoryChildReportSchema`.
 */
import { setImmediate as yieldToIo } from 'node:timers/promises';
import { ADAPTERS } from './adapters/index.js';
import { makeValue } from './data.js';
import { memoryChildArgsSchema, memoryChildReportSchema } from './memory-protocol.js';
import type { BenchValue } from './types.js';

/**
 * A value as a service holds one: flat strings, as JSON.parse or a database driver makes them.
 * (makeValue's `repeat` gives a rope whose halves are shared, a few hundred bytes for 1 KB.)
 */
function flatValue(key: string, payloadBytes: number): BenchValue {
  return JSON.parse(JSON.stringify(makeValue(key, payloadBytes))) as BenchValue;
}

const gcOrThrow = (): (() => void) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('memory-child needs node --expose-gc');
  return gc;
};

async function settledHeap(): Promise<number> {
  const gc = gcOrThrow();
  // Several rounds with I/O between: weak refs and finalisers of the fill are collected too.
  for (let i = 0; i < 4; i++) {
    gc();
    await yieldToIo();
  }
  // Off-heap memory too: a library may keep entries in Buffers (external to the V8 heap).
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

async function main(): Promise<void> {
  const args = memoryChildArgsSchema.parse(JSON.parse(process.argv[2] ?? 'null'));
  const spec = ADAPTERS.find((a) => a.name === args.adapter);
  if (spec === undefined) throw new Error(`no adapter named ${args.adapter}`);
  const cache = await spec.setup({
    port: args.port,
    tier: 'tiered',
    prefix: args.prefix,
    load: async (key) => flatValue(key, args.payloadBytes),
  });
  try {
    // One entry in and out first: lazily built state (scripts, codecs, JIT) is not counted per entry.
    await cache.set('warm-up', flatValue('warm-up', args.payloadBytes));
    cache.unwrap(await cache.get('warm-up'));
    const heapEmpty = await settledHeap();
    // Keys are made per chunk, not kept in one array: an async function's locals live until it
    // returns, so an array of them would still hold every id when the heap is measured. That
    // charged each library whose L1 key is not the bare id (a prefixed key: cachefleet, the peers)
    // for the bench's own copy of the id, ~24 bytes an entry; the floor, whose keys are those very
    // strings, paid nothing for it.
    const CHUNK = 256;
    const chunkAt = (i: number): string[] =>
      Array.from({ length: Math.min(CHUNK, args.n - i) }, (_, j) => `m-${i + j}`);
    for (let i = 0; i < args.n; i += CHUNK) {
      const chunk = chunkAt(i);
      await Promise.all(chunk.map((key) => cache.set(key, flatValue(key, args.payloadBytes))));
    }
    let verified = 0;
    for (let i = 0; i < args.n; i += CHUNK) {
      const chunk = chunkAt(i);
      const values = await Promise.all(chunk.map(async (key) => cache.unwrap(await cache.get(key))));
      values.forEach((v, j) => {
        const key = chunk[j];
        if (typeof v === 'object' && v !== null && 'id' in v && v.id === key) verified++;
      });
    }
    const heapFull = await settledHeap();
    const report = {
      adapter: args.adapter,
      heapEmpty,
      heapFull,
      rssFull: process.memoryUsage().rss,
      verified,
    };
    process.stdout.write(`${JSON.stringify(memoryChildReportSchema.parse(report))}\n`);
  } finally {
    await cache.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`memory-child: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
