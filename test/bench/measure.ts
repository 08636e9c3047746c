import type { Row } from './types.js';

export interface LoopResult {
  readonly opsPerSec: number;
  /** Reads that came back undefined or with another key's value; non-zero means the row is invalid. */
  readonly bad: number;
}

/** Percentile of an already sorted array (nearest rank). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/**
 * Best of `runs` rather than the mean: on a shared 2-core box the noise is one-sided (GC of a
 * previous row, another process), so the best run is the closest to what the code can do.
 */
export async function bestOf<R extends LoopResult>(
  runs: number,
  once: () => Promise<R>,
): Promise<{ best: R; bad: number; all: number[] }> {
  const all: number[] = [];
  let bad = 0;
  let best: R | undefined;
  for (let i = 0; i < runs; i++) {
    const r = await once();
    all.push(r.opsPerSec);
    // Summed, not taken from the best run: one bad read in any run invalidates the row.
    bad += r.bad;
    if (best === undefined || r.opsPerSec > best.opsPerSec) best = r;
  }
  if (best === undefined) throw new Error('bestOf needs at least one run');
  return { best, bad, all };
}

/** Median, min and max of a non-empty list of runs (the median of an even count is the upper one). */
export function spread(values: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const min = sorted[0];
  const max = sorted[sorted.length - 1];
  if (median === undefined || min === undefined || max === undefined)
    throw new Error('spread needs at least one run');
  return { median, min, max };
}

export function errorRow(workload: string, name: string, role: Row['role'], error: string): Row {
  return { workload, name, role, opsPerSec: null, extra: '', error };
}

export function formatUs(ms: number): string {
  return `${Math.round(ms * 1000)}`;
}
