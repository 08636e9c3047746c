/**
 * PromQL for the deploy tests: promtool (which parses it) and the metric names an expression
 * selects. Shared by the rules' test (test/deploy/prometheus.test.ts), the dashboards'
 * (test/deploy/grafana.test.ts) and the compose test's Prometheus configuration.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** Runs promtool (PROMTOOL_BIN, found or installed by the set-up: test/setup/tools.ts) in the repository. */
export function promtool(args: readonly string[]): { status: number | null; output: string } {
  const bin = process.env.PROMTOOL_BIN;
  if (bin === undefined || bin === '')
    throw new Error('PROMTOOL_BIN unset: run the tests through vitest (its set-up finds promtool)');
  const run = spawnSync(bin, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

/** PromQL's words that look like names: operators, aggregation modifiers, and `inf`/`nan`. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers outside strings, label matchers
 * (`{…}`), ranges (`[…]`) and label lists (`by (…)`, `on (…)`…), that are no function call or
 * keyword. Enough for the expressions we write; test/deploy/prometheus.test.ts proves it on a
 * known expression.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const name = m[1] as string;
    if (m[2] === undefined && !KEYWORDS.has(name)) names.add(name);
  }
  return [...names].sort();
}

/** The family a series name belongs to: a histogram's `_count`, `_sum` and `_bucket` are its own. */
export function metricFamily(name: string): string {
  return name.replace(/_(count|sum|bucket)$/, '');
}
