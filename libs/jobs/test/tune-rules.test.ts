/**
 * The tuner's rules as a pure function (no Redis): a workload crossing each threshold in turn gets
 * the right action once and its revert once the condition clears; noisy inputs over ≥ 50 ticks never
 * make a setting flap; pinned settings are never changed; bounds hold. The window of counters
 * since the previous tick is a difference of each process's counters.
 */
import type { NamespaceTuning } from '@cachefleet/tiered-cache';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Decision,
  decide,
  EMPTY_MEMORY,
  loadTuneConfig,
  type NamespaceWindow,
  type TuneMemory,
  windowOf,
} from '../src/index.js';

const config = loadTuneConfig({});
const TICK = 60_000;
const NS = 'product';
const L1_TTL_MS = 60_000;

interface Tick {
  readonly l1HitRate?: number;
  readonly l2HitRate?: number;
  readonly pressure?: number;
  readonly invalidationsPerSecond?: number;
  readonly reads?: number;
}

function windowFor(t: Tick): NamespaceWindow {
  const reads = t.reads ?? 10_000;
  return {
    namespace: NS,
    reads,
    l1HitRate: t.l1HitRate ?? 0.9,
    l2Reads: reads,
    l2HitRate: t.l2HitRate ?? 0.9,
    hitRate: 0.9,
    invalidationsPerSecond: t.invalidationsPerSecond ?? 0,
    cacheRequests: 0,
    cacheErrors: 0,
  };
}

/** Runs the rules tick after tick, carrying settings and memory as the job does through Redis. */
function run(ticks: readonly Tick[], pins = new Map<string, number>(), tuneConfig = config) {
  let memory: TuneMemory = EMPTY_MEMORY;
  let settings = new Map<string, NamespaceTuning>();
  const decisions: (Decision & { readonly tick: number })[] = [];
  ticks.forEach((t, i) => {
    const at = 1_000_000 + i * TICK;
    const out = decide(
      memory,
      {
        at,
        namespaces: [{ namespace: NS, l1TtlMs: L1_TTL_MS }],
        window: new Map([[NS, windowFor(t)]]),
        pressure: t.pressure,
        settings,
        pins,
      },
      tuneConfig,
    );
    for (const d of out.decisions) decisions.push({ ...d, tick: i });
    settings = new Map([...settings, ...out.settings]);
    memory = { at, pods: {}, flags: out.flags };
  });
  return { decisions, settings: settings.get(NS) };
}

const repeat = (n: number, t: Tick): Tick[] => Array.from({ length: n }, () => t);
const cooldownTicks = Math.ceil(config.cooldownMs / TICK);

describe('tune rules: each threshold in turn', () => {
  it('L1 hit rate < 0.30 lengthens the L1 TTL once; > 0.40 puts it back once', () => {
    const { decisions, settings } = run([
      ...repeat(3, {}),
      ...repeat(10, { l1HitRate: 0.2 }),
      ...repeat(10, { l1HitRate: 0.35 }), // inside the band: nothing
      ...repeat(10, { l1HitRate: 0.6 }),
    ]);
    const l1 = decisions.filter((d) => d.rule === 'l1-hit-rate');
    expect(l1.map((d) => [d.action, d.before, d.after, d.tick])).toEqual([
      ['set', 1, 2, 3],
      ['revert', 2, 1, 23],
    ]);
    expect(settings?.l1TtlFactor).toBe(1);
    expect(decisions.filter((d) => d.rule !== 'l1-hit-rate')).toEqual([]);
  });

  it('memory pressure > 0.85 shortens the L2 TTL once; < 0.75 puts it back once the cool-down is over', () => {
    const { decisions } = run([
      ...repeat(2, { pressure: 0.5 }),
      ...repeat(2, { pressure: 0.9 }),
      ...repeat(10, { pressure: 0.8 }),
      ...repeat(2, { pressure: 0.5 }), // cleared, but within the cool-down of the set at tick 2
      ...repeat(3, { pressure: 0.5 }),
    ]);
    expect(decisions.map((d) => [d.rule, d.action, d.setting, d.after, d.tick])).toEqual([
      ['memory-pressure', 'set', 'l2TtlFactor', 0.5, 2],
      ['memory-pressure', 'revert', 'l2TtlFactor', 1, 14],
    ]);
  });

  it('L2 hit rate < 0.70 recommends (no setting changes), and withdraws it above 0.75', () => {
    const { decisions, settings } = run([
      ...repeat(2, {}),
      ...repeat(8, { l2HitRate: 0.5 }),
      ...repeat(8, { l2HitRate: 0.72 }),
      ...repeat(8, { l2HitRate: 0.9 }),
    ]);
    expect(decisions.map((d) => [d.rule, d.action, d.tick])).toEqual([
      ['l2-hit-rate', 'recommend', 2],
      ['l2-hit-rate', 'clear', 18],
    ]);
    expect(settings).toBeUndefined();
  });

  it('more than 10 invalidations/s warms the hot set once; the rule lets go under 5/s', () => {
    const { decisions } = run([
      ...repeat(2, { invalidationsPerSecond: 1 }),
      ...repeat(8, { invalidationsPerSecond: 40 }),
      ...repeat(8, { invalidationsPerSecond: 7 }),
      ...repeat(2, { invalidationsPerSecond: 0 }),
    ]);
    expect(decisions.map((d) => [d.rule, d.action, d.tick])).toEqual([
      ['invalidation-rate', 'prewarm', 2],
      ['invalidation-rate', 'clear', 18],
    ]);
  });

  it('too few reads in the window: hit-rate rules wait', () => {
    const { decisions } = run(repeat(10, { l1HitRate: 0, l2HitRate: 0, reads: config.minReads - 1 }));
    expect(decisions).toEqual([]);
  });

  it('the L1 factor stays within its bounds: the L1 TTL never passes 10 min', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3_600 }),
        fc.double({ min: 1, max: 50, noNaN: true }),
        (ttlSeconds, factor) => {
          const c = loadTuneConfig({ TUNE_L1_TTL_FACTOR: String(factor), TUNE_L1_TTL_FACTOR_MAX: '20' });
          const out = decide(
            EMPTY_MEMORY,
            {
              at: 1,
              namespaces: [{ namespace: NS, l1TtlMs: ttlSeconds * 1000 }],
              window: new Map([[NS, windowFor({ l1HitRate: 0 })]]),
              pressure: undefined,
              settings: new Map(),
              pins: new Map(),
            },
            c,
          );
          const after = out.settings.get(NS)?.l1TtlFactor ?? 1;
          expect(after).toBeGreaterThanOrEqual(1);
          expect(after).toBeLessThanOrEqual(20);
          // Rounded to 4 decimals: within a hair of the bound.
          expect(ttlSeconds * after).toBeLessThanOrEqual(Math.max(ttlSeconds, 600) * 1.0001);
        },
      ),
      { numRuns: 500, seed: 13 },
    );
  });
});

/** Noisy ticks: each figure drawn anywhere in [0, 1] (rates) or [0, 30] (invalidations/s). */
const noisyTick = fc.record({
  l1HitRate: fc.double({ min: 0, max: 1, noNaN: true }),
  l2HitRate: fc.double({ min: 0, max: 1, noNaN: true }),
  pressure: fc.double({ min: 0, max: 1, noNaN: true }),
  invalidationsPerSecond: fc.double({ min: 0, max: 30, noNaN: true }),
});

/** Noise inside the hysteresis band of every rule. */
const inBand = fc.record({
  l1HitRate: fc.double({ min: 0.3, max: 0.4, noNaN: true }),
  l2HitRate: fc.double({ min: 0.7, max: 0.75, noNaN: true }),
  pressure: fc.double({ min: 0.75, max: 0.85, noNaN: true }),
  invalidationsPerSecond: fc.double({ min: 5, max: 10, noNaN: true }),
});

describe('tune rules never flap', () => {
  it('any noisy run of ≥ 50 ticks: a setting or flag changes at most once per cool-down, alternating engage and let go', () => {
    fc.assert(
      fc.property(fc.array(noisyTick, { minLength: 50, maxLength: 120 }), (ticks) => {
        const { decisions } = run(ticks);
        const byRule = new Map<string, (Decision & { tick: number })[]>();
        for (const d of decisions) byRule.set(d.rule, [...(byRule.get(d.rule) ?? []), d]);
        for (const list of byRule.values()) {
          for (let i = 1; i < list.length; i++) {
            const [a, b] = [list[i - 1], list[i]];
            if (a === undefined || b === undefined) continue;
            expect((b.tick - a.tick) * TICK).toBeGreaterThanOrEqual(config.cooldownMs);
            // engage, let go, engage …: never two engagements in a row.
            expect(a.action === 'set' || a.action === 'recommend' || a.action === 'prewarm').not.toBe(
              b.action === 'set' || b.action === 'recommend' || b.action === 'prewarm',
            );
          }
          expect(list.length).toBeLessThanOrEqual(Math.ceil(ticks.length / cooldownTicks));
        }
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('once engaged, noise inside the band changes nothing over 50 ticks', () => {
    fc.assert(
      fc.property(fc.array(inBand, { minLength: 50, maxLength: 80 }), (ticks) => {
        const engage: Tick = { l1HitRate: 0.1, l2HitRate: 0.2, pressure: 0.95, invalidationsPerSecond: 50 };
        const { decisions } = run([engage, ...ticks]);
        expect(decisions.every((d) => d.tick === 0)).toBe(true);
        expect(decisions.map((d) => d.rule).sort()).toEqual([
          'invalidation-rate',
          'l1-hit-rate',
          'l2-hit-rate',
          'memory-pressure',
        ]);
      }),
      { numRuns: 200, seed: 8 },
    );
  });

  it('a pinned setting is never changed, whatever the inputs', () => {
    fc.assert(
      fc.property(fc.array(noisyTick, { minLength: 50, maxLength: 80 }), (ticks) => {
        const pins = new Map([
          [`${NS}:l1TtlFactor`, 3],
          [`${NS}:l2TtlFactor`, 1],
        ]);
        const { decisions } = run(ticks, pins);
        expect(decisions.filter((d) => d.setting !== undefined)).toEqual([]);
      }),
      { numRuns: 200, seed: 9 },
    );
  });
});

describe('the window since the previous tick', () => {
  const c = (l1Hits: number, l2Hits: number, misses: number, invalidations = 0) => ({
    l1Hits,
    l2Hits,
    misses,
    invalidations,
  });

  it('is the difference of each process counters, not their totals since start', () => {
    const first = windowOf(
      EMPTY_MEMORY,
      [{ pod: 'a', startedAt: 0, namespaces: [{ namespace: NS, ...c(900, 50, 50) }] }],
      60_000,
    );
    expect(first.seconds).toBeUndefined();
    expect(first.namespaces.size).toBe(0);
    const memory: TuneMemory = { at: 60_000, pods: first.pods, flags: {} };
    // Since the last tick: 10 L1 hits out of 100 reads (the totals since start say 0.83).
    const second = windowOf(
      memory,
      [{ pod: 'a', startedAt: 0, namespaces: [{ namespace: NS, ...c(910, 90, 100, 1200) }] }],
      120_000,
    );
    expect(second.seconds).toBe(60);
    const w = second.namespaces.get(NS);
    expect(w?.reads).toBe(100);
    expect(w?.l1HitRate).toBeCloseTo(0.1);
    expect(w?.l2HitRate).toBeCloseTo(40 / 90);
    expect(w?.invalidationsPerSecond).toBe(20);
  });

  it('a process started within the window counts from zero; one seen for the first time but older is only remembered; a restart counts from zero', () => {
    const memory: TuneMemory = {
      at: 60_000,
      pods: { a: { startedAt: 0, namespaces: { [NS]: c(100, 0, 0) } } },
      flags: {},
    };
    const w = windowOf(
      memory,
      [
        { pod: 'a', startedAt: 70_000, namespaces: [{ namespace: NS, ...c(5, 0, 0) }] }, // restarted
        { pod: 'b', startedAt: 80_000, namespaces: [{ namespace: NS, ...c(7, 0, 0) }] }, // new
        { pod: 'c', startedAt: 10, namespaces: [{ namespace: NS, ...c(1_000, 0, 0) }] }, // unseen before
      ],
      120_000,
    );
    expect(w.namespaces.get(NS)?.reads).toBe(12);
    expect(Object.keys(w.pods).sort()).toEqual(['a', 'b', 'c']);
  });

  it('never negative, whatever the counters do', () => {
    const counters = fc.record({
      l1Hits: fc.nat(1_000),
      l2Hits: fc.nat(1_000),
      misses: fc.nat(1_000),
      invalidations: fc.nat(1_000),
    });
    fc.assert(
      fc.property(counters, counters, fc.boolean(), (before, after, restarted) => {
        const memory: TuneMemory = {
          at: 1_000,
          pods: { a: { startedAt: 0, namespaces: { [NS]: before } } },
          flags: {},
        };
        const w = windowOf(
          memory,
          [{ pod: 'a', startedAt: restarted ? 500 : 0, namespaces: [{ namespace: NS, ...after }] }],
          61_000,
        ).namespaces.get(NS);
        expect(w?.reads).toBeGreaterThanOrEqual(0);
        expect(w?.invalidationsPerSecond).toBeGreaterThanOrEqual(0);
        for (const r of [w?.l1HitRate, w?.l2HitRate])
          if (r !== undefined) expect(r).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 500, seed: 10 },
    );
  });
});
