import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * The job catalogue: every queue and job name, its payload schema, retry and timeout policy,
 * retention and deduplication, shared by producers (API pods, the CLI, schedules) and workers.
 * A job's data is `{ payload, state? }`: the payload is what the producer asked for (validated on
 * both sides), the state is the worker's saved cursor (see docs/design-fleet.md).
 */

export const QUEUE_NAMES = ['warm', 'invalidate', 'migrate', 'sweep', 'backup'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

/** Concurrency a worker gives each queue unless WORKER_QUEUES / --queues say otherwise. */
export const DEFAULT_CONCURRENCY: Readonly<Record<QueueName, number>> = {
  warm: 2,
  invalidate: 4,
  migrate: 1,
  sweep: 1,
  backup: 1,
};

const namespaceName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'a namespace name ([a-z][a-z0-9_-]*)');
const id = z.string().min(1).max(256);
/** Every `[` closed and no `\` at the end: Redis would otherwise match what the user did not mean. */
function wellFormedGlob(glob: string): boolean {
  for (let i = 0; i < glob.length; i++) {
    if (glob[i] === '\\') {
      if (i === glob.length - 1) return false;
      i++;
    } else if (glob[i] === '[') {
      let j = i + 1;
      if (glob[j] === '^') j++;
      while (j < glob.length && glob[j] !== ']') j += glob[j] === '\\' ? 2 : 1;
      if (j >= glob.length) return false;
      i = j;
    }
  }
  return true;
}

/** A glob over ids within one namespace: no white space or braces (they could leave the namespace). */
const pattern = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s{}]+$/, 'a glob over ids without white space or braces')
  .refine(wellFormedGlob, 'a glob whose every [ is closed and that does not end in a lone \\');

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

/** A version migration (docs/design-lifecycle.md): the entries of version `to - 1` become `to`. */
export const migratePayload = z.strictObject({
  namespace: namespaceName,
  /** The version migrated to: the worker's definition must be at it. */
  to: z.number().int().min(2).max(1_000_000),
  /** Read, convert and validate; write nothing. */
  dryRun: z.boolean().default(false),
  /** Keys per second at most; 0 = as fast as Redis and the conversion go. */
  rate: z.number().int().min(0).max(10_000_000).default(0),
  /** Keys asked of SCAN per step (200: a concurrent reader's p99 stays under a millisecond). */
  count: z.number().int().min(10).max(10_000).default(200),
});
export type MigratePayload = z.output<typeof migratePayload>;

/** Unlinks the keys no pod can reach (older versions and generations) of one namespace or all. */
export const sweepPayload = z.strictObject({
  /** Absent: every namespace of the worker's definitions. */
  namespace: namespaceName.optional(),
  count: z.number().int().min(10).max(10_000).default(200),
});
export type SweepPayload = z.output<typeof sweepPayload>;

/** A logical backup of chosen namespaces (all by default) into the backup directory. */
export const backupPayload = z.strictObject({
  namespaces: z.array(namespaceName).max(100).optional(),
});
export type BackupPayload = z.output<typeof backupPayload>;

/** A restore of a backup file: `latest`, a file name in the backup directory, or a path. */
export const restorePayload = z.strictObject({
  file: z
    .string()
    .min(1)
    .max(4096)
    .regex(/^[^\0\n]+$/, 'a file name or path'),
  /** Overwrite keys that exist; by default they are kept. */
  replace: z.boolean().default(false),
});
export type RestorePayload = z.output<typeof restorePayload>;

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

const migrateTotals = z.object({
  scanned: z.number(),
  migrated: z.number(),
  present: z.number(),
  changed: z.number(),
  skipped: z.number(),
  failed: z.number(),
});
export type MigrateTotals = z.output<typeof migrateTotals>;
const migrateFailure = z.object({ id: z.string(), reason: z.string() });

export const migrateResultSchema = migrateTotals.extend({
  namespace: z.string(),
  from: z.number(),
  to: z.number(),
  dryRun: z.boolean(),
  generation: z.number(),
  /** The first failures (`failed` counts them all): ids left alone to expire, and why. */
  failures: z.array(migrateFailure),
  /** A whole-namespace invalidation moved the generation during the walk: the rest was skipped. */
  overtaken: z.boolean(),
  /** The sweep enqueued to remove the old version's keys (not after a dry run). */
  sweepJobId: z.string().optional(),
});
export type MigrateResult = z.output<typeof migrateResultSchema>;

export const sweepResultSchema = z.object({
  namespaces: z.array(z.string()),
  scanned: z.number(),
  unlinked: z.number(),
});
export type SweepResult = z.output<typeof sweepResultSchema>;

export const backupResultSchema = z.object({
  file: z.string(),
  path: z.string(),
  keys: z.number(),
  bytes: z.number(),
  namespaces: z.array(z.string()),
  sha256: z.string(),
  signed: z.boolean(),
  encrypted: z.boolean(),
  /** Older backups removed by the retention (BACKUP_KEEP). */
  removed: z.number(),
});
export type BackupResult = z.output<typeof backupResultSchema>;

const restoreTotals = z.object({
  /** Records read from the file. */
  read: z.number(),
  restored: z.number(),
  /** Kept as they were: the key existed (no `replace`). */
  existing: z.number(),
  /** Expired since the backup: skipped. */
  expired: z.number(),
  /** Invalidated (or rewritten) after the backup was taken: not brought back. */
  fenced: z.number(),
});
export type RestoreTotals = z.output<typeof restoreTotals>;

export const restoreResultSchema = restoreTotals.extend({
  file: z.string(),
  keys: z.number(),
  createdAt: z.string(),
  namespaces: z.array(z.string()),
});
export type RestoreResult = z.output<typeof restoreResultSchema>;

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

/** A migration's walk: master after master, the SCAN cursor, the counts and first failures so far. */
export const migrateStateSchema = z.object({
  generation: z.number().int().min(0),
  masters: z.array(z.string()),
  /** Which of `masters` is being walked. */
  index: z.number().int().min(0),
  cursor: z.string(),
  /** Entries of the old version when the walk began (a progress total). */
  total: z.number(),
  totals: migrateTotals,
  failures: z.array(migrateFailure),
  overtaken: z.boolean().default(false),
});
export type MigrateState = z.output<typeof migrateStateSchema>;

/** A sweep's walk: namespace after namespace, master after master. */
export const sweepStateSchema = z.object({
  /** Which namespace of the plan. */
  index: z.number().int().min(0),
  masters: z.array(z.string()),
  master: z.number().int().min(0),
  cursor: z.string(),
  scanned: z.number(),
  unlinked: z.number(),
});
export type SweepState = z.output<typeof sweepStateSchema>;

/** A backup starts its file over on every attempt (a partial gzip stream cannot be resumed). */
export const backupStateSchema = z.object({});

/** A restore's position in the file (records done) and its counts, for the file it verified. */
export const restoreStateSchema = z.object({
  name: z.string(),
  done: z.number().int().min(0),
  totals: restoreTotals,
});
export type RestoreState = z.output<typeof restoreStateSchema>;

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
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
    timeoutMs: 2 * 60 * 60_000,
    removeOnComplete: { age: 30 * DAY, count: 1_000 },
    removeOnFail: { age: 30 * DAY, count: 5_000 },
    dedupe: 'payload',
    internal: false,
  },
  sweep: {
    queue: 'sweep',
    payload: sweepPayload,
    result: sweepResultSchema,
    state: sweepStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 2_000 },
    timeoutMs: 2 * 60 * 60_000,
    removeOnComplete: { age: 7 * DAY, count: 1_000 },
    removeOnFail: { age: 30 * DAY, count: 5_000 },
    dedupe: 'payload',
    internal: false,
  },
  backup: {
    queue: 'backup',
    payload: backupPayload,
    result: backupResultSchema,
    state: backupStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 5_000 },
    timeoutMs: 2 * 60 * 60_000,
    removeOnComplete: { age: 30 * DAY, count: 1_000 },
    removeOnFail: { age: 30 * DAY, count: 5_000 },
    dedupe: 'payload',
    internal: false,
  },
  restore: {
    queue: 'backup',
    payload: restorePayload,
    result: restoreResultSchema,
    state: restoreStateSchema,
    attempts: 5,
    backoff: { type: 'exponential', delay: 5_000 },
    timeoutMs: 2 * 60 * 60_000,
    removeOnComplete: { age: 30 * DAY, count: 1_000 },
    removeOnFail: { age: 30 * DAY, count: 5_000 },
    dedupe: 'payload',
    internal: false,
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
