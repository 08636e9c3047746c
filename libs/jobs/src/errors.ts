/** Coded errors of the job layer (README lists each). */
export const JOB_ERROR_CODES = {
  E_JOB_CONFIG: 'a queue or worker setting is invalid (the message names the variable)',
  E_JOB_INVALID_PAYLOAD: 'a job payload does not match its schema: refused at enqueue, and by the worker',
  E_JOB_UNKNOWN: 'no such job name in the catalogue, or a job id that does not exist',
  E_JOB_INTERNAL: 'the job name is added by other jobs only',
  E_JOB_UNKNOWN_NAMESPACE: 'the payload names a namespace the worker has no definition for',
  E_JOB_QUEUE_UNAVAILABLE:
    'the queue Redis is not connected or did not answer in time (nothing was enqueued, or it may be once Redis is back)',
} as const;

export type JobErrorCode = keyof typeof JOB_ERROR_CODES;

export class JobError extends Error {
  readonly code: JobErrorCode;

  constructor(code: JobErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'JobError';
    this.code = code;
  }
}

export function isJobError(e: unknown): e is JobError {
  return e instanceof JobError;
}
