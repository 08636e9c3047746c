import { CodedError } from '@cachefleet/config';

/** Coded errors of the worker process; the README's table is checked against this one. */
export const WORKER_ERROR_CODES = {
  E_WORKER_CONFIG:
    'a worker setting or --queues is invalid, or the WORKER_DEFINITIONS module exports no createDefinitions (the message names the variable or flag); the worker does not start',
} as const;

export type WorkerErrorCode = keyof typeof WORKER_ERROR_CODES;

export class WorkerError extends CodedError<WorkerErrorCode> {}
