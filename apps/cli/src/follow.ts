import { type JobClient, type JobView, readSlices, type SliceTotals } from '@cachefleet/jobs';
import { z } from 'zod';
import { deadline } from './connect.js';
import { CliError } from './errors.js';
import { pairs } from './format.js';
import type { ProgressBar, ProgressState } from './progress.js';

/** How often a followed job is read: a few round trips, invisible to Redis, smooth enough for a bar. */
const POLL_MS = 250;

const FINAL_STATES = new Set(['completed', 'failed']);

/** Progress reports are objects of numbers and strings (see libs/jobs handlers); anything else is shown raw. */
const progressRecord = z.record(z.string(), z.union([z.number(), z.string(), z.boolean(), z.null()]));

/** A pattern invalidation's slices summed (libs/jobs reads them); undefined for every other job. */
export async function sliceTotals(jobs: JobClient, view: JobView): Promise<SliceTotals | undefined> {
  return (await readSlices(jobs, view))?.totals;
}

/** What the bar shows for a job: its state, and how far it is from what its handler reported. */
export function describeProgress(view: JobView, slices: SliceTotals | undefined): ProgressState {
  const parts: string[] = [view.state];
  let fraction: number | undefined;
  if (slices !== undefined) {
    fraction = slices.completed / slices.slices;
    parts.push(
      `slices ${slices.completed}/${slices.slices}`,
      `scanned=${slices.scanned}`,
      `unlinked=${slices.unlinked}`,
    );
  } else if (typeof view.progress === 'number') {
    // BullMQ starts every job at 0; the handlers here report objects, so 0 means "nothing yet".
    if (view.progress > 0) fraction = view.progress / 100;
  } else {
    const p = progressRecord.safeParse(view.progress);
    if (p.success && Object.keys(p.data).length > 0) {
      // `percent` is the bar's own figure: not repeated as text.
      const { done, total, percent: _percent, ...rest } = p.data;
      if (typeof done === 'number' && typeof total === 'number' && total > 0) {
        fraction = done / total;
        parts.push(`${done}/${total}`);
      } else if (done !== undefined) parts.push(`done=${done}`);
      const more = pairs(rest);
      if (more) parts.push(more);
    }
  }
  if (view.attemptsMade > 0 && view.failedReason !== undefined && !FINAL_STATES.has(view.state)) {
    parts.push(`(attempt ${view.attemptsMade} failed: ${view.failedReason}; retrying)`);
  }
  return { fraction, text: parts.join(' ') };
}

/**
 * Reads the job until it is completed or failed (every attempt used), drawing its progress.
 * Each read has a deadline, so a Redis that goes away mid-follow ends the run with exit 3.
 */
export async function followJob(
  jobs: JobClient,
  id: string,
  bar: ProgressBar | undefined,
  sleep: (ms: number) => Promise<void> = delay,
): Promise<JobView> {
  for (;;) {
    const view = await deadline(jobs.job(id), `reading job ${id}`);
    if (view === undefined || view.state === 'unknown') {
      bar?.finish();
      throw new CliError('E_CLI_NOT_FOUND', `job ${id} is gone (removed while followed)`);
    }
    if (FINAL_STATES.has(view.state)) {
      // JobClient.job reads the job before its state: a job that ended in between comes back
      // "completed" without its result (or "failed" without its reason). An ended job no longer
      // changes, so one more read is whole.
      const again = await deadline(jobs.job(id), `reading job ${id}`);
      const end = again !== undefined && FINAL_STATES.has(again.state) ? again : view;
      const slices =
        bar !== undefined ? await deadline(sliceTotals(jobs, end), `reading job ${id}`) : undefined;
      bar?.finish(describeProgress(end, slices));
      return end;
    }
    const slices =
      bar !== undefined ? await deadline(sliceTotals(jobs, view), `reading job ${id}`) : undefined;
    bar?.update(describeProgress(view, slices));
    await sleep(POLL_MS);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
