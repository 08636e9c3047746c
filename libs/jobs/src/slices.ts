import type { Job } from 'bullmq';
import { z } from 'zod';
import { type InvalidateSlicePayload, JOBS, type JobName, sliceResultSchema } from './catalogue.js';
import { type JobClient, type JobView, jobOptions } from './client.js';

/**
 * The pattern-job family, in one place: an `invalidate` of scope pattern (the parent) fans out one
 * `invalidate-slice` child per cache master as a BullMQ flow, child `i` being `<parent id>-slice-<i>`.
 * The handler adds them, the API's `GET /jobs/:id` lists them and the CLI's follow sums them, all
 * through these functions.
 */
const SLICE_JOB = 'invalidate-slice' satisfies JobName;
const SLICE_QUEUE = JOBS[SLICE_JOB].queue;

export function sliceId(parentId: string, index: number): string {
  return `${parentId}-slice-${index}`;
}

/**
 * Adds one child per payload under `parent`. Ids are fixed by the index, so adding them again after
 * a crash adds nothing (BullMQ ignores an existing id). A failed child fails the parent.
 */
export async function addSlices(
  jobs: JobClient,
  parent: Job,
  payloads: readonly InvalidateSlicePayload[],
): Promise<void> {
  const parentId = parent.id;
  if (parentId === undefined) throw new Error('a parent job has an id');
  const queue = jobs.queue(SLICE_QUEUE);
  // Replicated as an enqueue is (WAIT on Sentinel): a child lost in a failover would leave its
  // parent waiting for ever. Unconfirmed, the attempt fails and its retry adds them again.
  await jobs.replicated(() =>
    Promise.all(
      payloads.map((payload, i) =>
        queue.add(
          SLICE_JOB,
          { payload },
          {
            ...jobOptions(SLICE_JOB, payload, sliceId(parentId, i)),
            parent: { id: parentId, queue: parent.queueQualifiedName },
            failParentOnFailure: true,
          },
        ),
      ),
    ),
  );
}

/** The slices' counts summed: a completed child's result, a running one's last progress. */
export interface SliceTotals {
  readonly slices: number;
  readonly completed: number;
  readonly scanned: number;
  readonly unlinked: number;
}

export interface SliceFamily {
  /** The children added so far, in index order. */
  readonly children: readonly JobView[];
  readonly totals: SliceTotals;
}

/** The parent reports `{ step, slices }` once it has fanned out (and `slices` again when done). */
const fannedOut = z.looseObject({ slices: z.number().int().min(1).max(10_000) });

/**
 * A pattern invalidation's children once it has fanned out; undefined for any other job (another
 * scope, another kind, or a parent that has not fanned out yet).
 */
export async function readSlices(jobs: JobClient, parent: JobView): Promise<SliceFamily | undefined> {
  if (parent.name !== 'invalidate') return undefined;
  const progress = fannedOut.safeParse(parent.progress);
  if (!progress.success) return undefined;
  const slices = progress.data.slices;
  const found = await Promise.all(
    Array.from({ length: slices }, (_, i) => jobs.jobIn(SLICE_QUEUE, sliceId(parent.id, i))),
  );
  const children = found.filter((c): c is JobView => c !== undefined);
  const completed = children.filter((c) => c.state === 'completed').length;
  // A completed child's result, a running one's last progress: both carry its counts.
  const counts = countSlices(children.map((c) => (c.state === 'completed' ? c.result : c.progress)));
  return { children, totals: { slices, completed, ...counts } };
}

/** Sums what slices report (results or progress); the parent's own result is summed here too. */
export function countSlices(reports: readonly unknown[]): { scanned: number; unlinked: number } {
  let scanned = 0;
  let unlinked = 0;
  for (const report of reports) {
    const counts = sliceResultSchema.safeParse(report);
    if (!counts.success) continue;
    scanned += counts.data.scanned;
    unlinked += counts.data.unlinked;
  }
  return { scanned, unlinked };
}
