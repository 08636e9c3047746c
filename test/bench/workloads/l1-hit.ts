import { ADAPTERS } from '../adapters/index.js';
import { errorMessage, isBenchValue, makeValue } from '../data.js';
import { bestOf, errorRow, type LoopResult } from '../measure.js';
import type { AdapterSpec, CacheAdapter, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'l1-hit';
const DEFAULT_N = 2_000_000;
const RUNS = 3;
const KEY = 'hot-1';

/** One caller awaiting each get, so the row measures per-call overhead, not concurrency. */
async function hitLoop(cache: CacheAdapter, n: number): Promise<LoopResult> {
  let bad = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const v = cache.unwrap(await cache.get(KEY));
    if (v === undefined) bad++;
  }
  const seconds = (performance.now() - t0) / 1000;
  return { opsPerSec: n / seconds, bad };
}

async function measure(spec: AdapterSpec, ctx: WorkloadContext, n: number): Promise<Row> {
  let loads = 0;
  const cache = await spec.setup({
    port: ctx.port,
    tier: 'tiered',
    prefix: `${ctx.runId}:${NAME}:${spec.name.replace(/\W+/g, '-')}:`,
    load: async (key) => {
      loads++;
      return makeValue(key);
    },
  });
  try {
    await cache.set(KEY, makeValue(KEY));
    const first = cache.unwrap(await cache.get(KEY));
    if (!isBenchValue(first) || first.id !== KEY) throw new Error('pre-filled key did not read back');
    // Warm-up lets the JIT settle and fills L1 for libraries whose set() writes only L2.
    await hitLoop(cache, Math.max(1_000, Math.floor(n / 4)));
    const loadsBefore = loads;
    const { best, bad, all } = await bestOf(RUNS, () => hitLoop(cache, n));
    const extra = `loader ${loads - loadsBefore}${bad > 0 ? `, ${bad} MISSES (invalid)` : ''}`;
    return { workload: NAME, name: spec.name, role: spec.role, opsPerSec: best.opsPerSec, extra, runs: all };
  } finally {
    await cache.close();
  }
}

export const l1Hit: Workload = {
  name: NAME,
  describe: `1 caller, await get() of one pre-filled key, best of ${RUNS}`,
  async run(ctx) {
    const n = ctx.n ?? DEFAULT_N;
    const rows: Row[] = [];
    for (const spec of ADAPTERS.filter((a) => a.tiers.includes('tiered'))) {
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
