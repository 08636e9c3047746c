import { z } from 'zod';
import { namespaceName } from './fields.js';

/**
 * The lifecycle job kinds' schemas (docs/design-lifecycle.md): migrate, sweep, backup, restore —
 * payloads, results and saved states. The catalogue (catalogue.ts) lists them with their policies.
 */

/** A version migration (docs/design-lifecycle.md): the entries of version `to - 1` become `to`. */
export const migratePayload = z.strictObject({
  namespace: namespaceName,
  /** The version migrated to: the worker's definition must be at it. */
  to: z.number().int().min(2).max(1_000_000),
  /** Read, convert and validate; write nothing. */
  dryRun: z.boolean().default(false),
  /** Keys per second at most; 0 = as fast as Redis and the conversion go. */
  rate: z.number().int().min(0).max(10_000_000).default(0),
  /**
   * Keys asked of SCAN per step. 1,000: per-step round trips and saves stop mattering, and no
   * command holds Redis long (the write is one Lua call per 100 keys, the read an MGET per 500), so
   * a concurrent reader's p99 stays in the low milliseconds (docs/benchmarks.md).
   */
  count: z.number().int().min(10).max(10_000).default(1_000),
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

/** A migration's walk: master after master, the SCAN cursor, the counts and first failures so far. */
export const migrateStateSchema = z.object({
  generation: z.number().int().min(0),
  masters: z.array(z.string()),
  /** Which of `masters` is being walked. */
  index: z.number().int().min(0),
  cursor: z.string(),
  /**
   * The progress total: an estimate of the old version's entries that converges as the walk goes
   * (DBSIZE at the start, an upper bound; then refined from the SCAN cursor, see the handler).
   */
  total: z.number(),
  /** `totals.scanned` when the walk began the current master (the estimate's base). */
  atMaster: z.number().default(0),
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
