import { createHash } from 'node:crypto';
import { type Env, issueMessage } from '@cachefleet/config';
import { FastCounter } from '@cachefleet/tiered-cache';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { ApiError } from './errors.js';
import { boundBy2 } from './metrics.js';

/**
 * Gradual rollout of the cache by user (REQUIREMENTS A8): 10% → 50% → 100% of users per namespace.
 *
 * A user id is hashed into one of 100 buckets: the first 4 bytes of sha1(`namespace:userId`), read
 * as an unsigned big-endian integer, mod 100 (2^32 mod 100 = 96, so the bias is < 3e-8). A user
 * whose bucket is below the namespace's percentage is in the `cache` cohort. Hence:
 * - stable: the same user lands in the same cohort on every call, pod and restart;
 * - monotonic: raising 10 → 50 → 100 only adds buckets, nobody who had the cache loses it;
 * - the namespace is part of the hash so that each namespace draws its own sample: otherwise the
 *   same 10% of users would carry every namespace's trial at once (one bad rollout would hit the
 *   users already exposed to the others, and the cohorts of two namespaces could not be told apart
 *   in the metrics). The price: a user may be in `cache` for one namespace and `control` for another.
 */

export type Cohort = 'cache' | 'control';

/** What a request without a user id gets while a namespace is strictly between 0% and 100%. */
type AnonymousPolicy = Cohort;

interface RolloutOptions {
  /** Percentage of users (integer 0..100) in the `cache` cohort, by namespace. */
  readonly percentages: Readonly<Record<string, number>>;
  /** Percentage for namespaces not listed. Default 100: a rollout restricts only what it names. */
  readonly default?: number;
  /**
   * Cohort of requests without a user id (anonymous traffic cannot be bucketed: they all share one
   * "id"). At 0% they are always `control`, at 100% always `cache`; in between this decides.
   * Default `'control'`: anonymous traffic joins only when the rollout is complete.
   */
  readonly anonymous?: AnonymousPolicy;
}

export interface Rollout {
  /** True when this user (or anonymous request) should read through the cache for `namespace`. */
  enabled(namespace: string, userId?: string): boolean;
  cohort(namespace: string, userId?: string): Cohort;
  /** The percentage in force for `namespace` (a stored stage, else listed, else default). */
  percentage(namespace: string): number;
  /**
   * Sets a namespace's percentage live (a stored rollout stage, docs/tuning.md "Rollout guard"):
   * it overrides CACHE_ROLLOUT from now on. E_API_ROLLOUT_CONFIG for a bad name or percentage.
   */
  set(namespace: string, percent: number): void;
}

/** Environment variables read by `rolloutOptionsFromEnv`, with their defaults. */
export const ROLLOUT_ENV_VARS = {
  CACHE_ROLLOUT:
    'namespace=percent,... e.g. product=10,category=100; `*=N` sets the default for unlisted namespaces (default: empty, every namespace at 100)',
  CACHE_ROLLOUT_ANONYMOUS:
    'cohort of requests without a user id while 0 < percent < 100: control | cache (default control)',
} as const;

const percent = z.number().int('must be an integer').min(0, 'must be 0..100').max(100, 'must be 0..100');
/** Same shape as tiered-cache namespace names. */
const namespaceName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,63}$/, 'namespace must match [a-z][a-z0-9_-]{0,63}');

const optionsSchema = z.object({
  percentages: z.record(namespaceName, percent),
  default: percent.default(100),
  anonymous: z.enum(['cache', 'control']).default('control'),
});

/** The bucket (0..99) of a user for a namespace; exported for tests and for support ("why is user X in control?"). */
export function bucketOf(namespace: string, userId: string): number {
  return createHash('sha1').update(`${namespace}:${userId}`).digest().readUInt32BE(0) % 100;
}

export function createRollout(options: RolloutOptions): Rollout {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw optionsError(parsed.error);
  const { percentages, default: fallback, anonymous } = parsed.data;
  const table = new Map<string, number>(Object.entries(percentages));
  const percentage = (namespace: string): number => table.get(namespace) ?? fallback;

  const cohort = (namespace: string, userId?: string): Cohort => {
    const p = percentage(namespace);
    // 0 and 100 decide without hashing: a namespace fully on or off costs a map lookup.
    if (p === 0) return 'control';
    if (p === 100) return 'cache';
    if (userId === undefined || userId === '') return anonymous;
    return bucketOf(namespace, userId) < p ? 'cache' : 'control';
  };

  const stage = z.object({ namespace: namespaceName, percent });
  return {
    cohort,
    enabled: (namespace, userId) => cohort(namespace, userId) === 'cache',
    percentage,
    // The read path stays one Map lookup: a stage replaces the entry, it adds no check per call.
    set(namespace, p) {
      const parsed = stage.safeParse({ namespace, percent: p });
      if (!parsed.success) throw optionsError(parsed.error);
      table.set(parsed.data.namespace, parsed.data.percent);
    },
  };
}

const entrySchema = z
  .string()
  .regex(/^(\*|[a-z][a-z0-9_-]{0,63})=(\d{1,3})$/, 'expected namespace=percent, e.g. product=10')
  .transform((entry) => {
    const at = entry.indexOf('=');
    return { namespace: entry.slice(0, at), percent: Number(entry.slice(at + 1)) };
  })
  .refine((e) => e.percent <= 100, 'percent must be 0..100');

export const ROLLOUT_ENV_SCHEMA = z.object({
  CACHE_ROLLOUT: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .pipe(z.array(entrySchema))
    .superRefine((entries, ctx) => {
      const seen = new Set<string>();
      for (const e of entries) {
        if (seen.has(e.namespace))
          ctx.addIssue({ code: 'custom', message: `${e.namespace} is listed twice` });
        seen.add(e.namespace);
      }
    })
    .describe(ROLLOUT_ENV_VARS.CACHE_ROLLOUT),
  CACHE_ROLLOUT_ANONYMOUS: z
    .enum(['cache', 'control'])
    .default('control')
    .describe(ROLLOUT_ENV_VARS.CACHE_ROLLOUT_ANONYMOUS),
});

/**
 * Reads `CACHE_ROLLOUT` (`product=10,category=100,*=0`) and `CACHE_ROLLOUT_ANONYMOUS`; empty values
 * count as unset (so do blank ones). A bad value throws E_API_ROLLOUT_CONFIG naming the variable.
 */
export function rolloutOptionsFromEnv(env: Env): RolloutOptions {
  const present = Object.fromEntries(
    Object.entries(env).filter(([k, v]) => k in ROLLOUT_ENV_VARS && v !== undefined && v.trim() !== ''),
  );
  const parsed = ROLLOUT_ENV_SCHEMA.safeParse(present);
  if (!parsed.success) throw envError(parsed.error, present);
  const percentages: Record<string, number> = {};
  let fallback: number | undefined;
  for (const { namespace, percent } of parsed.data.CACHE_ROLLOUT) {
    if (namespace === '*') fallback = percent;
    else percentages[namespace] = percent;
  }
  return {
    percentages,
    ...(fallback !== undefined ? { default: fallback } : {}),
    anonymous: parsed.data.CACHE_ROLLOUT_ANONYMOUS,
  };
}

export interface RolloutMetrics {
  /** Counts one request served in `cohort` for `namespace`. */
  observe(namespace: string, cohort: Cohort): void;
  /** Counts one 5xx answered to a request of `cohort` on `namespace`'s routes. */
  failed(namespace: string, cohort: Cohort): void;
}

/**
 * `cachefleet_rollout_requests_total{namespace,cohort}` on `registry`: compare the two cohorts' latency and
 * error rates (from the route metrics) per namespace before raising the percentage.
 */
export function rolloutMetrics(registry: Registry): RolloutMetrics {
  const counter = new FastCounter({
    name: 'cachefleet_rollout_requests_total',
    help: 'Requests by rollout cohort (cache: read through the cache; control: straight to the source)',
    labelNames: ['namespace', 'cohort'],
    registry,
  });
  const errors = new FastCounter({
    name: 'cachefleet_rollout_errors_total',
    help: "5xx answers by rollout cohort on a namespace's routes (the rollout guard's error rate, docs/tuning.md)",
    labelNames: ['namespace', 'cohort'],
    registry,
  });
  const of = boundBy2((namespace: string, cohort: Cohort) => counter.series({ namespace, cohort }));
  const errorsOf = boundBy2((namespace: string, cohort: Cohort) => errors.series({ namespace, cohort }));
  return {
    observe(namespace, cohort) {
      of(namespace, cohort).inc();
    },
    failed(namespace, cohort) {
      errorsOf(namespace, cohort).inc();
    },
  };
}

function optionsError(error: z.ZodError): ApiError {
  const message = `createRollout: ${issueMessage(error, { root: 'options' })}`;
  return new ApiError('E_API_ROLLOUT_CONFIG', message, { cause: error });
}

/** Names the variable and quotes the entry at fault: `CACHE_ROLLOUT: "product=x": expected ...`. */
function envError(error: z.ZodError, input: Env): ApiError {
  const name = (path: readonly PropertyKey[]): string => {
    const variable = String(path[0]);
    const index = path[1];
    const entry =
      typeof index === 'number'
        ? input[variable]
            ?.split(',')
            .map((p) => p.trim())
            .filter(Boolean)[index]
        : undefined;
    return entry !== undefined ? `${variable}: "${entry}"` : variable;
  };
  return new ApiError('E_API_ROLLOUT_CONFIG', issueMessage(error, { name, root: 'CACHE_ROLLOUT' }), {
    cause: error,
  });
}
