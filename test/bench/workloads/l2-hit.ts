import { ADAPTERS } from '../adapters/index.js';
import { errorMessage, forEachLimit, isBenchValue, makeValue } from '../data.js';
import { errorRow, formatUs, type LoopResult, percentile, spread } from '../measure.js';
import type { AdapterSpec, CacheAdapter, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'l2-hit';
const DEFAULT_N = 200_000;
const ROUNDS = 5;
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

interface Contender {
  readonly spec: AdapterSpec;
  readonly cache: CacheAdapter;
  readonly loads: () => number;
  readonly results: L2Result[];
}

async function open(spec: AdapterSpec, ctx: WorkloadContext, n: number): Promise<Contender> {
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
  } catch (err) {
    await cache.close();
    throw err;
  }
  return { spec, cache, loads: () => loads, results: [] };
}

function rowOf(c: Contender, loadsBefore: number, floorRuns: readonly number[] | undefined): Row {
  const ops = c.results.map((r) => r.opsPerSec);
  const mid = spread(ops);
  // The run at the median throughput gives the latencies, so they belong to one real run.
  const median = c.results.find((r) => r.opsPerSec === mid.median) ?? c.results[0];
  const bad = c.results.reduce((sum, r) => sum + r.bad, 0);
  const parts = [
    `min ${Math.round(mid.min).toLocaleString('en-US')} / max ${Math.round(mid.max).toLocaleString('en-US')}`,
  ];
  if (floorRuns !== undefined && floorRuns.length === ops.length && c.spec.role !== 'floor') {
    // Each round's ratio against the floor's run of the same round: noise that hits a whole
    // round (another process, a GC-heavy neighbour) cancels out of it.
    const r = spread(ops.map((o, i) => o / (floorRuns[i] ?? Number.NaN)));
    parts.push(
      `vs floor per round ${r.min.toFixed(2)}–${r.max.toFixed(2)}× (median ${r.median.toFixed(2)}×)`,
    );
  }
  if (median !== undefined)
    parts.push(`p50 ${formatUs(median.p50Ms)} µs`, `p99 ${formatUs(median.p99Ms)} µs`);
  parts.push(`loader ${c.loads() - loadsBefore}`);
  if (bad > 0) parts.push(`${bad} BAD READS (invalid)`);
  return {
    workload: NAME,
    name: c.spec.name,
    role: c.spec.role,
    opsPerSec: mid.median,
    extra: parts.join(', '),
    runs: ops,
  };
}

export const l2Hit: Workload = {
  name: NAME,
  describe: `${CALLERS} callers, sequential awaited gets over ${KEYS} keys in Redis, no L1; ${ROUNDS} rounds, each library once a round in turn; median (min / max) ops/s`,
  async run(ctx) {
    const n = ctx.n ?? DEFAULT_N;
    const rows: Row[] = [];
    const contenders: Contender[] = [];
    try {
      for (const spec of ADAPTERS.filter((a) => a.tiers.includes('l2-only'))) {
        ctx.log(`${NAME}: ${spec.name} set-up`);
        try {
          contenders.push(await open(spec, ctx, n));
        } catch (err) {
          rows.push(errorRow(NAME, spec.name, spec.role, errorMessage(err)));
        }
      }
      const loadsBefore = new Map(contenders.map((c) => [c, c.loads()]));
      for (let round = 1; round <= ROUNDS; round++) {
        ctx.log(`${NAME}: round ${round}/${ROUNDS} (n=${n} each)`);
        for (const c of contenders) c.results.push(await callersLoop(c.cache, n));
      }
      const floorRuns = contenders.find((c) => c.spec.role === 'floor')?.results.map((r) => r.opsPerSec);
      for (const c of contenders) rows.push(rowOf(c, loadsBefore.get(c) ?? 0, floorRuns));
    } finally {
      for (const c of contenders) await c.cache.close();
    }
    return rows;
  },
};
