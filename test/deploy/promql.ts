/**
 * PromQL read as text, for the checks of deploy/prometheus (rules) and deploy/grafana (dashboards).
 */

/** PromQL's words that look like names: operators, aggregation modifiers, and `inf`/`nan`. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers outside strings, label matchers
 * (`{…}`), ranges (`[…]`) and label lists (`by (…)`, `on (…)`…), that are no function call or
 * keyword. Enough for the expressions we write; test/deploy/prometheus.test.ts proves it on a known
 * expression.
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
