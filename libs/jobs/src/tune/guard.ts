import { ROLLOUT_SETTING, type RolloutStage } from '@cachefleet/tiered-cache';
import type { TuneConfig } from './config.js';
import type { Decision, NamespaceWindow } from './rules.js';

/**
 * The rollout guard (REQUIREMENTS A8, the three-phase plan's rollback triggers; docs/tuning.md
 * "Rollout guard"), a pure function beside the tuner's other rules: for each namespace at a stored
 * stage above 0%, over a window lying wholly inside the stage, the `cache` cohort's error rate or
 * the namespace's hit rate against the stage's baseline lowers the stage one step. It never
 * raises a percentage: promotion is the operator's (`cachefleet rollout`).
 */

/** The plan's stages; a rollback without a lower stored previous stage goes one step down this. */
export const ROLLOUT_LADDER = [0, 10, 50, 100] as const;

export interface GuardInputs {
  readonly at: number;
  /** When the window began (the previous tick; undefined: first tick, no window). */
  readonly windowFrom: number | undefined;
  /** The namespaces the definitions declare: a stage for another is left alone. */
  readonly namespaces: readonly string[];
  readonly stages: ReadonlyMap<string, RolloutStage>;
  readonly window: ReadonlyMap<string, NamespaceWindow>;
  /** Each namespace's hit rate over the previous window (the tuner's memory). */
  readonly previousHitRates: Readonly<Record<string, number>>;
}

export interface GuardOutcome {
  readonly decisions: readonly Decision[];
  /** Stages to write: rolled back, or given their baseline. */
  readonly stages: ReadonlyMap<string, RolloutStage>;
  /** The hit rates of this window (those with enough reads): the next stage's baseline. */
  readonly hitRates: Record<string, number>;
}

/** The stage a rollback goes to: the stored previous one when it is lower, else one step down the ladder. */
export function lowerStage(stage: RolloutStage): number {
  if (stage.previous !== null && stage.previous < stage.percent) return stage.previous;
  let lower = 0;
  for (const p of ROLLOUT_LADDER) if (p < stage.percent) lower = p;
  return lower;
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

export function guardRollouts(inputs: GuardInputs, config: TuneConfig, by: string): GuardOutcome {
  const { at, windowFrom } = inputs;
  const { minRequests, errorRate, hitRateDrop } = config.rollout;
  const decisions: Decision[] = [];
  const stages = new Map<string, RolloutStage>();
  const hitRates: Record<string, number> = {};
  for (const [namespace, w] of inputs.window)
    if (w.hitRate !== undefined && w.reads >= config.minReads) hitRates[namespace] = round(w.hitRate);

  for (const namespace of inputs.namespaces) {
    let stage = inputs.stages.get(namespace);
    if (stage === undefined || stage.percent === 0) continue;
    if (stage.baseline === undefined) {
      // The first tick since the stage began: the previous window ended before it (unless the
      // tuner did not run in between — then no window is wholly before it, and there is none).
      const before = windowFrom !== undefined && windowFrom <= stage.at;
      stage = { ...stage, baseline: before ? (inputs.previousHitRates[namespace] ?? null) : null };
      stages.set(namespace, stage);
    }
    // A window that began before the stage mixes two stages' cohorts: not judged.
    if (windowFrom === undefined || windowFrom < stage.at) continue;
    const w = inputs.window.get(namespace);
    if (w === undefined) continue;
    const errors =
      w.cacheRequests >= minRequests && w.cacheErrors / w.cacheRequests > errorRate ? w.cacheErrors : 0;
    const baseline = stage.baseline ?? null;
    const hitDrop =
      baseline !== null &&
      w.hitRate !== undefined &&
      w.reads >= config.minReads &&
      w.hitRate < baseline * (1 - hitRateDrop);
    if (errors === 0 && !hitDrop) continue;
    const after = lowerStage(stage);
    decisions.push({
      namespace,
      rule: 'rollout-guard',
      action: 'rollback',
      setting: ROLLOUT_SETTING,
      before: stage.percent,
      after,
      inputs: {
        cacheRequests: w.cacheRequests,
        cacheErrors: w.cacheErrors,
        errorRate: w.cacheRequests > 0 ? round(w.cacheErrors / w.cacheRequests) : null,
        hitRate: w.hitRate === undefined ? null : round(w.hitRate),
        baseline,
        reads: w.reads,
      },
    });
    // The baseline is carried: it is the hit rate before the stage that failed, the one to hold.
    stages.set(namespace, { percent: after, previous: stage.percent, at, by, baseline });
  }
  return { decisions, stages, hitRates };
}
