/**
 * The rollout guard as a pure function (docs/tuning.md "Rollout guard"): the cache cohort's error
 * rate or the hit rate against the stage's baseline lowers a stage one step, once per breach,
 * never raises it, judges only windows wholly inside the stage, and noise within the bounds never
 * moves it (fast-check, runs of 50–120 ticks).
 */
import type { RolloutStage } from '@cachefleet/tiered-cache';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Decision,
  guardRollouts,
  loadTuneConfig,
  lowerStage,
  type NamespaceWindow,
} from '../src/index.js';

const config = loadTuneConfig({});
const NS = 'product';
const TICK = 60_000;
const T0 = 1_000_000;

interface Traffic {
  readonly requests: number;
  readonly errors: number;
  readonly reads: number;
  readonly hitRate: number;
}
const CLEAN: Traffic = { requests: 1_000, errors: 0, reads: 1_000, hitRate: 0.9 };

function windowOf(t: Traffic): NamespaceWindow {
  return {
    namespace: NS,
    reads: t.reads,
    l1HitRate: t.hitRate,
    l2Reads: t.reads,
    l2HitRate: t.hitRate,
    hitRate: t.hitRate,
    invalidationsPerSecond: 0,
    cacheRequests: t.requests,
    cacheErrors: t.errors,
  };
}

function stage(percent: number, extra: Partial<RolloutStage> = {}): RolloutStage {
  return { percent, previous: null, at: T0 - 1, by: 'operator', ...extra };
}

/** One tick whose window began at `from` (default T0, after the stage; null: first tick). */
function once(s: RolloutStage, t: Traffic, from: number | null = T0) {
  return guardRollouts(
    {
      at: T0 + TICK,
      windowFrom: from ?? undefined,
      namespaces: [NS],
      stages: new Map([[NS, s]]),
      window: new Map([[NS, windowOf(t)]]),
      previousHitRates: { [NS]: 0.9 },
    },
    config,
    'tuner:1',
  );
}

/** Ticks one after the other, carrying the stage and the memory's hit rates as the job does through Redis. */
function run(start: RolloutStage, ticks: readonly Traffic[]) {
  let current = start;
  let hitRates: Record<string, number> = {};
  const decisions: (Decision & { tick: number })[] = [];
  const percents: number[] = [];
  ticks.forEach((t, i) => {
    const at = T0 + (i + 1) * TICK;
    const out = guardRollouts(
      {
        at,
        windowFrom: T0 + i * TICK,
        namespaces: [NS],
        stages: new Map([[NS, current]]),
        window: new Map([[NS, windowOf(t)]]),
        previousHitRates: hitRates,
      },
      config,
      `tuner:${i}`,
    );
    for (const d of out.decisions) decisions.push({ ...d, tick: i });
    current = out.stages.get(NS) ?? current;
    hitRates = out.hitRates;
    percents.push(current.percent);
  });
  return { decisions, percents, stage: current };
}

describe('rollout guard', () => {
  it('lowers the stage when the cache cohort errs over 1 %, to the stored previous stage', () => {
    const out = once(stage(50, { previous: 10, baseline: 0.9 }), { ...CLEAN, errors: 11 });
    expect(out.decisions).toEqual([
      expect.objectContaining({
        namespace: NS,
        rule: 'rollout-guard',
        action: 'rollback',
        setting: 'rolloutPercent',
        before: 50,
        after: 10,
        inputs: expect.objectContaining({ cacheRequests: 1_000, cacheErrors: 11, errorRate: 0.011 }),
      }),
    ]);
    expect(out.stages.get(NS)).toEqual({
      percent: 10,
      previous: 50,
      at: T0 + TICK,
      by: 'tuner:1',
      baseline: 0.9,
    });
  });

  it('holds at exactly 1 % and below the minimum of requests', () => {
    expect(once(stage(50, { baseline: 0.9 }), { ...CLEAN, errors: 10 }).decisions).toEqual([]);
    const few = { ...CLEAN, requests: config.rollout.minRequests - 1, errors: 50 };
    expect(once(stage(50, { baseline: 0.9 }), few).decisions).toEqual([]);
  });

  it('lowers the stage when the hit rate falls more than 10 % below the baseline', () => {
    const s = stage(100, { previous: 50, baseline: 0.9 });
    expect(once(s, { ...CLEAN, hitRate: 0.82 }).decisions).toEqual([]);
    const out = once(s, { ...CLEAN, hitRate: 0.8 });
    expect(out.decisions.map((d) => [d.before, d.after])).toEqual([[100, 50]]);
  });

  it('goes one step down the ladder without a lower previous stage', () => {
    expect(lowerStage(stage(100))).toBe(50);
    expect(lowerStage(stage(50))).toBe(10);
    expect(lowerStage(stage(10))).toBe(0);
    expect(lowerStage(stage(30))).toBe(10);
    expect(lowerStage(stage(10, { previous: 50 }))).toBe(0); // the operator lowered it: not back up
    expect(lowerStage(stage(100, { previous: 10 }))).toBe(10);
  });

  it('judges no window that began before the stage, and records the baseline then', () => {
    const fresh = stage(50, { at: T0 + 10 }); // set 10 ms into the window
    const out = once(fresh, { ...CLEAN, errors: 500 });
    expect(out.decisions).toEqual([]);
    // The window before the stage (the memory's) is its baseline.
    expect(out.stages.get(NS)).toEqual({ ...fresh, baseline: 0.9 });
    // No tick ran between an earlier stage and this window: no baseline (the hit-rate trigger is off).
    const older = once(stage(50, { at: T0 - 5 * TICK }), CLEAN, T0);
    expect(older.stages.get(NS)?.baseline).toBeNull();
  });

  it('leaves alone a namespace at 0 %, an undefined namespace and a first tick', () => {
    expect(once(stage(0, { baseline: 0.9 }), { ...CLEAN, errors: 900 }).decisions).toEqual([]);
    expect(once(stage(50, { baseline: 0.9 }), { ...CLEAN, errors: 900 }, null).decisions).toEqual([]);
    const other = guardRollouts(
      {
        at: T0 + TICK,
        windowFrom: T0,
        namespaces: ['category'],
        stages: new Map([[NS, stage(50, { baseline: 0.9 })]]),
        window: new Map([[NS, windowOf({ ...CLEAN, errors: 900 })]]),
        previousHitRates: {},
      },
      config,
      'tuner:1',
    );
    expect(other.decisions).toEqual([]);
    expect(other.stages.size).toBe(0);
  });

  // Noise within the bounds: error rate ≤ 1 %, hit rate ≥ 0.9 × the baseline (any reads or requests).
  const within = (baseline: number) =>
    fc
      .record({
        requests: fc.integer({ min: 0, max: 100_000 }),
        errorShare: fc.double({ min: 0, max: 0.01, noNaN: true }),
        reads: fc.integer({ min: 0, max: 100_000 }),
        hitRate: fc.double({ min: baseline * 0.9 + 1e-9, max: 1, noNaN: true }),
      })
      .map(
        (t): Traffic => ({
          requests: t.requests,
          errors: Math.floor(t.requests * t.errorShare),
          reads: t.reads,
          hitRate: t.hitRate,
        }),
      );

  it('never moves a stage on noise within the bounds (fast-check, 50–120 ticks)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<number>(10, 50, 100),
        fc
          .double({ min: 0.05, max: 1, noNaN: true })
          .chain((b) => fc.tuple(fc.constant(b), fc.array(within(b), { minLength: 50, maxLength: 120 }))),
        (percent, [baseline, ticks]) => {
          const r = run(stage(percent, { baseline }), ticks);
          expect(r.decisions).toEqual([]);
          expect(r.percents.every((p) => p === percent)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rolls back once per breach and never raises the percentage (fast-check)', () => {
    const breach = fc.oneof(
      fc.integer({ min: 0, max: 1_000 }).map((e): Traffic => ({ ...CLEAN, errors: 11 + e })),
      fc.double({ min: 0, max: 0.8, noNaN: true }).map((h): Traffic => ({ ...CLEAN, hitRate: h })),
    );
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(CLEAN), breach), { minLength: 50, maxLength: 120 }),
        fc.constantFrom<number>(10, 50, 100),
        (ticks, percent) => {
          const r = run(stage(percent, { baseline: 0.9 }), ticks);
          // Percentages only go down.
          let last = percent;
          for (const p of r.percents) {
            expect(p).toBeLessThanOrEqual(last);
            last = p;
          }
          for (const d of r.decisions) expect(d.after).toBeLessThan(d.before ?? 0);
          // One rollback per breaching tick while above 0 %, none on a clean one.
          const breaching = ticks.map((t) => t !== CLEAN);
          let p = percent;
          const expected: number[] = [];
          breaching.forEach((b, i) => {
            if (b && p > 0) {
              expected.push(i);
              p = lowerStage({ ...stage(p), previous: null });
            }
          });
          expect(r.decisions.map((d) => d.tick)).toEqual(expected);
          expect(r.stage.percent).toBe(p);
        },
      ),
      { numRuns: 300 },
    );
  });
});
