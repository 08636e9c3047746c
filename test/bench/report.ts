import type { Row } from './types.js';

const BENTO = 'bentocache';

/** Fills vsFloor / vsBentocache in place. A ratio > 1× means faster than the reference row. */
export function addRatios(rows: Row[]): void {
  const floor = rows.find((r) => r.role === 'floor')?.opsPerSec ?? null;
  const bento = rows.find((r) => r.name === BENTO)?.opsPerSec ?? null;
  for (const row of rows) {
    row.vsFloor = ratio(row.opsPerSec, floor);
    row.vsBentocache = ratio(row.opsPerSec, bento);
  }
}

function ratio(value: number | null, reference: number | null): number | null {
  if (value === null || reference === null || reference <= 0) return null;
  return value / reference;
}

export function formatRatio(r: number | null | undefined): string {
  if (r === null || r === undefined) return '—';
  // Two decimals hide the difference between 0.004× and 0.001×, which matters against an L1 floor.
  return `${r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

export function formatOps(ops: number | null): string {
  if (ops === null) return '—';
  return Math.round(ops).toLocaleString('en-US');
}

const HEAD = ['name', 'role', 'ops/s', 'vs floor', 'vs bentocache', 'extra'] as const;
const RIGHT = new Set([2, 3, 4]);

export function renderTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.name,
    r.role,
    formatOps(r.opsPerSec),
    formatRatio(r.vsFloor),
    formatRatio(r.vsBentocache),
    r.error === undefined ? r.extra : `ERROR: ${r.error}`,
  ]);
  const all = [[...HEAD], ...cells];
  const widths = HEAD.map((_, i) => Math.max(...all.map((line) => (line[i] ?? '').length)));
  const fmt = (line: readonly string[]): string =>
    line
      .map((cell, i) => {
        const w = widths[i] ?? 0;
        return RIGHT.has(i) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join(' | ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('-|-');
  return [fmt(HEAD), rule, ...cells.map(fmt)].join('\n');
}
