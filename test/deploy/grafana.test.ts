/**
 * deploy/grafana/dashboards, checked without a Grafana: each dashboard parses (the parts we use,
 * test/deploy/dashboards.ts), panel ids are unique and panels do not overlap, every panel names the
 * datasource variable and has a query; every query, its template variables substituted, is PromQL
 * that promtool accepts (written as recording rules, `promtool check rules`), and names only
 * metrics of the README's tables (which test/metrics.test.ts holds equal to live /metrics) or the
 * recording rules of deploy/prometheus/rules.yaml — every one of which a dashboard shows.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { README_METRICS } from '../readme-metrics.js';
import {
  allPanels,
  DATASOURCE,
  DATASOURCE_VARIABLE,
  dashboardQueries,
  dashboardVariables,
  loadDashboards,
  substitute,
  type Variable,
} from './dashboards.js';
import { metricFamily, metricNames, promtool } from './promql.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = join(ROOT, 'deploy', 'grafana', 'dashboards');
const dashboards = loadDashboards(DIR);
const queries = dashboardQueries(DIR);
const recorded = z
  .object({ groups: z.array(z.object({ rules: z.array(z.looseObject({ record: z.string().optional() })) })) })
  .parse(parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'rules.yaml'), 'utf8')))
  .groups.flatMap((g) => g.rules.flatMap((r) => (r.record === undefined ? [] : [r.record])));

const tmp = mkdtempSync(join(tmpdir(), 'cachefleet-grafana-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('deploy/grafana/dashboards', () => {
  test('the cache and queues dashboards, unique uids, one schema version', () => {
    expect(dashboards.map((d) => d.dashboard.title)).toEqual(['cachefleet – cache', 'cachefleet – queues']);
    const uids = dashboards.map((d) => d.dashboard.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const { file, dashboard } of dashboards) {
      expect(dashboard.schemaVersion, file).toBe(39);
      expect(dashboard.tags, file).toContain('cachefleet');
    }
  });

  test('panel ids are unique, and panels do not overlap on the grid', () => {
    for (const { file, dashboard } of dashboards) {
      const panels = allPanels(dashboard);
      const ids = panels.map((p) => p.id);
      expect(
        ids.filter((id, i) => ids.indexOf(id) !== i),
        `${file}: repeated panel ids`,
      ).toEqual([]);
      const overlaps: string[] = [];
      for (const [i, a] of panels.entries()) {
        for (const b of panels.slice(i + 1)) {
          const g = a.gridPos;
          const h = b.gridPos;
          if (g.x < h.x + h.w && h.x < g.x + g.w && g.y < h.y + h.h && h.y < g.y + g.h)
            overlaps.push(`${a.title} / ${b.title}`);
        }
        expect(a.gridPos.x + a.gridPos.w, `${file} ${a.title}: wider than the grid`).toBeLessThanOrEqual(24);
      }
      expect(overlaps, file).toEqual([]);
    }
  });

  test('every panel (rows aside) names the datasource variable and has a query; the variable defaults to the provisioned uid', () => {
    for (const { file, dashboard } of dashboards) {
      const ds = dashboard.templating.list.filter((v) => v.type === 'datasource');
      expect(
        ds.map((v) => [v.name, v.current.value]),
        file,
      ).toEqual([[DATASOURCE_VARIABLE, 'prometheus']]);
      for (const panel of allPanels(dashboard)) {
        if (panel.type === 'row') {
          expect(panel.targets ?? [], `${file} row ${panel.title}`).toEqual([]);
          continue;
        }
        expect(panel.datasource, `${file} ${panel.title}`).toEqual(DATASOURCE);
        expect(panel.targets?.length ?? 0, `${file} ${panel.title}: no query`).toBeGreaterThan(0);
        for (const t of panel.targets ?? [])
          expect(t.datasource, `${file} ${panel.title}`).toEqual(DATASOURCE);
      }
      for (const v of dashboard.templating.list) {
        if (v.type !== 'query') continue;
        expect(v.datasource, `${file} $${v.name}`).toEqual(DATASOURCE);
        expect(v.definition, `${file} $${v.name}`).toBe(v.query.query);
        // Every query variable offers All, sent as .+ (substitute() relies on it).
        expect([v.includeAll, v.allValue], `${file} $${v.name}`).toEqual([true, '.+']);
      }
      // A repeated panel repeats over a variable of its dashboard.
      const names = dashboard.templating.list.map((v) => v.name);
      for (const p of allPanels(dashboard))
        if (p.repeat !== undefined) expect(names, `${file} ${p.title}`).toContain(p.repeat);
    }
  });

  test('substitute() replaces every form of a variable and the built-ins, and refuses an unknown one', () => {
    const variables: Variable[] = [
      {
        type: 'query',
        name: 'queue',
        datasource: DATASOURCE,
        definition: 'label_values(m, queue)',
        query: { query: 'label_values(m, queue)' },
        includeAll: true,
        allValue: '.+',
      },
    ];
    expect(
      substitute(
        `rate(m{a=~"$queue", b=~"\${queue}", c=~"\${queue:regex}", d=~"[[queue]]"}[$__rate_interval]) + increase(m[$__range])`,
        variables,
        { rateInterval: '30s' },
      ),
    ).toBe('rate(m{a=~".+", b=~".+", c=~".+", d=~".+"}[30s]) + increase(m[1h])');
    expect(() => substitute('m{a="$nope"}', variables)).toThrow(/\$nope/);
  });

  test('every query, variables substituted, is PromQL promtool accepts', () => {
    expect(queries.length).toBeGreaterThan(30);
    // Each query as a recording rule: `promtool check rules` parses its expression.
    const file = join(tmp, 'dashboards.rules.yaml');
    const rules = queries.map((q, i) => ({
      dashboard: q.dashboard,
      record: `dashboard_query_${i}`,
      expr: q.expr,
    }));
    const groups = dashboards.map(({ dashboard }) => ({
      name: dashboard.uid,
      rules: rules
        .filter((r) => r.dashboard === dashboard.title)
        .map(({ record, expr }) => ({ record, expr })),
    }));
    writeFileSync(file, stringify({ groups }));
    const run = promtool(['check', 'rules', file]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  test('queries and variables name only metrics of the README tables and the recording rules; every recording rule is shown', () => {
    const documented = new Set(Object.values(README_METRICS).flat());
    const used = new Set([
      ...queries.flatMap((q) => metricNames(q.expr)),
      ...dashboardVariables(DIR).map((v) => v.metric),
    ]);
    expect(used.size).toBeGreaterThan(20);
    expect([...used].filter((n) => !recorded.includes(n) && !documented.has(metricFamily(n)))).toEqual([]);
    expect(recorded.filter((r) => !used.has(r))).toEqual([]);
  });

  test('heat maps read histogram buckets by le, formatted as a heat map', () => {
    const heatmaps = dashboards.flatMap(({ dashboard }) =>
      allPanels(dashboard).filter((p) => p.type === 'heatmap'),
    );
    expect(heatmaps.length).toBeGreaterThan(0);
    for (const p of heatmaps) {
      for (const t of p.targets ?? []) {
        expect(t.format, p.title).toBe('heatmap');
        expect(t.expr, p.title).toMatch(/^sum by \(le\) \(rate\(\w+_bucket\{/);
      }
    }
  });
});
