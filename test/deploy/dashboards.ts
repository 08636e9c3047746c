/**
 * The PromQL of Grafana dashboards (deploy/grafana/dashboards/*.json), for the live test that runs
 * every panel's query against a real Prometheus (test/deploy/prometheus-live.test.ts):
 *
 * - `dashboardFiles(dir)`: the dashboard files of a folder (`*.json`, sorted).
 * - `dashboardQueries(json)`: every target `expr` of every panel, rows' nested panels included
 *   (the current schema: `panels[].panels[]`; the old one: `rows[].panels[]`).
 * - `dashboardVariables(json)`: the template variables, each as a way to get one value of it
 *   (a PromQL query for `label_values(…)`, the first value of a custom, constant or interval one).
 * - `substitute(expr, values)`: Grafana's variable syntax replaced, see GRAFANA_BUILTINS for the
 *   `$__…` ones.
 *
 * Each template variable gets one concrete value (the first one Prometheus has, for `label_values`),
 * so `namespace="$namespace"` and `namespace=~"$namespace"` both select real series; "All" is not
 * tried (a regex of every value selects a superset of one value's series).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** One panel query: where it is (for failure messages) and its PromQL. */
export interface PanelQuery {
  readonly panel: string;
  readonly refId: string;
  readonly expr: string;
}

/** A template variable and how to get a value for it. */
export type Variable =
  | { readonly name: string; readonly kind: 'fixed'; readonly value: string }
  /** `label_values(selector, label)`: the value of `label` on the first series `promql` returns. */
  | { readonly name: string; readonly kind: 'query'; readonly promql: string; readonly label: string }
  /** Set by Grafana itself (a data source picker): never in a query's text. */
  | { readonly name: string; readonly kind: 'ignored' };

/**
 * Grafana's built-in variables, as this test sets them. The server scrapes every second, so
 * Grafana would compute `$__rate_interval` as 4 s (four scrapes); 15 s keeps several scrapes in
 * each window even on a busy machine, and `$__range` (a dashboard's time range) covers the whole
 * test run.
 */
export const GRAFANA_BUILTINS: Readonly<Record<string, string>> = {
  __rate_interval: '15s',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

const Target = z.looseObject({ expr: z.string().optional(), refId: z.string().optional() });
interface Panel {
  title?: string | undefined;
  targets?: z.infer<typeof Target>[] | undefined;
  panels?: Panel[] | undefined;
}
const Panel: z.ZodType<Panel> = z.lazy(() =>
  z.looseObject({
    title: z.string().optional(),
    targets: z.array(Target).optional(),
    panels: z.array(Panel).optional(),
  }),
);
const TemplateVar = z.looseObject({
  name: z.string(),
  type: z.string(),
  query: z.union([z.string(), z.looseObject({ query: z.string() })]).optional(),
  definition: z.string().optional(),
  current: z.looseObject({ value: z.union([z.string(), z.array(z.string())]).optional() }).optional(),
  options: z.array(z.looseObject({ value: z.string() })).optional(),
});
const Dashboard = z.looseObject({
  title: z.string(),
  panels: z.array(Panel).optional(),
  rows: z.array(z.looseObject({ panels: z.array(Panel).optional() })).optional(),
  templating: z.looseObject({ list: z.array(TemplateVar) }).optional(),
});
export type Dashboard = z.infer<typeof Dashboard>;

export function parseDashboard(json: unknown): Dashboard {
  return Dashboard.parse(json);
}

/** The `*.json` files of `dir`, sorted, as paths; none when the folder is absent. */
export function dashboardFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => join(dir, n));
}

/** Every non-empty target `expr` of the dashboard, rows' nested panels included. */
export function dashboardQueries(dashboard: Dashboard): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (panels: readonly Panel[], path: string) => {
    for (const p of panels) {
      const title = `${path}${p.title ?? '(untitled)'}`;
      for (const t of p.targets ?? []) {
        if (t.expr !== undefined && t.expr.trim() !== '')
          out.push({ panel: title, refId: t.refId ?? '?', expr: t.expr });
      }
      walk(p.panels ?? [], `${title} › `);
    }
  };
  walk(dashboard.panels ?? [], '');
  for (const row of dashboard.rows ?? []) walk(row.panels ?? [], '');
  return out;
}

/** The first of a comma-separated list (custom and interval variables), trimmed. */
function firstOfList(text: string): string {
  return (text.split(',')[0] ?? '').trim();
}

/** The template variables, in order (a later one's query may use an earlier one). */
export function dashboardVariables(dashboard: Dashboard): Variable[] {
  return (dashboard.templating?.list ?? []).map((v): Variable => {
    const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? v.definition ?? '');
    switch (v.type) {
      case 'datasource':
        return { name: v.name, kind: 'ignored' };
      case 'custom':
      case 'interval':
      case 'constant':
      case 'textbox': {
        const value = firstOfList(query) || (v.options?.[0]?.value ?? '');
        if (value === '') throw new Error(`variable ${v.name} (${v.type}): no value`);
        return { name: v.name, kind: 'fixed', value };
      }
      case 'query': {
        const m = /^\s*label_values\(\s*(?:(.*\S)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*$/s.exec(query);
        if (m === null) throw new Error(`variable ${v.name}: unsupported query ${JSON.stringify(query)}`);
        const label = m[2] as string;
        const selector = m[1] ?? `{${label}!=""}`;
        return { name: v.name, kind: 'query', promql: `group by (${label}) (${selector})`, label };
      }
      default:
        throw new Error(`variable ${v.name}: unsupported type ${v.type}`);
    }
  });
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * `expr` with Grafana's variables replaced: `$name`, `${name}`, `${name:format}` (`regex` escapes
 * the value; the others are the value itself, one value being all they format) and `[[name]]`.
 * `values` holds the dashboard's variables; GRAFANA_BUILTINS the `$__…` ones. A variable with no
 * value throws, naming it; `$1` (label_replace's group) is left alone.
 */
export function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  const all: Record<string, string> = { ...GRAFANA_BUILTINS, ...values };
  const value = (name: string, format?: string) => {
    const v = all[name];
    if (v === undefined) throw new Error(`no value for Grafana variable $${name} in: ${expr}`);
    return format === 'regex' ? escapeRegex(v) : v;
  };
  return (
    expr
      .replace(/\$\{(\w+)(?::(\w+))?\}/g, (_, name: string, format?: string) => value(name, format))
      .replace(/\[\[(\w+)\]\]/g, (_, name: string) => value(name))
      // `$1` is label_replace's capture group, not a variable (Grafana leaves it too).
      .replace(/\$([a-zA-Z_]\w*)/g, (_, name: string) => value(name))
  );
}

/** One series of an instant query's answer, as far as resolveVariables reads it. */
interface Labelled {
  readonly metric: Readonly<Record<string, string>>;
}

/**
 * A value for each variable, in order: a `label_values` query runs (with the earlier variables
 * substituted) through `query`, and the first value (sorted) is taken; a query that finds none
 * throws, naming the variable.
 */
export async function resolveVariables(
  variables: readonly Variable[],
  query: (promql: string) => Promise<readonly Labelled[]>,
): Promise<Record<string, string>> {
  const values: Record<string, string> = {};
  for (const v of variables) {
    if (v.kind === 'fixed') values[v.name] = v.value;
    if (v.kind !== 'query') continue;
    const promql = substitute(v.promql, values);
    const found = (await query(promql))
      .map((s) => s.metric[v.label])
      .filter((x): x is string => x !== undefined && x !== '')
      .sort();
    if (found[0] === undefined) throw new Error(`variable ${v.name}: ${promql} found no value`);
    values[v.name] = found[0];
  }
  return values;
}
