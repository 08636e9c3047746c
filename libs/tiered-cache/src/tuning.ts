import { z } from 'zod';

/**
 * The tuner's settings (REQUIREMENTS E3, docs/tuning.md) as pods and the tune job share them: per
 * namespace, factors on the definition's L1 and L2 TTLs for new writes, stored in the cache Redis
 * (`<prefix>__{tune}:settings`, one JSON field per namespace), broadcast as `config` events and
 * read again by every pod at start and every few seconds (a pod that missed the event catches up).
 */

export const TUNE_SETTINGS = ['l1TtlFactor', 'l2TtlFactor'] as const;
export type TuneSetting = (typeof TUNE_SETTINGS)[number];

/** A factor on a TTL: 1 is the definition's. */
export const tuneFactorSchema = z.number().finite().min(0.01).max(100);

export const namespaceTuningSchema = z.object({
  l1TtlFactor: tuneFactorSchema.default(1),
  l2TtlFactor: tuneFactorSchema.default(1),
  /** When each setting last changed, ms since the epoch (the tuner's cool-down counts from it). */
  changedAt: z.partialRecord(z.enum(TUNE_SETTINGS), z.number().int().nonnegative()).default({}),
});
export type NamespaceTuning = z.output<typeof namespaceTuningSchema>;

export const DEFAULT_TUNING: NamespaceTuning = { l1TtlFactor: 1, l2TtlFactor: 1, changedAt: {} };

/** A hash of one JSON value per namespace, as read: fields that do not validate (another version wrote them) are skipped. */
function parseJsonHash<S extends z.ZodType>(
  hash: Readonly<Record<string, string>>,
  schema: S,
): Map<string, z.output<S>> {
  const out = new Map<string, z.output<S>>();
  for (const [namespace, text] of Object.entries(hash)) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = schema.safeParse(raw);
    if (parsed.success) out.set(namespace, parsed.data);
  }
  return out;
}

/** The settings hash as read. */
export function parseTuningHash(hash: Readonly<Record<string, string>>): Map<string, NamespaceTuning> {
  return parseJsonHash(hash, namespaceTuningSchema);
}

/** The factors of a `config` event (other settings in it are ignored); undefined: none of ours. */
export function factorsOfEvent(
  settings: Readonly<Record<string, number | string | boolean>>,
): Partial<Record<TuneSetting, number>> | undefined {
  const out: Partial<Record<TuneSetting, number>> = {};
  for (const name of TUNE_SETTINGS) {
    const parsed = tuneFactorSchema.safeParse(settings[name]);
    if (parsed.success) out[name] = parsed.data;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** An operator's pin: `<namespace>:<setting>` → the value tuning must keep. */
export function pinField(namespace: string, setting: TuneSetting): string {
  return `${namespace}:${setting}`;
}

export function parsePins(hash: Readonly<Record<string, string>>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [field, text] of Object.entries(hash)) {
    const v = tuneFactorSchema.safeParse(Number(text));
    if (v.success) out.set(field, v.data);
  }
  return out;
}

/**
 * A namespace's rollout stage (REQUIREMENTS A8, docs/tuning.md "Rollout guard"): the percentage of
 * users in the `cache` cohort, stored in `<prefix>__{tune}:rollout` (one JSON field per namespace).
 * It overrides `CACHE_ROLLOUT`; API pods read it at start and every telemetry interval and apply a
 * `config` event carrying `rolloutPercent` at once. An operator raises or lowers it
 * (`cachefleet rollout`); the tuner's rollout guard only lowers it.
 */
export const ROLLOUT_SETTING = 'rolloutPercent';
export const rolloutPercentSchema = z.number().int().min(0).max(100);
export const rolloutStageSchema = z.object({
  percent: rolloutPercentSchema,
  /** The stage it came from (null: none stored before, the pods had CACHE_ROLLOUT's value). */
  previous: rolloutPercentSchema.nullable().default(null),
  /** When this stage began, ms since the epoch. */
  at: z.number().int().nonnegative(),
  /** `operator` (the CLI) or `tuner:<job id>` (the rollout guard). */
  by: z.string().min(1).max(128),
  /**
   * The namespace's combined hit rate over the tuner's window before the stage began, recorded by
   * the tuner's first tick after it (absent: not recorded yet; null: too few reads then, so the
   * hit-rate trigger is off for this stage and only the error trigger guards it).
   */
  baseline: z.number().min(0).max(1).nullable().optional(),
});
export type RolloutStage = z.output<typeof rolloutStageSchema>;

/** The rollout hash as read: fields that do not validate are skipped. */
export function parseRolloutHash(hash: Readonly<Record<string, string>>): Map<string, RolloutStage> {
  return parseJsonHash(hash, rolloutStageSchema);
}

/** The rollout percentage a `config` event carries (undefined: none, or not an integer 0..100). */
export function rolloutOfEvent(
  settings: Readonly<Record<string, number | string | boolean>>,
): number | undefined {
  const parsed = rolloutPercentSchema.safeParse(settings[ROLLOUT_SETTING]);
  return parsed.success ? parsed.data : undefined;
}

/** One entry of the audit stream (`<prefix>__{tune}:audit`, capped at about 1,000). */
export const auditEntrySchema = z.object({
  at: z.number().int().nonnegative(),
  namespace: z.string().min(1).max(64),
  rule: z.string().min(1).max(64),
  /** promote / lower: an operator's rollout stage; rollback: the rollout guard's. */
  action: z.enum([
    'set',
    'revert',
    'recommend',
    'clear',
    'prewarm',
    'pin',
    'unpin',
    'undo',
    'promote',
    'lower',
    'rollback',
  ]),
  setting: z.enum([...TUNE_SETTINGS, ROLLOUT_SETTING]).optional(),
  before: z.number().optional(),
  after: z.number().optional(),
  mode: z.enum(['applied', 'dry-run']),
  /** `tuner` (the job; with its job id) or `operator` (the CLI). */
  by: z.string().min(1).max(128),
  /** What the rule saw: hit rates, reads, pressure, invalidations per second. */
  inputs: z.record(z.string(), z.union([z.number(), z.string(), z.null()])).default({}),
  /** An undo: the stream id of the decision it reverted. */
  undoes: z.string().optional(),
});
export type AuditEntry = z.output<typeof auditEntrySchema>;
export type AuditInput = z.input<typeof auditEntrySchema>;
export interface StoredAuditEntry extends AuditEntry {
  readonly id: string;
}
