import { type Env, parseEnv } from '@cachefleet/config';
import { z } from 'zod';
import { JobError } from '../errors.js';

/**
 * The tuner's thresholds, bounds, hysteresis and cool-down (REQUIREMENTS E3, docs/tuning.md).
 * Each rule engages past one threshold and lets go only past another on the far side of it, and a
 * setting changed is not changed again before the cool-down: noise inside the band does nothing.
 */
export const TUNE_ENV_VARS = {
  TUNE_MIN_READS:
    'reads a namespace needs in the window since the previous tick before its hit rates count (default 100)',
  TUNE_COOLDOWN_SECONDS:
    'a setting (or a rule engaged) is not changed again before this long, seconds (default 300)',
  TUNE_L2_HIT_RATE_LOW: 'L2 hit rate below which scaling Redis is recommended (default 0.70)',
  TUNE_L2_HIT_RATE_CLEAR: 'L2 hit rate above which the recommendation is withdrawn (default 0.75)',
  TUNE_PRESSURE_HIGH: 'Redis memory used / maxmemory above which the L2 TTL is shortened (default 0.85)',
  TUNE_PRESSURE_CLEAR: 'pressure below which the L2 TTL goes back to the definition (default 0.75)',
  TUNE_L2_TTL_FACTOR: 'factor on the L2 TTL of new writes under pressure (default 0.5)',
  TUNE_L2_TTL_FACTOR_MIN: 'lowest L2 TTL factor the tuner sets (default 0.1)',
  TUNE_L1_HIT_RATE_LOW: 'L1 hit rate below which the L1 TTL is lengthened (default 0.30)',
  TUNE_L1_HIT_RATE_CLEAR: 'L1 hit rate above which the L1 TTL goes back to the definition (default 0.40)',
  TUNE_L1_TTL_FACTOR: 'factor on the L1 TTL when the L1 hit rate is low (default 2)',
  TUNE_L1_TTL_FACTOR_MAX: 'highest L1 TTL factor the tuner sets (default 4)',
  TUNE_L1_TTL_MAX_SECONDS: "longest L1 TTL the tuner gives, seconds (default 600, the plan's 10 min)",
  TUNE_INVALIDATIONS_HIGH:
    'invalidations per second of a namespace (fleet-wide) above which its hot set is warmed (default 10)',
  TUNE_INVALIDATIONS_CLEAR: 'invalidations per second below which the rule lets go (default 5)',
  TUNE_ROLLOUT_MIN_REQUESTS:
    "requests of a namespace's cache cohort the rollout guard needs in the window before its error rate counts (default 100)",
  TUNE_ROLLOUT_ERROR_RATE:
    "cache cohort's error rate (5xx / requests) above which the rollout guard lowers the stage (default 0.01)",
  TUNE_ROLLOUT_HIT_RATE_DROP:
    "relative drop of the namespace's hit rate below the stage's baseline at which the rollout guard lowers the stage (default 0.10)",
} as const;

const ratio = z.coerce.number().min(0).max(1);
const positive = z.coerce.number().positive().max(1_000_000);

export const TUNE_ENV_SCHEMA = z
  .object({
    TUNE_MIN_READS: z.coerce
      .number()
      .int()
      .min(1)
      .max(1_000_000_000)
      .default(100)
      .describe(TUNE_ENV_VARS.TUNE_MIN_READS),
    TUNE_COOLDOWN_SECONDS: z.coerce
      .number()
      .int()
      .min(0)
      .max(86_400)
      .default(300)
      .describe(TUNE_ENV_VARS.TUNE_COOLDOWN_SECONDS),
    TUNE_L2_HIT_RATE_LOW: ratio.default(0.7).describe(TUNE_ENV_VARS.TUNE_L2_HIT_RATE_LOW),
    TUNE_L2_HIT_RATE_CLEAR: ratio.default(0.75).describe(TUNE_ENV_VARS.TUNE_L2_HIT_RATE_CLEAR),
    TUNE_PRESSURE_HIGH: ratio.default(0.85).describe(TUNE_ENV_VARS.TUNE_PRESSURE_HIGH),
    TUNE_PRESSURE_CLEAR: ratio.default(0.75).describe(TUNE_ENV_VARS.TUNE_PRESSURE_CLEAR),
    TUNE_L2_TTL_FACTOR: z.coerce
      .number()
      .min(0.01)
      .max(1)
      .default(0.5)
      .describe(TUNE_ENV_VARS.TUNE_L2_TTL_FACTOR),
    TUNE_L2_TTL_FACTOR_MIN: z.coerce
      .number()
      .min(0.01)
      .max(1)
      .default(0.1)
      .describe(TUNE_ENV_VARS.TUNE_L2_TTL_FACTOR_MIN),
    TUNE_L1_HIT_RATE_LOW: ratio.default(0.3).describe(TUNE_ENV_VARS.TUNE_L1_HIT_RATE_LOW),
    TUNE_L1_HIT_RATE_CLEAR: ratio.default(0.4).describe(TUNE_ENV_VARS.TUNE_L1_HIT_RATE_CLEAR),
    TUNE_L1_TTL_FACTOR: z.coerce
      .number()
      .min(1)
      .max(100)
      .default(2)
      .describe(TUNE_ENV_VARS.TUNE_L1_TTL_FACTOR),
    TUNE_L1_TTL_FACTOR_MAX: z.coerce
      .number()
      .min(1)
      .max(100)
      .default(4)
      .describe(TUNE_ENV_VARS.TUNE_L1_TTL_FACTOR_MAX),
    TUNE_L1_TTL_MAX_SECONDS: z.coerce
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(600)
      .describe(TUNE_ENV_VARS.TUNE_L1_TTL_MAX_SECONDS),
    TUNE_INVALIDATIONS_HIGH: positive.default(10).describe(TUNE_ENV_VARS.TUNE_INVALIDATIONS_HIGH),
    TUNE_INVALIDATIONS_CLEAR: positive.default(5).describe(TUNE_ENV_VARS.TUNE_INVALIDATIONS_CLEAR),
    TUNE_ROLLOUT_MIN_REQUESTS: z.coerce
      .number()
      .int()
      .min(1)
      .max(1_000_000_000)
      .default(100)
      .describe(TUNE_ENV_VARS.TUNE_ROLLOUT_MIN_REQUESTS),
    TUNE_ROLLOUT_ERROR_RATE: ratio.default(0.01).describe(TUNE_ENV_VARS.TUNE_ROLLOUT_ERROR_RATE),
    TUNE_ROLLOUT_HIT_RATE_DROP: z.coerce
      .number()
      .positive()
      .max(1)
      .default(0.1)
      .describe(TUNE_ENV_VARS.TUNE_ROLLOUT_HIT_RATE_DROP),
  })
  .superRefine((e, ctx) => {
    const band = (low: keyof typeof e, high: keyof typeof e) => {
      if (e[low] >= e[high])
        ctx.addIssue({ code: 'custom', path: [high], message: `must be above ${String(low)} (hysteresis)` });
    };
    band('TUNE_L2_HIT_RATE_LOW', 'TUNE_L2_HIT_RATE_CLEAR');
    band('TUNE_L1_HIT_RATE_LOW', 'TUNE_L1_HIT_RATE_CLEAR');
    band('TUNE_PRESSURE_CLEAR', 'TUNE_PRESSURE_HIGH');
    band('TUNE_INVALIDATIONS_CLEAR', 'TUNE_INVALIDATIONS_HIGH');
  });

export interface TuneConfig {
  readonly minReads: number;
  readonly cooldownMs: number;
  readonly l2HitRate: { readonly low: number; readonly clear: number };
  readonly pressure: { readonly high: number; readonly clear: number };
  /** The L2 factor under pressure (never below `min`). */
  readonly l2Ttl: { readonly factor: number; readonly min: number };
  readonly l1HitRate: { readonly low: number; readonly clear: number };
  /** The L1 factor (never above `max`, nor past `maxTtlMs`). */
  readonly l1Ttl: { readonly factor: number; readonly max: number; readonly maxTtlMs: number };
  readonly invalidations: { readonly high: number; readonly clear: number };
  /** The rollout guard (docs/tuning.md "Rollout guard"). */
  readonly rollout: {
    readonly minRequests: number;
    readonly errorRate: number;
    readonly hitRateDrop: number;
  };
}

/** TUNE_*; a bad value (or a band upside down) throws E_JOB_CONFIG naming the variable. */
export function loadTuneConfig(env: Env): TuneConfig {
  const e = parseEnv(
    TUNE_ENV_SCHEMA,
    env,
    (message, cause) => new JobError('E_JOB_CONFIG', message, { cause }),
  );
  return {
    minReads: e.TUNE_MIN_READS,
    cooldownMs: e.TUNE_COOLDOWN_SECONDS * 1000,
    l2HitRate: { low: e.TUNE_L2_HIT_RATE_LOW, clear: e.TUNE_L2_HIT_RATE_CLEAR },
    pressure: { high: e.TUNE_PRESSURE_HIGH, clear: e.TUNE_PRESSURE_CLEAR },
    l2Ttl: { factor: e.TUNE_L2_TTL_FACTOR, min: e.TUNE_L2_TTL_FACTOR_MIN },
    l1HitRate: { low: e.TUNE_L1_HIT_RATE_LOW, clear: e.TUNE_L1_HIT_RATE_CLEAR },
    l1Ttl: {
      factor: e.TUNE_L1_TTL_FACTOR,
      max: e.TUNE_L1_TTL_FACTOR_MAX,
      maxTtlMs: e.TUNE_L1_TTL_MAX_SECONDS * 1000,
    },
    invalidations: { high: e.TUNE_INVALIDATIONS_HIGH, clear: e.TUNE_INVALIDATIONS_CLEAR },
    rollout: {
      minRequests: e.TUNE_ROLLOUT_MIN_REQUESTS,
      errorRate: e.TUNE_ROLLOUT_ERROR_RATE,
      hitRateDrop: e.TUNE_ROLLOUT_HIT_RATE_DROP,
    },
  };
}
