// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax (${var}) in sample queries, not templates
/**
 * The helpers of the live Prometheus test, without servers: the dashboard query extractor and
 * Grafana variable substitution (test/deploy/dashboards.ts) on a sample dashboard written to a
 * temporary folder (not to deploy/grafana), and the derivation of the short-timed rule copy
 * (shortenRules, test/deploy/prometheus-server.ts) from the shipped rules.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import {
  dashboardFiles,
  dashboardQueries,
  dashboardVariables,
  parseDashboard,
  resolveVariables,
  substitute,
} from './dashboards.js';
import { durationMs, shortenRules } from './prometheus-server.js';

const dir = mkdtempSync(join(tmpdir(), 'cachefleet-dashboards-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small dashboard of the current schema: a panel, a collapsed row holding two, variables. */
const SAMPLE = {
  title: 'sample',
  templating: {
    list: [
      { name: 'datasource', type: 'datasource', query: 'prometheus' },
      {
        name: 'namespace',
        type: 'query',
        query: { query: 'label_values(cachefleet_cache_requests_total, namespace)', refId: 'A' },
      },
      { name: 'job', type: 'custom', query: 'api, worker' },
      {
        name: 'queue',
        type: 'query',
        definition: 'label_values(cachefleet_queue_jobs{job=~"$job"}, queue)',
        query: 'label_values(cachefleet_queue_jobs{job=~"$job"}, queue)',
      },
    ],
  },
  panels: [
    {
      title: 'Hit rate',
      targets: [
        { refId: 'A', expr: 'namespace_tier:cachefleet_cache_hit_ratio:rate5m{namespace="$namespace"}' },
      ],
    },
    {
      title: 'Queues',
      type: 'row',
      collapsed: true,
      panels: [
        {
          title: 'Depth',
          targets: [{ refId: 'A', expr: 'sum by (state) (cachefleet_queue_jobs{queue=~"${queue:regex}"})' }],
        },
        {
          title: 'Throughput',
          targets: [
            {
              refId: 'A',
              expr: 'sum(rate(cachefleet_job_duration_seconds_count{queue="[[queue]]"}[$__rate_interval]))',
            },
            { refId: 'B', expr: '' },
            { refId: 'C', expression: '$A * 2', datasource: { type: '__expr__' } },
          ],
        },
      ],
    },
    { title: 'Text', type: 'text' },
  ],
};

/** The old schema: panels inside `rows`. */
const OLD = {
  title: 'old',
  rows: [{ panels: [{ title: 'Up', targets: [{ refId: 'A', expr: 'up' }] }] }],
};

describe('dashboard extractor', () => {
  it('finds the folder’s *.json files, sorted, and none in a missing folder', () => {
    writeFileSync(join(dir, 'b.json'), JSON.stringify(SAMPLE));
    writeFileSync(join(dir, 'a.json'), JSON.stringify(OLD));
    writeFileSync(join(dir, 'README.md'), '# not a dashboard');
    expect(dashboardFiles(dir)).toEqual([join(dir, 'a.json'), join(dir, 'b.json')]);
    expect(dashboardFiles(join(dir, 'missing'))).toEqual([]);
  });

  it('extracts every non-empty expr, nested rows and the old schema included', () => {
    const read = (f: string) => parseDashboard(JSON.parse(readFileSync(join(dir, f), 'utf8')));
    expect(dashboardQueries(read('b.json'))).toEqual([
      { panel: 'Hit rate', refId: 'A', expr: SAMPLE.panels[0]?.targets?.[0]?.expr },
      {
        panel: 'Queues › Depth',
        refId: 'A',
        expr: 'sum by (state) (cachefleet_queue_jobs{queue=~"${queue:regex}"})',
      },
      {
        panel: 'Queues › Throughput',
        refId: 'A',
        expr: 'sum(rate(cachefleet_job_duration_seconds_count{queue="[[queue]]"}[$__rate_interval]))',
      },
    ]);
    expect(dashboardQueries(read('a.json'))).toEqual([{ panel: 'Up', refId: 'A', expr: 'up' }]);
  });

  it('turns the variables into fixed values and label_values queries', () => {
    expect(dashboardVariables(parseDashboard(SAMPLE))).toEqual([
      { name: 'datasource', kind: 'ignored' },
      {
        name: 'namespace',
        kind: 'query',
        promql: 'group by (namespace) (cachefleet_cache_requests_total)',
        label: 'namespace',
      },
      { name: 'job', kind: 'fixed', value: 'api' },
      {
        name: 'queue',
        kind: 'query',
        promql: 'group by (queue) (cachefleet_queue_jobs{job=~"$job"})',
        label: 'queue',
      },
    ]);
    expect(
      dashboardVariables(
        parseDashboard({
          title: 't',
          templating: { list: [{ name: 'x', type: 'query', query: 'label_values(env)' }] },
        }),
      ),
    ).toEqual([{ name: 'x', kind: 'query', promql: 'group by (env) ({env!=""})', label: 'env' }]);
    expect(() =>
      dashboardVariables(
        parseDashboard({
          title: 't',
          templating: { list: [{ name: 'x', type: 'query', query: 'query_result(up)' }] },
        }),
      ),
    ).toThrow(/variable x: unsupported query/);
  });

  it('substitutes $v, ${v}, ${v:regex}, [[v]] and the built-ins; leaves $1; names a missing one', () => {
    const values = { queue: 'warm.1', namespace: 'product' };
    expect(
      substitute(
        'x{q="$queue",r=~"${queue:regex}",s="[[namespace]]",t="${namespace}"}[$__rate_interval] offset $__range',
        values,
      ),
    ).toBe('x{q="warm.1",r=~"warm\\.1",s="product",t="product"}[15s] offset 5m');
    expect(substitute('label_replace(up, "a", "$1", "job", "(.*)")', {})).toBe(
      'label_replace(up, "a", "$1", "job", "(.*)")',
    );
    expect(() => substitute('x{a="$nope"}', values)).toThrow('no value for Grafana variable $nope');
  });

  it('resolves variables in order: an earlier value in a later query, the first value sorted', async () => {
    const asked: string[] = [];
    const values = await resolveVariables(dashboardVariables(parseDashboard(SAMPLE)), async (promql) => {
      asked.push(promql);
      return promql.includes('namespace')
        ? [{ metric: { namespace: 'user' } }, { metric: { namespace: 'product' } }]
        : [{ metric: { queue: 'warm' } }];
    });
    expect(values).toEqual({ namespace: 'product', job: 'api', queue: 'warm' });
    expect(asked).toEqual([
      'group by (namespace) (cachefleet_cache_requests_total)',
      'group by (queue) (cachefleet_queue_jobs{job=~"api"})',
    ]);
  });
});

describe('shortenRules', () => {
  const shipped = readFileSync(
    join(import.meta.dirname, '..', '..', 'deploy', 'prometheus', 'rules.yaml'),
    'utf8',
  );
  const Rules = z.object({
    groups: z.array(
      z.object({ rules: z.array(z.looseObject({ expr: z.string(), for: z.string().optional() })) }),
    ),
  });
  const rules = (text: string) => Rules.parse(parse(text)).groups.flatMap((g) => g.rules);

  it('divides every for: and range window, floors for:, and changes nothing else', () => {
    const before = rules(shipped);
    const after = rules(shortenRules(shipped, { divisor: 60, minForMs: 3_000 }));
    expect(after).toHaveLength(before.length);
    const windows = (e: string) => [...e.matchAll(/\[(\w+)\]/g)].map((m) => m[1] as string);
    for (const [i, a] of after.entries()) {
      const b = before[i] as (typeof before)[number];
      expect({ ...a, expr: '', for: '' }).toEqual({ ...b, expr: '', for: '' });
      expect(a.expr.replace(/\[\w+\]/g, '[]')).toBe(b.expr.replace(/\[\w+\]/g, '[]'));
      expect(windows(a.expr).map(durationMs)).toEqual(windows(b.expr).map((w) => durationMs(w) / 60));
      if (b.for === undefined) expect(a.for).toBeUndefined();
      else expect(durationMs(a.for ?? '')).toBe(Math.max(3_000, durationMs(b.for) / 60));
    }
    expect(before.some((r) => windows(r.expr).length > 0)).toBe(true);
  });

  it('shortens subqueries and leaves brackets inside strings alone', () => {
    const text =
      'groups:\n  - name: g\n    rules:\n      - record: r\n        expr: max_over_time(rate(x{a=~"[5m]"}[10m])[1h:30s])\n';
    expect(rules(shortenRules(text, { divisor: 60, minForMs: 3_000 }))[0]?.expr).toBe(
      'max_over_time(rate(x{a=~"[5m]"}[10s])[60s:500ms])',
    );
  });
});
