import { ADAPTERS } from '../adapters/index.js';
import { errorMessage, forEachLimit, isBenchValue, makeValue } from '../data.js';
import { bestOf, errorRow, formatUs, type LoopResult, percentile } from '../measure.js';
import type { AdapterSpec, CacheAdapter, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'l2-hit';
const DEFAULT_N = 200_000;
const RUNS = 3;
const KEYS = 10_000;
const CALLERS = 64;

interface L2Result extends LoopResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const keyAt = (i: number): string => `k-${i % KEYS}`;

/**
 * CALLERS loops share one op counter, so each op takes the next key: all 10k keys are read in
 * turn and no caller can finish early while the others still queue behind it.
 */
async function callersLoop(cache: CacheAdapter, n: number): Promise<L2Result> {
  const latencies = new Float64Array(n);
  let next = 0;
  let bad = 0;
  const caller = async (): Promise<void> => {
    while (next < n) {
      const op = next++;
      const key = keyAt(op);
      const start = performance.now();
      const v = cache.unwrap(await cache.get(key));
      latencies[op] = performance.now() - start;
      if (!isBenchValue(v) || v.id !== key) bad++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, caller));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort();
  return { opsPerSec: n / seconds, bad, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

async function measure(spec: AdapterSpec, ctx: WorkloadContext, n: number): Promise<Row> {
  let loads = 0;
  const cache = await spec.setup({
    port: ctx.port,
    tier: 'l2-only',
    prefix: `${ctx.runId}:${NAME}:${spec.name.replace(/\W+/g, '-')}:`,
    load: async (key) => {
      loads++;
      return makeValue(key);
    },
  });
  try {
    // Through the library's own set(), because each one writes its own envelope to Redis.
    const keys = Array.from({ length: KEYS }, (_, i) => keyAt(i));
    await forEachLimit(keys, CALLERS, (key) => cache.set(key, makeValue(key)));
    await callersLoop(cache, Math.min(n, 20_000));
    const loadsBefore = loads;
    const { best, bad, all } = await bestOf(RUNS, () => callersLoop(cache, n));
    const parts = [
      `p50 ${formatUs(best.p50Ms)} µs`,
      `p99 ${formatUs(best.p99Ms)} µs`,
      `loader ${loads - loadsBefore}`,
    ];
    if (bad > 0) parts.push(`${bad} BAD READS (invalid)`);
    return {
      workload: NAME,
      name: spec.name,
      role: spec.role,
      opsPerSec: best.opsPerSec,
      extra: parts.join(', '),
      runs: all,
    };
  } finally {
    await cache.close();
  }
}

export const l2Hit: Workload = {
  name: NAME,
  describe: `${CALLERS} callers, sequential awaited gets over ${KEYS} keys in Redis, no L1, best of ${RUNS}`,
  async run(ctx) {
    const n = ctx.n ?? DEFAULT_N;
    const rows: Row[] = [];
    for (const spec of ADAPTERS.filter((a) => a.tiers.includes('l2-only'))) {
      ctx.log(`${NAME}: ${spec.name} (n=${n})`);
      try {
        rows.push(await measure(spec, ctx, n));
      } catch (err) {
        rows.push(errorRow(NAME, spec.name, spec.role, errorMessage(err)));
      }
    }
    return rows;
  },
};
