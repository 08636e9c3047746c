import { type Env, intSchema, parseEnv } from '@cachefleet/config';
import { z } from 'zod';
import { CaptureError } from './errors.js';

/** Settings of change capture, read by the worker's capture role and by `cachefleet capture`. */
export const CAPTURE_ENV_VARS = {
  CAPTURE_SCHEMA: 'PostgreSQL schema of the outbox table and trigger functions (default cachefleet)',
  CAPTURE_BATCH: 'outbox rows read, applied and pruned per turn (default 10000)',
  CAPTURE_POLL_MS:
    'poll interval besides LISTEN: a notification sent while nobody listened is lost (default 1000)',
  CAPTURE_LEASE_MS:
    'lease of the one active reader; a standby takes over within it plus a third (default 10000)',
  CAPTURE_COALESCE_AT:
    'per turn and namespace, from this many changed ids a tag carried by as many is invalidated once instead (default 100)',
  CAPTURE_JOB_AT:
    'a coalesced tag whose index holds at least this many cached entries is invalidated by an invalidate job (an `invalidate` worker runs it) instead of by the reader; 0: always by the reader (default 10000)',
} as const;

export interface CaptureConfig {
  readonly schema: string;
  readonly batch: number;
  readonly pollMs: number;
  readonly leaseMs: number;
  readonly coalesceAt: number;
  /** 0: never; else the tag index size (SCARD) from which a tag goes to an invalidate job. */
  readonly jobAt: number;
}

/** A plain lower-case identifier; it is quoted as well wherever it meets SQL. */
export const captureSchemaName = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must match ^[a-z_][a-z0-9_]{0,62}$')
  .refine((name) => !name.startsWith('pg_'), 'must not start with pg_ (reserved for system schemas)');

export const CAPTURE_ENV_SCHEMA = z.object({
  CAPTURE_SCHEMA: captureSchemaName.default('cachefleet').describe(CAPTURE_ENV_VARS.CAPTURE_SCHEMA),
  CAPTURE_BATCH: intSchema.min(1).max(100_000).default(10_000).describe(CAPTURE_ENV_VARS.CAPTURE_BATCH),
  CAPTURE_POLL_MS: intSchema.min(10).max(600_000).default(1_000).describe(CAPTURE_ENV_VARS.CAPTURE_POLL_MS),
  CAPTURE_LEASE_MS: intSchema
    .min(300)
    .max(600_000)
    .default(10_000)
    .describe(CAPTURE_ENV_VARS.CAPTURE_LEASE_MS),
  CAPTURE_COALESCE_AT: intSchema
    .min(2)
    .max(1_000_000)
    .default(100)
    .describe(CAPTURE_ENV_VARS.CAPTURE_COALESCE_AT),
  CAPTURE_JOB_AT: intSchema.min(0).max(100_000_000).default(10_000).describe(CAPTURE_ENV_VARS.CAPTURE_JOB_AT),
});

/** Reads CAPTURE_* (empty counts as unset); a bad value throws E_CAPTURE_CONFIG naming it. */
export function loadCaptureConfig(env: Env): CaptureConfig {
  const e = parseEnv(
    CAPTURE_ENV_SCHEMA,
    env,
    (message, cause) => new CaptureError('E_CAPTURE_CONFIG', message, { cause }),
  );
  return {
    schema: e.CAPTURE_SCHEMA,
    batch: e.CAPTURE_BATCH,
    pollMs: e.CAPTURE_POLL_MS,
    leaseMs: e.CAPTURE_LEASE_MS,
    coalesceAt: e.CAPTURE_COALESCE_AT,
    jobAt: e.CAPTURE_JOB_AT,
  };
}
