import { createHash } from 'node:crypto';
import { z } from 'zod';
import { id, namespaceName, pattern } from './fields.js';
import {
  backupPayload,
  backupResultSchema,
  backupStateSchema,
  migratePayload,
  migrateResultSchema,
  migrateStateSchema,
  restorePayload,
  restoreResultSchema,
  restoreStateSchema,
  sweepPayload,
  sweepResultSchema,
  sweepStateSchema,
} from './lifecycle-schemas.js';

/**
 * The job catalogue: every queue and job name, its payload schema, retry and timeout policy,
 * retention and deduplication, shared by producers (API pods, the CLI, schedules) and workers.
 * A job's data is `{ payload, state? }`: the payload is what the producer asked for (validated on
 * both sides), the state is the worker's saved cursor (see docs/design-fleet.md).
 */

export {
  type BackupPayload,
  type BackupResult,
  backupPayload,
  backupResultSchema,
  backupStateSchema,
  type MigratePayload,
  type MigrateResult,
  type MigrateState,
  type MigrateTotals,
  migratePayload,
  migrateResultSchema,
  migrateStateSchema,
  type RestorePayload,
  type RestoreResult,
  type RestoreState,
  type RestoreTotals,
  restorePayload,
  restoreResultSchema,
  restoreStateSchema,
  type SweepPayload,
  type SweepResult,
  type SweepState,
  sweepPayload,
  sweepResultSchema,
  sweepStateSchema,
} from './lifecycle-schemas.js';

export const QUEUE_NAMES = ['warm', 'invalidate', 'migrate', 'sweep', 'backup', 'tune'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Concurrency a worker gives each queue unless WORKER_QUEUES / --queues say otherwise. */
export const DEFAULT_CONCURRENCY: Readonly<Record<QueueName, number>> = {
  warm: 2,
  invalidate: 4,
  migrate: 1,
  sweep: 1,
  backup: 1,
  // One tick at a time per worker (and a lock in the cache Redis across workers): a tick reads the
  // previous one's counters and flags.
  tune: 1,
};

export const warmPayload = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('critical'),
    /** Namespaces to warm; empty or absent = every namespace with a critical list. */
    namespaces: z.array(namespaceName).max(100).optional(),
  }),
  z.strictObject({
    type: z.literal('hot'),
    namespaces: z.array(namespaceName).max(100).optional(),
    /** Top N ids per namespace by sampled reads (REQUIREMENTS C5: the 1,000 hottest). */
    top: z.number().int().min(1).max(100_000).default(1_000),
  }),
  z.strictObject({
    type: z.literal('all'),
    namespaces: z.array(namespaceName).max(100).optional(),
  }),
  z.strictObject({
    type: z.literal('keys'),
    namespace: namespaceName,
    keys: z.array(id).min(1).max(100_000),
  }),
]);
export type WarmPayload = z.output<typeof warmPayload>;

export const invalidatePayload = z.discriminatedUnion('scope', [
  z.strictObject({
    scope: z.literal('keys'),
    namespace: namespaceName,
    keys: z.array(id).min(1).max(100_000),
  }),
  z.strictObject({ scope: z.literal('pattern'), namespace: namespaceName, pattern }),
  z.strictObject({ scope: z.literal('tags'), namespace: namespaceName, tags: z.array(id).min(1).max(1_000) }),
  z.strictObject({ scope: z.literal('namespace'), namespace: namespaceName }),
]);
export type InvalidatePayload = z.output<typeof invalidatePayload>;

/** One master's share of a pattern invalidation; added by the parent, never by users. */
export const invalidateSlicePayload = z.strictObject({
  namespace: namespaceName,
  pattern,
  /** SCAN MATCH within the cache prefix, fixed by the parent when it fenced the namespace. */
  match: z.string().min(1).max(600),
  master: z.string().regex(/^[^\s:]+:\d{1,5}$/, 'host:port'),
  count: z.number().int().min(10).max(10_000).default(1_000),
});
export type InvalidateSlicePayload = z.output<typeof invalidateSlicePayload>;

/** A warm's counts so far: its result's, and its saved cursor's. */
const warmTotals = z.object({
  requested: z.number(),
  loaded: z.number(),
  written: z.number(),
  changed: z.number(),
  invalid: z.number(),
});
export type WarmTotals = z.output<typeof warmTotals>;

/**
 * What each job resolves (its BullMQ return value), as schemas: the API, the CLI and tests read
 * results back from the queue Redis, a boundary like any other.
 */
export const warmResultSchema = warmTotals.extend({
  type: z.enum(['critical', 'hot', 'all', 'keys']),
  namespaces: z.array(z.string()),
  /** Pods asked to copy critical ids into their L1. */
  prewarmed: z.number(),
  /** `keys`: the first ids the namespace's id schema refused (skipped; `invalid` counts them all). */
  invalidIds: z.array(z.string()).optional(),
});
export type WarmResult = z.output<typeof warmResultSchema>;

export const invalidateResultSchema = z.object({
  scope: z.enum(['keys', 'pattern', 'tags', 'namespace']),
  namespace: z.string(),
  /** Entries removed from L2 (tombstoned or unlinked; after a crash, a lower bound). */
  removed: z.number(),
  /** Pattern scope: one child per cache master, and the keys they scanned. */
  slices: z.number().optional(),
  scanned: z.number().optional(),
  /** Namespace scope: the namespace's new generation, and the sweep enqueued for the old one. */
  generation: z.number().optional(),
  sweepJobId: z.string().optional(),
  /** Keys scope: ids the namespace's id schema refused (skipped), and the first of them. */
  invalid: z.number().optional(),
  invalidIds: z.array(z.string()).optional(),
});
export type InvalidateResult = z.output<typeof invalidateResultSchema>;

export const sliceResultSchema = z.object({ master: z.string(), scanned: z.number(), unlinked: z.number() });
export type SliceResult = z.output<typeof sliceResultSchema>;

/**
 * The cursor a worker saves in the job's data after each batch, as schemas: the next attempt, on
 * any worker and perhaps a newer version, reads it back from the queue Redis.
 */
export const warmStateSchema = z.object({
  /** Which of the planned namespaces. */
  index: z.number().int().min(0),
  /** `all`: the last id done (keyset paging). */
  after: z.string().optional(),
  /** The other types: how many ids of the list are done. */
  offset: z.number().int().min(0).optional(),
  /** `hot`: the ids chosen at the start of this namespace, so a resumed job warms the same set. */
  hot: z.array(z.string()).readonly().optional(),
  totals: warmTotals,
});
export type WarmState = z.output<typeof warmStateSchema>;

/** A keys invalidation's offset, or a pattern invalidation's step (fence → fan-out → wait). */
const invalidateStateSchema = z.discriminatedUnion('step', [
  z.object({ step: z.literal('keys'), offset: z.number().int().min(0), removed: z.number() }),
  z.object({ step: z.literal('fan-out'), match: z.string(), masters: z.array(z.string()) }),
  z.object({ step: z.literal('wait'), masters: z.array(z.string()) }),
]);
export type InvalidateState = z.output<typeof invalidateStateSchema>;

/** One master's walk: the SCAN cursor and the counts so far. */
export const sliceStateSchema = z.object({
  cursor: z.string(),
  scanned: z.number(),
  unlinked: z.number(),
  /**
   * The slice's master was gone (a failover promoted a replica under another address): every master
   * of the new topology is walked instead, in turn; `cursor` is then `masters[index]`'s.
   */
  rewalk: z.object({ masters: z.array(z.string()).min(1), index: z.number().int().min(0) }).optional(),
});
export type SliceState = z.output<typeof sliceStateSchema>;

/** `cachefleet tune [--dry-run]` and the schedule's tick (docs/tuning.md). */
export const tunePayload = z.strictObject({
  /** Decide and report (and audit as dry-run), change nothing: no settings, no event, no warm. */
  dryRun: z.boolean().default(false),
});
export type TunePayload = z.output<typeof tunePayload>;

export const tuneDecisionSchema = z.object({
  namespace: z.string(),
  rule: z.string(),
  action: z.string(),
  setting: z.string().optional(),
  before: z.number().optional(),
  after: z.number().optional(),
  inputs: z.record(z.string(), z.number().nullable()),
});

export const tuneResultSchema = z.object({
  dryRun: z.boolean(),
  /** Another tick held the tune lock: this one did nothing. */
  skipped: z.boolean(),
  /** Seconds since the previous tick (null: first tick, no window yet). */
  windowSeconds: z.number().nullable(),
  pressure: z.number().nullable(),
  namespaces: z.number(),
  decisions: z.array(tuneDecisionSchema),
  /** Jobs enqueued by the invalidation-rate rule (hot warms). */
  warmJobIds: z.array(z.string()),
});
export type TuneResult = z.output<typeof tuneResultSchema>;

/** A tick has no cursor: it is short and starts over. */
export const tuneStateSchema = z.object({});

interface RetentionPolicy {
  readonly age: number;
  readonly count: number;
}

export interface JobPolicy {
  readonly queue: QueueName;
  /** What producers send (validated at enqueue and again by the worker). */
  readonly payload: z.ZodType;
  /** What the handler resolves (read back by the API, the CLI and tests). */
  readonly result: z.ZodType;
  /** The cursor the handler saves (read back by the next attempt). */
  readonly state: z.ZodType;
  readonly attempts: number;
  readonly backoff: { readonly type: 'exponential' | 'fixed'; readonly delay: number };
  /** Cooperative: the handler's signal aborts, it saves its cursor and the attempt fails (retried). */
  readonly timeoutMs: number;
  readonly removeOnComplete: RetentionPolicy;
  readonly removeOnFail: RetentionPolicy;
  /**
   * `payload`: identical *pending* jobs are one (BullMQ deduplication by a hash of the payload). The
   * worker removes the deduplication key when a job's first attempt starts, so an identical request
   * made while it runs becomes a new job: the running one may be past the keys the caller changed.
   * `none`: every add is a job.
   */
  readonly dedupe: 'payload' | 'none';
  /** Added by other jobs only; the producer refuses it. */
  readonly internal: boolean;
}

const DAY = 24 * 3600;

/** What a job an operator enqueues keeps: a week of results, a month of failures; deduplicated. */
const USER_JOB = {
  removeOnComplete: { age: 7 * DAY, count: 1_000 },
  removeOnFail: { age: 30 * DAY, count: 5_000 },
  dedupe: 'payload',
  internal: false,
} as const;

/** A lifecycle job (migrate, backup, restore): hours long, its result kept a month. */
const LIFECYCLE_JOB = {
  ...USER_JOB,
  attempts: 5,
  timeoutMs: 2 * 60 * 60_000,
  removeOnComplete: { age: 30 * DAY, count: 1_000 },
} as const;

export const JOBS = {
  warm: {
    queue: 'warm',
    payload: warmPayload,
    result: warmResultSchema,
    state: warmStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
    timeoutMs: 60 * 60_000,
    ...USER_JOB,
  },
  invalidate: {
    queue: 'invalidate',
    payload: invalidatePayload,
    result: invalidateResultSchema,
    state: invalidateStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 1_000 },
    timeoutMs: 10 * 60_000,
    ...USER_JOB,
  },
  'invalidate-slice': {
    queue: 'invalidate',
    payload: invalidateSlicePayload,
    result: sliceResultSchema,
    state: sliceStateSchema,
    attempts: 10,
    backoff: { type: 'exponential', delay: 500 },
    timeoutMs: 30 * 60_000,
    removeOnComplete: { age: 1 * DAY, count: 10_000 },
    removeOnFail: { age: 30 * DAY, count: 5_000 },
    dedupe: 'none',
    internal: true,
  },
  migrate: {
    queue: 'migrate',
    payload: migratePayload,
    result: migrateResultSchema,
    state: migrateStateSchema,
    ...LIFECYCLE_JOB,
    backoff: { type: 'exponential', delay: 2_000 },
  },
  sweep: {
    queue: 'sweep',
    payload: sweepPayload,
    result: sweepResultSchema,
    state: sweepStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
    timeoutMs: 2 * 60 * 60_000,
    ...USER_JOB,
  },
  backup: {
    queue: 'backup',
    payload: backupPayload,
    result: backupResultSchema,
    state: backupStateSchema,
    ...LIFECYCLE_JOB,
    backoff: { type: 'exponential', delay: 5_000 },
  },
  tune: {
    queue: 'tune',
    payload: tunePayload,
    result: tuneResultSchema,
    state: tuneStateSchema,
    // A tick lost is replaced by the next one a minute later.
    attempts: 2,
    backoff: { type: 'fixed', delay: 5_000 },
    timeoutMs: 50_000,
    removeOnComplete: { age: 1 * DAY, count: 1_500 },
    removeOnFail: { age: 7 * DAY, count: 1_000 },
    dedupe: 'payload',
    internal: false,
  },
  restore: {
    queue: 'backup',
    payload: restorePayload,
    result: restoreResultSchema,
    state: restoreStateSchema,
    ...LIFECYCLE_JOB,
    backoff: { type: 'exponential', delay: 5_000 },
  },
} as const satisfies Record<string, JobPolicy>;

export type JobName = keyof typeof JOBS;
export const JOB_NAMES = Object.keys(JOBS) as JobName[];
export type PayloadOf<N extends JobName> = z.output<(typeof JOBS)[N]['payload']>;
export type PayloadInputOf<N extends JobName> = z.input<(typeof JOBS)[N]['payload']>;
export type ResultOf<N extends JobName> = z.output<(typeof JOBS)[N]['result']>;
export type StateOf<N extends JobName> = z.output<(typeof JOBS)[N]['state']>;

/** What a job's data holds: the payload, and the cursor a worker saved (unchecked until parsed). */
export interface JobData<P = unknown> {
  readonly payload: P;
  readonly state?: unknown;
}

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}

/** Deterministic JSON (sorted keys), so equal payloads hash equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function dedupeId(name: JobName, payload: unknown): string {
  return `${name}:${createHash('sha1').update(canonicalJson(payload)).digest('hex')}`;
}
