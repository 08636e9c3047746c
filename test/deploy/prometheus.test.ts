/**
 * deploy/prometheus: the rules load (`promtool check rules`), their unit tests pass (`promtool test
 * rules`, a case per recording rule and per alert, both ways), they name only metrics the README's
 * tables list (checked against live /metrics by test/metrics.test.ts) or Prometheus' `up`, and
 * every alert links a section of docs/runbook.md. promtool: PROMTOOL_BIN, found or installed by the
 * set-up (test/setup/tools.ts).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { README_METRICS } from '../readme-metrics.js';
import { metricNames } from './promql.js';

const ROOT = join(import.meta.dirname, '..', '..');
const RULES = join(ROOT, 'deploy', 'prometheus', 'rules.yaml');
const RULE_TESTS = join(ROOT, 'deploy', 'prometheus', 'rules.test.yaml');
const RUNBOOK = 'docs/runbook.md';

const Rule = z.union([
  z.object({ record: z.string(), expr: z.string() }).strict(),
  z
    .object({
      alert: z.string(),
      expr: z.string(),
      for: z.string().optional(),
      labels: z.object({ severity: z.enum(['warning', 'critical']) }).strict(),
      annotations: z.object({ summary: z.string().min(1), runbook_url: z.string() }).strict(),
    })
    .strict(),
]);
const RuleFile = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(Rule) })) });
const rules = RuleFile.parse(parse(readFileSync(RULES, 'utf8'))).groups.flatMap((g) => g.rules);
const records = rules.flatMap((r) => ('record' in r ? [r] : []));
const alerts = rules.flatMap((r) => ('alert' in r ? [r] : []));

const RuleTests = z.object({
  tests: z.array(
    z.object({
      promql_expr_test: z.array(z.object({ expr: z.string() })).optional(),
      alert_rule_test: z
        .array(z.object({ alertname: z.string(), exp_alerts: z.array(z.unknown()).optional() }))
        .optional(),
    }),
  ),
});
const cases = RuleTests.parse(parse(readFileSync(RULE_TESTS, 'utf8'))).tests;

function promtool(args: readonly string[]): { status: number | null; output: string } {
  const bin = process.env.PROMTOOL_BIN;
  if (bin === undefined || bin === '')
    throw new Error('PROMTOOL_BIN unset: run the tests through vitest (its set-up finds promtool)');
  const run = spawnSync(bin, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

/** GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\w\- ]/g, '')
    .replace(/ /g, '-');
}

describe('deploy/prometheus', () => {
  test('promtool check rules passes on rules.yaml', () => {
    const run = promtool(['check', 'rules', RULES]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  test('promtool test rules passes on rules.test.yaml', () => {
    const run = promtool(['test', 'rules', RULE_TESTS]);
    expect(run, run.output).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
  });

  test('every recording rule has a value test, every alert a firing and a quiet case', () => {
    const tested = new Set(cases.flatMap((c) => (c.promql_expr_test ?? []).map((t) => t.expr.trim())));
    expect(records.map((r) => r.record).filter((name) => !tested.has(name))).toEqual([]);
    const checks = cases.flatMap((c) => c.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const mine = checks.filter((t) => t.alertname === alert);
      expect(
        mine.some((t) => (t.exp_alerts ?? []).length > 0),
        `${alert}: no case where it fires`,
      ).toBe(true);
      expect(
        mine.some((t) => (t.exp_alerts ?? []).length === 0),
        `${alert}: no case where it stays quiet`,
      ).toBe(true);
    }
  });

  test('the name extractor finds names and skips functions, labels, strings and keywords', () => {
    expect(
      metricNames(
        'sum by (queue) (rate(a_total{x="b_total"}[5m])) / on (queue) b:c:d > 0 and absent(c) unless d_1 offset 5m',
      ),
    ).toEqual(['a_total', 'b:c:d', 'c', 'd_1']);
  });

  test('the rules name only metrics of the README tables, `up` and their own recorded series', () => {
    const documented = new Set([...Object.values(README_METRICS).flat(), 'up']);
    const recorded = new Set(records.map((r) => r.record));
    const used = new Set(rules.flatMap((r) => metricNames(r.expr)));
    expect(used.size).toBeGreaterThan(10);
    // A histogram's series (_count, _sum, _bucket) belong to the family the README lists.
    const family = (name: string) => name.replace(/_(count|sum|bucket)$/, '');
    expect([...used].filter((n) => !recorded.has(n) && !documented.has(family(n)))).toEqual([]);
  });

  test('every alert links a section of docs/runbook.md, and every section is an alert', () => {
    const runbook = readFileSync(join(ROOT, RUNBOOK), 'utf8');
    const sections = [...runbook.matchAll(/^## (.+)$/gm)].map((m) => m[1] as string);
    const anchors = new Set(sections.map(anchor));
    for (const { alert, annotations } of alerts) {
      expect(annotations.runbook_url, alert).toBe(`${RUNBOOK}#${alert.toLowerCase()}`);
      expect(anchors.has(alert.toLowerCase()), `${RUNBOOK}: no section for ${alert}`).toBe(true);
    }
    expect(sections.sort()).toEqual(alerts.map((a) => a.alert).sort());
  });
});
