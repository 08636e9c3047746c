/**
 * The README's metric tables, as lists of names: what test/metrics.test.ts compares with the live
 * /metrics of each process, and what test/deploy/prometheus.test.ts lets the shipped rules name.
 */
import { readFileSync } from 'node:fs';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/**
 * The metric names of the first table whose header starts with `| metric` in the README section
 * under `heading` (up to the next heading): the first backticked name of each row.
 */
export function readmeTable(heading: string): string[] {
  const at = README.indexOf(`\n${heading}\n`);
  if (at === -1) throw new Error(`README: no section "${heading}"`);
  const rest = README.slice(at + heading.length + 2);
  const end = rest.search(/^#{1,3} /m);
  const lines = (end === -1 ? rest : rest.slice(0, end)).split('\n');
  const header = lines.findIndex((l) => /^\|\s*metric\s*\|/.test(l));
  if (header === -1) throw new Error(`README: no metric table under "${heading}"`);
  const names: string[] = [];
  for (const row of lines.slice(header + 2)) {
    if (!row.startsWith('|')) break;
    const name = /^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`/.exec(row)?.[1];
    if (name === undefined) throw new Error(`README "${heading}": a row names no metric: ${row}`);
    names.push(name);
  }
  return names;
}

/** Every metric table of the README, by the processes' parts that export them. */
export const README_METRICS = {
  cache: readmeTable('### Metrics (prom-client)'),
  queue: readmeTable('### Queue metrics (API pods and workers)'),
  api: readmeTable('### API metrics (`/metrics`)'),
  worker: readmeTable('### Worker metrics (`/metrics`)'),
  capture: readmeTable('### Change capture: invalidating from the source of truth'),
} as const;
