import { JobError } from './errors.js';

/**
 * The queue connection is known to be down (reconnecting or closed): a call would wait in the
 * offline queue. A lazy connection not yet used ('wait') is not down: the call connects it.
 */
export function queueDown(status: string): boolean {
  return status === 'reconnecting' || status === 'close' || status === 'end';
}

/** Rejects with E_JOB_QUEUE_UNAVAILABLE if `p` has not settled within `ms` (p keeps running). */
export async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new JobError('E_JOB_QUEUE_UNAVAILABLE', `the queue Redis did not answer within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
