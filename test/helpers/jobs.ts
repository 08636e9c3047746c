import type { JobClient, JobView } from '@cachefleet/jobs';
import { waitUntil } from './wait.js';

/**
 * Polls a job until it completed (with its result) or failed (with its reason). A view whose final
 * state comes without them was read across the job's move (JobClient.job reads the job, then its
 * state): the next poll has both.
 */
export function jobSettled(jobs: JobClient, id: string, timeoutMs = 90_000): Promise<JobView> {
  return waitUntil(
    `job ${id} to end`,
    async (note) => {
      const j = await jobs.job(id);
      note(`state ${j?.state ?? 'absent'}, progress ${JSON.stringify(j?.progress)}`);
      if (j?.state === 'completed' && j.result !== null && j.result !== undefined) return j;
      if (j?.state === 'failed' && j.failedReason !== undefined) return j;
      return undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}
