import {
  DEFAULT_TUNING,
  type NamespaceTuning,
  pinField,
  type ROLLOUT_SETTING,
  type TuneSetting,
} from '@cachefleet/tiered-cache';
import { z } from 'zod';
import type { TuneConfig } from './config.js';

/**
 * The tuner's rules as pure functions (REQUIREMENTS E3, docs/tuning.md): the window since the
 * previous tick from the processes' cumulative counters, then (memory, inputs, config) →
 * (decisions, new memory). No I/O: the job reads and writes Redis around them, and the property
 * tests drive them over thousands of noisy ticks.
 */

export const TUNE_RULES = [
  'l2-hit-rate',
  'memory-pressure',
  'l1-hit-rate',
  'invalidation-rate',
  'rollout-guard',
] as const;
export type TuneRule = (typeof TUNE_RULES)[number];
export const TUNE_ACTIONS = ['set', 'revert', 'recommend', 'clear', 'prewarm', 'rollback'] as const;
export type TuneAction = (typeof TUNE_ACTIONS)[number];

const count = z.number().nonnegative();
const counters = z.object({
  l1Hits: count,
  l2Hits: count,
  misses: count,
  invalidations: count,
  /** The `cache` rollout cohort's requests and 5xx answers (API pods only; absent from older memory). */
  cacheRequests: count.optional(),
  cacheErrors: count.optional(),
});
export type Counters = z.output<typeof counters>;
const COUNTERS = ['l1Hits', 'l2Hits', 'misses', 'invalidations', 'cacheRequests', 'cacheErrors'] as const;

/** What the tuner remembers between ticks (`<prefix>__{tune}:state`). */
export const tuneMemorySchema = z.object({
  /** When the previous tick read the counters (undefined: no tick yet). */
  at: z.number().int().nonnegative().optional(),
  /** Each process's counters at that tick, per namespace name (summed over its versions). */
  pods: z.record(z.string(), z.object({ startedAt: count, namespaces: z.record(z.string(), counters) })),
  /** Edge-triggered rules engaged per namespace, and since when. */
  flags: z.record(
    z.string(),
    z.object({
      l2Low: z.boolean().default(false),
      l2LowAt: count.default(0),
      hot: z.boolean().default(false),
      hotAt: count.default(0),
    }),
  ),
  /** Each namespace's combined hit rate over the last window (with enough reads): a new rollout stage's baseline. */
  hitRates: z.record(z.string(), z.number().min(0).max(1)).optional(),
});
export type TuneMemory = z.output<typeof tuneMemorySchema>;
export type NamespaceFlags = TuneMemory['flags'][string];
export const EMPTY_MEMORY: TuneMemory = { pods: {}, flags: {}, hitRates: {} };
const NO_FLAGS: NamespaceFlags = { l2Low: false, l2LowAt: 0, hot: false, hotAt: 0 };

/** The part of a process's telemetry snapshot the window needs. */
export interface PodCounters {
  readonly pod: string;
  readonly startedAt: number;
  /** A namespace may appear more than once (versions, cohorts): summed. */
  readonly namespaces: readonly ({ readonly namespace: string } & Counters)[];
}

/** One namespace over the window since the previous tick, summed over the processes. */
export interface NamespaceWindow {
  readonly namespace: string;
  readonly reads: number;
  /** L1 hits over reads (undefined: no read). */
  readonly l1HitRate: number | undefined;
  /** Reads L1 missed, and L2 hits over them. */
  readonly l2Reads: number;
  readonly l2HitRate: number | undefined;
  /** Hits of either tier over reads (undefined: no read). */
  readonly hitRate: number | undefined;
  readonly invalidationsPerSecond: number;
  /** The `cache` rollout cohort's requests and errors (5xx) in the window. */
  readonly cacheRequests: number;
  readonly cacheErrors: number;
}

export interface TuneWindow {
  /** Seconds since the previous tick (undefined: first tick, no window yet). */
  readonly seconds: number | undefined;
  readonly namespaces: ReadonlyMap<string, NamespaceWindow>;
  /** The counters to remember for the next tick. */
  readonly pods: TuneMemory['pods'];
}

function combine(a: Counters, b: Counters, sign: 1 | -1): Counters {
  const out = { ...ZERO };
  for (const k of COUNTERS) out[k] = (a[k] ?? 0) + sign * (b[k] ?? 0);
  return out;
}
const add = (a: Counters, b: Counters) => combine(a, b, 1);
const ZERO: Counters = {
  l1Hits: 0,
  l2Hits: 0,
  misses: 0,
  invalidations: 0,
  cacheRequests: 0,
  cacheErrors: 0,
};

/**
 * The counters of each namespace over the window since `memory.at`: per process, now minus then
 * (a process started within the window counts from zero; one that restarted, whose counters went
 * back, counts from zero too; one already running but unseen at the previous tick is only
 * remembered, as its counters cover more than the window). Summed over processes.
 */
export function windowOf(memory: TuneMemory, pods: readonly PodCounters[], now: number): TuneWindow {
  const remembered: TuneMemory['pods'] = {};
  const sums = new Map<string, Counters>();
  const prevAt = memory.at;
  for (const p of pods) {
    const mine: Record<string, Counters> = {};
    for (const n of p.namespaces) mine[n.namespace] = add(mine[n.namespace] ?? ZERO, n);
    remembered[p.pod] = { startedAt: p.startedAt, namespaces: mine };
    if (prevAt === undefined) continue;
    const before = memory.pods[p.pod];
    const restarted = before !== undefined && before.startedAt !== p.startedAt;
    if (before === undefined && p.startedAt < prevAt) continue;
    for (const [name, c] of Object.entries(mine)) {
      const b = restarted ? undefined : before?.namespaces[name];
      const wentBack = b !== undefined && COUNTERS.some((k) => (c[k] ?? 0) < (b[k] ?? 0));
      const delta = b === undefined || wentBack ? c : combine(c, b, -1);
      sums.set(name, add(sums.get(name) ?? ZERO, delta));
    }
  }
  const seconds = prevAt === undefined ? undefined : Math.max(0.001, (now - prevAt) / 1000);
  const namespaces = new Map<string, NamespaceWindow>();
  if (seconds !== undefined) {
    for (const [name, c] of sums) {
      const reads = c.l1Hits + c.l2Hits + c.misses;
      const l2Reads = c.l2Hits + c.misses;
      namespaces.set(name, {
        namespace: name,
        reads,
        l1HitRate: reads > 0 ? c.l1Hits / reads : undefined,
        l2Reads,
        l2HitRate: l2Reads > 0 ? c.l2Hits / l2Reads : undefined,
        hitRate: reads > 0 ? (c.l1Hits + c.l2Hits) / reads : undefined,
        invalidationsPerSecond: c.invalidations / seconds,
        cacheRequests: c.cacheRequests ?? 0,
        cacheErrors: c.cacheErrors ?? 0,
      });
    }
  }
  return { seconds, namespaces, pods: remembered };
}

/** What a tick decides from. */
export interface TuneInputs {
  readonly at: number;
  /** The namespaces to tune (the definitions'), with their definition's L1 TTL, ms. */
  readonly namespaces: readonly { readonly namespace: string; readonly l1TtlMs: number }[];
  readonly window: ReadonlyMap<string, NamespaceWindow>;
  /** Highest used / maxmemory over the cache masters (undefined: none has a maxmemory). */
  readonly pressure: number | undefined;
  /** Settings in force per namespace (absent: the definition's, factors 1). */
  readonly settings: ReadonlyMap<string, NamespaceTuning>;
  /** Pinned settings, `<namespace>:<setting>` → value: never changed. */
  readonly pins: ReadonlyMap<string, number>;
}

export interface Decision {
  readonly namespace: string;
  readonly rule: TuneRule;
  readonly action: TuneAction;
  readonly setting?: TuneSetting | typeof ROLLOUT_SETTING;
  readonly before?: number;
  readonly after?: number;
  /** What the rule saw. */
  readonly inputs: Readonly<Record<string, number | null>>;
}

export interface TuneOutcome {
  readonly decisions: readonly Decision[];
  /** The namespaces whose settings changed, with their new settings. */
  readonly settings: ReadonlyMap<string, NamespaceTuning>;
  readonly flags: TuneMemory['flags'];
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** The L1 factor the rule sets for a namespace: the configured one within its bounds (≥ 1). */
export function l1Target(config: TuneConfig, l1TtlMs: number): number {
  const byTtl = config.l1Ttl.maxTtlMs / l1TtlMs;
  return round(Math.max(1, Math.min(config.l1Ttl.factor, config.l1Ttl.max, byTtl)));
}

export function l2Target(config: TuneConfig): number {
  return round(Math.max(config.l2Ttl.factor, config.l2Ttl.min));
}

/**
 * One tick of the rules, per namespace:
 * - L2 hit rate < low → recommend scaling Redis (no action); > clear → withdrawn.
 * - memory pressure > high → L2 TTL factor for new writes; < clear → back to 1.
 * - L1 hit rate < low → L1 TTL factor (≤ its bounds); > clear → back to 1.
 * - invalidations/s > high → warm the namespace's hot set; < clear → let go.
 * Each setting or flag changes at most once per cool-down; pinned settings are never touched;
 * hit-rate rules need `minReads` reads in the window.
 */
export function decide(memory: TuneMemory, inputs: TuneInputs, config: TuneConfig): TuneOutcome {
  const decisions: Decision[] = [];
  const changed = new Map<string, NamespaceTuning>();
  const flags: TuneMemory['flags'] = {};
  const at = inputs.at;
  const cooled = (since: number | undefined) => since === undefined || at - since >= config.cooldownMs;
  for (const { namespace, l1TtlMs } of inputs.namespaces) {
    const before = inputs.settings.get(namespace) ?? DEFAULT_TUNING;
    let now: NamespaceTuning = before;
    const f: NamespaceFlags = { ...(memory.flags[namespace] ?? NO_FLAGS) };
    const w = inputs.window.get(namespace);
    const pinned = (s: TuneSetting) => inputs.pins.has(pinField(namespace, s));
    const set = (
      rule: TuneRule,
      action: TuneAction,
      setting: TuneSetting,
      after: number,
      seen: Decision['inputs'],
    ) => {
      decisions.push({ namespace, rule, action, setting, before: now[setting], after, inputs: seen });
      now = { ...now, [setting]: after, changedAt: { ...now.changedAt, [setting]: at } };
    };

    // L2 hit rate: a recommendation only.
    if (w?.l2HitRate !== undefined && w.l2Reads >= config.minReads && cooled(f.l2LowAt)) {
      const seen = { l2HitRate: round(w.l2HitRate), l2Reads: w.l2Reads };
      if (!f.l2Low && w.l2HitRate < config.l2HitRate.low) {
        decisions.push({ namespace, rule: 'l2-hit-rate', action: 'recommend', inputs: seen });
        Object.assign(f, { l2Low: true, l2LowAt: at });
      } else if (f.l2Low && w.l2HitRate > config.l2HitRate.clear) {
        decisions.push({ namespace, rule: 'l2-hit-rate', action: 'clear', inputs: seen });
        Object.assign(f, { l2Low: false, l2LowAt: at });
      }
    }

    // Memory pressure: a shorter L2 TTL for new writes.
    const p = inputs.pressure;
    if (p !== undefined && !pinned('l2TtlFactor') && cooled(now.changedAt.l2TtlFactor)) {
      const seen = { pressure: round(p) };
      if (now.l2TtlFactor >= 1 && p > config.pressure.high) {
        const target = l2Target(config);
        if (target < now.l2TtlFactor) set('memory-pressure', 'set', 'l2TtlFactor', target, seen);
      } else if (now.l2TtlFactor < 1 && p < config.pressure.clear) {
        set('memory-pressure', 'revert', 'l2TtlFactor', 1, seen);
      }
    }

    // L1 hit rate: a longer L1 TTL.
    if (
      w?.l1HitRate !== undefined &&
      w.reads >= config.minReads &&
      !pinned('l1TtlFactor') &&
      cooled(now.changedAt.l1TtlFactor)
    ) {
      const seen = { l1HitRate: round(w.l1HitRate), reads: w.reads };
      if (now.l1TtlFactor <= 1 && w.l1HitRate < config.l1HitRate.low) {
        const target = l1Target(config, l1TtlMs);
        if (target > now.l1TtlFactor) set('l1-hit-rate', 'set', 'l1TtlFactor', target, seen);
      } else if (now.l1TtlFactor > 1 && w.l1HitRate > config.l1HitRate.clear) {
        set('l1-hit-rate', 'revert', 'l1TtlFactor', 1, seen);
      }
    }

    // Invalidation storms: warm the hot set once when the rule engages.
    if (w !== undefined && cooled(f.hotAt)) {
      const seen = { invalidationsPerSecond: round(w.invalidationsPerSecond) };
      if (!f.hot && w.invalidationsPerSecond > config.invalidations.high) {
        decisions.push({ namespace, rule: 'invalidation-rate', action: 'prewarm', inputs: seen });
        Object.assign(f, { hot: true, hotAt: at });
      } else if (f.hot && w.invalidationsPerSecond < config.invalidations.clear) {
        decisions.push({ namespace, rule: 'invalidation-rate', action: 'clear', inputs: seen });
        Object.assign(f, { hot: false, hotAt: at });
      }
    }

    if (now !== before) changed.set(namespace, now);
    flags[namespace] = f;
  }
  return { decisions, settings: changed, flags };
}
