import { CodedError } from '@cachefleet/config';

/** Coded errors of the job layer; the README's table is checked against this one. */
export const JOB_ERROR_CODES = {
  E_JOB_CONFIG: 'a queue or worker setting is invalid (the message names the variable)',
  E_JOB_SYSTEM_ID:
    "a Redis holds another cachefleet system's id than CACHEFLEET_SYSTEM_ID (or than the other Redis): the process refuses to start (the message names both ids)",
  E_JOB_INVALID_PAYLOAD: 'a job payload does not match its schema: refused at enqueue, and by the worker',
  E_JOB_UNKNOWN: 'no such job name in the catalogue, or a job id that does not exist',
  E_JOB_INTERNAL: 'the job name is added by other jobs only',
  E_JOB_UNKNOWN_NAMESPACE: 'the payload names a namespace the worker has no definition for',
  E_JOB_QUEUE_UNAVAILABLE:
    'the queue Redis is not connected or did not answer in time (nothing was enqueued, or it may be once Redis is back)',
  E_JOB_MIGRATION:
    "a migration cannot run: the worker's definition of the namespace is not at the version asked (deploy the new definitions first)",
  E_JOB_BACKUP_CORRUPT:
    'a backup file fails its checksum, is truncated or damaged: the restore is refused before its first write',
  E_JOB_BACKUP_SIGNATURE:
    "a backup file's signature does not match BACKUP_HMAC_KEY, or it is unsigned while a key is set (or signed while none is): refused before the first write",
  E_JOB_BACKUP_KEY:
    'a backup file is encrypted and BACKUP_ENCRYPTION_KEY is unset or not the key it was written with: refused before the first write',
  E_JOB_BACKUP_INCOMPATIBLE:
    'a backup cannot be restored here: another format version, another key prefix, an older Redis, or the invalidation log no longer reaches back to it',
  E_JOB_BACKUP_NOT_FOUND: 'no such backup file (or no backup at all for latest)',
  E_JOB_BACKUP_BUSY: 'another backup or restore holds the lock: retried',
  E_JOB_ABORTED:
    'an attempt was stopped at a batch boundary, its cursor saved: its timeout passed or it was cancelled (retried), or the worker shut down (handed back)',
} as const;

export type JobErrorCode = keyof typeof JOB_ERROR_CODES;

export class JobError extends CodedError<JobErrorCode> {}

export function isJobError(e: unknown): e is JobError {
  return e instanceof JobError;
}
