import {
  busDelays,
  checkHistory,
  DEFAULT_BUS_DELAY_MS,
  describeViolation,
  runFleet,
  summarize,
} from '../../consistency.js';
import { errorMessage } from '../data.js';
import { errorRow } from '../measure.js';
import type { Row, Workload } from '../types.js';

const NAME = 'consistency';
const WORKERS = 8;
/** 8 × 18,000 operations at 80% reads: about 115,000 reads checked. */
const DEFAULT_N = 144_000;
const ROW = 'cachefleet (tiered)';
const FLEET_ROW = "cachefleet (tiered), wait: 'fleet', 0 ms allowance";

/**
 * DESIGN invariant 2 under load: the randomized checker of test/consistency.ts with more workers
 * and more operations than the test. The row reports every read checked and every violation
 * (details go to the log); it does not fail the bench, the test does that. `--n` is the total
 * number of operations across the workers.
 */
export const consistency: Workload = {
  name: NAME,
  describe:
    `${WORKERS} processes × random reads / deletes / pattern, tag, namespace invalidations over 20 ids; ` +
    `every read checked (bus delay allowance ${DEFAULT_BUS_DELAY_MS} ms; and with every invalidation ` +
    `under { wait: 'fleet' }, 0 ms)`,
  async run(ctx) {
    const n = ctx.n ?? DEFAULT_N;
    const opsPerWorker = Math.max(1, Math.ceil(n / WORKERS));
    ctx.log(`${NAME}: ${WORKERS} workers × ${opsPerWorker} ops`);
    return [
      await checkedRun(ctx, opsPerWorker, ROW, false, DEFAULT_BUS_DELAY_MS),
      await checkedRun(ctx, opsPerWorker, FLEET_ROW, true, 0),
    ];
  },
};

/** One fleet run, every read checked with `busDelayMs` of allowance. */
async function checkedRun(
  ctx: Parameters<Workload['run']>[0],
  opsPerWorker: number,
  name: string,
  waitFleet: boolean,
  busDelayMs: number,
): Promise<Row> {
  try {
    const run = await runFleet({
      redisUrl: `redis://127.0.0.1:${ctx.port}`,
      workers: WORKERS,
      opsPerWorker,
      durationMs: 0,
      waitFleet,
      prefix: `${ctx.runId}:${NAME}:${waitFleet ? 'fleet:' : ''}`,
      log: ctx.log,
    });
    const r = checkHistory(run.lines, { busDelayMs });
    const bus = busDelays(run.lines);
    const ops = run.summaries.reduce((s, w) => s + w.ops, 0);
    for (const line of r.violations.slice(0, 10)) ctx.log(describeViolation(line, run.startedAt));
    const classes = Object.entries(summarize(r.violations))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const parts = [
      `reads checked ${r.readsChecked.toLocaleString('en-US')}`,
      `violations ${r.violations.length}${classes ? ` (${classes})` : ''}`,
      `invalidations ${r.acknowledged.toLocaleString('en-US')}` +
        (r.unacknowledged > 0 ? ` (${r.unacknowledged} not acknowledged)` : ''),
      bus
        ? `bus delay p50 ${bus.p50.toFixed(1)} / p99 ${bus.p99.toFixed(1)} / max ${bus.max.toFixed(1)} ms`
        : 'bus delay n/a',
      `wall ${Math.round(run.wallMs)} ms`,
    ];
    if (r.readsFailed > 0) parts.push(`${r.readsFailed} reads failed`);
    return {
      workload: NAME,
      name,
      role: 'project',
      opsPerSec: ops / (run.wallMs / 1000),
      extra: parts.join(', '),
    };
  } catch (err) {
    return errorRow(NAME, name, 'project', errorMessage(err));
  }
}
