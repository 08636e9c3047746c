/**
 * A migration's progress total without a counting pass (handlers/migrate.ts `estimateTotal`): the
 * DBSIZE bound until a master has been sampled, then the keys seen over the share walked, the
 * masters done exactly and the ones not begun as the current one. No Redis: a pure function of
 * the saved state.
 */
import { describe, expect, it } from 'vitest';
import { estimateTotal } from '../src/handlers/migrate.js';
import type { MigrateState } from '../src/index.js';

const totals = (scanned: number) => ({ scanned, migrated: 0, present: 0, changed: 0, skipped: 0, failed: 0 });

function state(o: Partial<MigrateState>): MigrateState {
  return {
    generation: 0,
    masters: ['a:1'],
    index: 0,
    cursor: '0',
    total: 5_000,
    atMaster: 0,
    totals: totals(0),
    failures: [],
    overtaken: false,
    ...o,
  };
}

describe('estimateTotal', () => {
  it('keeps the DBSIZE bound before the walk has sampled a master', () => {
    expect(estimateTotal(state({}))).toBe(5_000);
  });

  it("estimates the current master from the share of its buckets walked (cursor '1': half)", () => {
    expect(estimateTotal(state({ cursor: '1', totals: totals(400) }))).toBe(800);
    // Cursor '3': three quarters.
    expect(estimateTotal(state({ cursor: '3', totals: totals(600) }))).toBe(800);
  });

  it('counts the masters done exactly and the ones not begun as the current one', () => {
    const masters = ['a:1', 'b:1', 'c:1'];
    // Master a done with 700; b half walked with 400 more: 700 + 800 + 800 for c.
    expect(
      estimateTotal(state({ masters, index: 1, cursor: '1', atMaster: 700, totals: totals(1_100) })),
    ).toBe(2_300);
    // Just past master a: b and c count as a did.
    expect(estimateTotal(state({ masters, index: 1, cursor: '0', atMaster: 700, totals: totals(700) }))).toBe(
      2_100,
    );
  });

  it('is the count scanned once every master is done', () => {
    expect(estimateTotal(state({ index: 1, cursor: '0', atMaster: 812, totals: totals(812) }))).toBe(812);
  });
});
