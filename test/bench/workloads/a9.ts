/**
 * The plan's A9 benchmark: 10,000 sets, then 10,000 gets of the same keys, through each library,
 * one caller awaiting every call; target p99 < 5 ms. Each library runs with no L1 (every get is a
 * Redis round trip: the case the target is about) and, for the libraries that have one, with L1
 * (the sets fill it, so the gets are L1 hits). Three rounds, each library once a round in turn,
 * over fresh keys each round; the median round's figures with the other rounds' p99 beside them.
 */
import { ADAPTERS } from '../adapters/index.js';
import { lruFloor } from '../adapters/lru.js';
import { errorMessage, isBenchValue, makeValue } from '../data.js';
import { errorRow, formatUs, percentile, spread } from '../measure.js';
import type { AdapterSpec, CacheAdapter, Row, Tier, Workload, WorkloadContext } from '../types.js';

const NAME = 'a9';
const DEFAULT_N = 10_000;
const ROUNDS = 3;
const TARGET_P99_MS = 5;

interface Round {
  readonly opsPerSec: number;
  readonly set: { readonly p50: number; readonly p99: number };
  readonly get: { readonly p50: number; readonly p99: number };
  readonly bad: number;
}

async function timed(
  n: number,
  op: (i: number) => Promise<boolean>,
): Promise<{ p50: number; p99: number; bad: number }> {
  const latencies = new Float64Array(n);
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const good = await op(i);
    latencies[i] = performance.now() - start;
    if (!good) bad++;
  }
  latencies.sort();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), bad };
}

async function round(cache: CacheAdapter, n: number, r: number): Promise<Round> {
  const key = (i: number) => `a9-${r}-${i}`;
  const t0 = performance.now();
  const set = await timed(n, async (i) => {
    await cache.set(key(i), makeValue(key(i)));
    return true;
  });
  const get = await timed(n, async (i) => {
    const v = cache.unwrap(await cache.get(key(i)));
    return isBenchValue(v) && v.id === key(i);
  });
  const seconds = (performance.now() - t0) / 1000;
  return { opsPerSec: (2 * n) / seconds, set, get, bad: get.bad };
}

interface Contender {
  readonly spec: AdapterSpec;
  readonly tier: Tier;
  readonly name: string;
  readonly cache: CacheAdapter;
  readonly loads: () => number;
  readonly rounds: Round[];
}

const ms = (x: number): string => `${formatUs(x)} µs`;

function rowOf(c: Contender): Row {
  const ops = spread(c.rounds.map((r) => r.opsPerSec));
  const median = c.rounds.find((r) => r.opsPerSec === ops.median) ?? c.rounds[0];
  const p99s = spread(c.rounds.map((r) => Math.max(r.set.p99, r.get.p99)));
  const bad = c.rounds.reduce((sum, r) => sum + r.bad, 0);
  const parts =
    median === undefined
      ? []
      : [
          `set p50 ${ms(median.set.p50)} p99 ${ms(median.set.p99)}`,
          `get p50 ${ms(median.get.p50)} p99 ${ms(median.get.p99)}`,
        ];
  parts.push(
    `worse p99 of set/get over ${c.rounds.length} rounds ${ms(p99s.min)}–${ms(p99s.max)} (median ${ms(p99s.median)}; target < ${TARGET_P99_MS} ms: ${p99s.median < TARGET_P99_MS ? 'met' : 'NOT met'})`,
    `loader ${c.loads()}`,
  );
  if (bad > 0) parts.push(`${bad} BAD READS (invalid)`);
  return {
    workload: NAME,
    name: c.name,
    role: c.spec.role,
    opsPerSec: ops.median,
    extra: parts.join(', '),
    runs: c.rounds.map((r) => r.opsPerSec),
  };
}

export const a9: Workload = {
  name: NAME,
  describe: `the plan's A9: ${DEFAULT_N.toLocaleString('en-US')} awaited sets then ${DEFAULT_N.toLocaleString('en-US')} awaited gets, one caller; ${ROUNDS} rounds in turn; ops/s of the median round; target p99 < ${TARGET_P99_MS} ms`,
  async run(ctx: WorkloadContext) {
    const n = Math.min(ctx.n ?? DEFAULT_N, DEFAULT_N);
    const rows: Row[] = [];
    const contenders: Contender[] = [];
    try {
      for (const tier of ['l2-only', 'tiered'] as const) {
        // The lru-cache floor has no Redis: it is not what A9 measures.
        for (const spec of ADAPTERS.filter((a) => a.tiers.includes(tier) && a !== lruFloor)) {
          const name = `${spec.name} (${tier === 'l2-only' ? 'no L1' : 'L1 + L2'})`;
          let loads = 0;
          try {
            const cache = await spec.setup({
              port: ctx.port,
              tier,
              prefix: `${ctx.runId}:${NAME}:${tier}:${spec.name.replace(/\W+/g, '-')}:`,
              load: async (key) => {
                loads++;
                return makeValue(key);
              },
            });
            contenders.push({ spec, tier, name, cache, loads: () => loads, rounds: [] });
          } catch (err) {
            rows.push(errorRow(NAME, name, spec.role, errorMessage(err)));
          }
        }
      }
      // A short warm-up round each (JIT, connections) that is not counted.
      for (const c of contenders) await round(c.cache, Math.min(n, 1_000), 0);
      for (let r = 1; r <= ROUNDS; r++) {
        ctx.log(`${NAME}: round ${r}/${ROUNDS} (n=${n})`);
        for (const c of contenders) c.rounds.push(await round(c.cache, n, r));
      }
      for (const c of contenders) rows.push(rowOf(c));
    } finally {
      for (const c of contenders) await c.cache.close();
    }
    return rows;
  },
};
