/**
 * The Grafana dashboards of deploy/grafana/dashboards, read as the deploy tests need them: the
 * parts of Grafana's dashboard JSON we use (zod), and every panel query as runnable PromQL, its
 * template variables substituted (substitute() says how). test/deploy/grafana.test.ts checks them
 * statically; a live test runs dashboardQueries() against a real Prometheus.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** The dashboards' datasource variable (a provisioned Grafana defaults it to the uid `prometheus`). */
export const DATASOURCE_VARIABLE = 'DS_PROMETHEUS';
/** The datasource every panel and target names: `${DS_PROMETHEUS}`, that variable. */
export const DATASOURCE = { type: 'prometheus', uid: `\${${DATASOURCE_VARIABLE}}` } as const;

const Datasource = z.object({ type: z.string(), uid: z.string() });

const Target = z.looseObject({
  refId: z.string(),
  datasource: Datasource.optional(),
  expr: z.string().min(1),
  legendFormat: z.string().optional(),
  format: z.enum(['time_series', 'table', 'heatmap']).optional(),
  instant: z.boolean().optional(),
  range: z.boolean().optional(),
});

const GridPos = z.object({
  h: z.number().int(),
  w: z.number().int(),
  x: z.number().int(),
  y: z.number().int(),
});

const BasePanel = z.looseObject({
  id: z.number().int(),
  type: z.string(),
  title: z.string().min(1),
  description: z.string().optional(),
  gridPos: GridPos,
  datasource: Datasource.optional(),
  targets: z.array(Target).optional(),
  repeat: z.string().optional(),
});
export type Panel = z.infer<typeof BasePanel>;
/** A row holds its panels in `panels` while collapsed; open, they follow it at the top level. */
const Panel = BasePanel.extend({ panels: z.array(BasePanel).optional() });

const Variable = z.discriminatedUnion('type', [
  z.looseObject({
    type: z.literal('datasource'),
    name: z.string(),
    query: z.literal('prometheus'),
    current: z.object({ value: z.string() }).loose(),
  }),
  z.looseObject({
    type: z.literal('query'),
    name: z.string(),
    datasource: Datasource,
    definition: z.string(),
    query: z.object({ query: z.string() }).loose(),
    includeAll: z.boolean(),
    allValue: z.string().optional(),
  }),
]);
export type Variable = z.infer<typeof Variable>;

export const Dashboard = z.looseObject({
  uid: z.string().min(1),
  title: z.string().min(1),
  schemaVersion: z.number().int(),
  tags: z.array(z.string()),
  panels: z.array(Panel),
  templating: z.object({ list: z.array(Variable) }),
});
export type Dashboard = z.infer<typeof Dashboard>;

/** Every dashboard of `dir` (its `*.json`), parsed, with its file name. */
export function loadDashboards(dir: string): { file: string; dashboard: Dashboard }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      try {
        return { file, dashboard: Dashboard.parse(JSON.parse(readFileSync(join(dir, file), 'utf8'))) };
      } catch (err) {
        throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    });
}

/** Every panel of a dashboard, rows' collapsed panels included, rows themselves too. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap(({ panels, ...panel }) => [panel, ...(panels ?? [])]);
}

/** The values given to Grafana's built-in variables; a live test may choose its own. */
export interface Builtins {
  /** `$__rate_interval` (Grafana: four scrape intervals at least); default `1m`. */
  readonly rateInterval?: string;
  /** `$__interval` (the step); default `1m`. */
  readonly interval?: string;
  /** `$__range` (the time range shown); default `1h`. */
  readonly range?: string;
}

/**
 * `expr` as Grafana sends it with every template variable at "All": a query variable becomes its
 * `allValue` (the dashboards give each one: `.+`, so `label=~"$var"` keeps every series that has the
 * label), and `$__rate_interval`, `$__interval`, `$__range` the durations of `builtins`. Written
 * `$var`, `${var}`, `${var:format}` or `[[var]]`. A variable the dashboard does not define, a
 * datasource variable or one without an allValue throws: the query would not be what Grafana runs.
 */
export function substitute(expr: string, variables: readonly Variable[], builtins: Builtins = {}): string {
  const values = new Map<string, string>([
    ['__rate_interval', builtins.rateInterval ?? '1m'],
    ['__interval', builtins.interval ?? '1m'],
    ['__range', builtins.range ?? '1h'],
  ]);
  for (const v of variables) {
    if (v.type === 'query' && v.includeAll && v.allValue !== undefined) values.set(v.name, v.allValue);
  }
  return expr.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)/g,
    (whole, braced?: string, bracketed?: string, bare?: string) => {
      const name = braced ?? bracketed ?? bare ?? '';
      const value = values.get(name);
      if (value === undefined)
        throw new Error(`${whole} in "${expr}": no such variable, or one without includeAll and allValue`);
      return value;
    },
  );
}

/** One panel query: where it is, and its PromQL with the variables substituted. */
export interface DashboardQuery {
  /** The dashboard's title. */
  readonly dashboard: string;
  /** The panel's title (as written: a repeated panel's `$var` kept). */
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

/** Every panel query of the dashboards in `dir`, as runnable PromQL (substitute()). */
export function dashboardQueries(dir: string, builtins: Builtins = {}): DashboardQuery[] {
  return loadDashboards(dir).flatMap(({ dashboard }) =>
    allPanels(dashboard).flatMap((panel) =>
      (panel.targets ?? []).map((t) => ({
        dashboard: dashboard.title,
        panel: panel.title,
        refId: t.refId,
        expr: substitute(t.expr, dashboard.templating.list, builtins),
      })),
    ),
  );
}

/** One `label_values(metric, label)` variable query: the metric and label it lists. */
export interface VariableQuery {
  readonly dashboard: string;
  readonly variable: string;
  readonly metric: string;
  readonly label: string;
}

/** The query variables of the dashboards in `dir`; each must be `label_values(metric, label)`. */
export function dashboardVariables(dir: string): VariableQuery[] {
  return loadDashboards(dir).flatMap(({ dashboard }) =>
    dashboard.templating.list.flatMap((v) => {
      if (v.type !== 'query') return [];
      const m = /^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)$/.exec(v.query.query);
      if (m === null) throw new Error(`${dashboard.title} $${v.name}: not label_values(metric, label)`);
      return [{ dashboard: dashboard.title, variable: v.name, metric: m[1] ?? '', label: m[2] ?? '' }];
    }),
  );
}
