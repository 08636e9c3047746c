/**
 * A real Prometheus server for a test: `prometheus` (PROMETHEUS_BIN, found or installed by the set-up,
 * test/setup/tools.ts) on a free loopback port, with a generated config (scrape and rule evaluation
 * every second, the given targets), its own temporary storage folder, and a rule file. Helpers read
 * its HTTP API (instant queries, series, rules, alerts) and wait for an alert's state with a deadline.
 *
 * The shipped rules (deploy/prometheus/rules.yaml) wait minutes: `for: 10m`, `rate(…[5m])`. A test
 * cannot, so `shortenRules` derives a copy in which only the `for:` durations and the range windows
 * (`[5m]`, and both parts of a subquery's `[5m:1m]`) are divided by a factor; names, expressions,
 * labels and annotations are the shipped ones. The exact timings stay covered by `promtool test
 * rules` (deploy/prometheus/rules.test.yaml, test/deploy/prometheus.test.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { withFreePort } from '../helpers/redis-server.js';
import { waitUntil } from '../helpers/wait.js';

/** One scrape job: its name (the `job` label) and `host:port` targets serving /metrics. */
export interface ScrapeJob {
  readonly job: string;
  readonly targets: readonly string[];
}

export interface StartPrometheusOptions {
  readonly jobs: readonly ScrapeJob[];
  /** The rule file's text (YAML), e.g. shortenRules(the shipped file). */
  readonly rules: string;
  /** Scrape and evaluation interval, seconds; default 1. */
  readonly intervalS?: number;
}

export const Labels = z.record(z.string(), z.string());
export type Labels = z.infer<typeof Labels>;

/** One series of a query's answer: its labels and (instant query) its value, as Prometheus wrote it. */
export interface Sample {
  readonly metric: Labels;
  readonly value: string;
}

const Alert = z.object({
  labels: Labels,
  annotations: Labels,
  state: z.enum(['pending', 'firing']),
  activeAt: z.string(),
  value: z.string(),
});
export type Alert = z.infer<typeof Alert>;

const RuleState = z.looseObject({
  name: z.string(),
  type: z.enum(['recording', 'alerting']),
  health: z.string(),
  lastError: z.string().optional(),
  query: z.string(),
  duration: z.number().optional(),
});
export type RuleState = z.infer<typeof RuleState>;

export interface PrometheusServer {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** An instant query at the server's now: the series of a vector (a scalar is one series). */
  query(expr: string): Promise<Sample[]>;
  /** The label sets of the series matching a selector, over the last `sinceS` seconds (default 300). */
  series(match: string, sinceS?: number): Promise<Labels[]>;
  /** The active (pending or firing) alerts. */
  alerts(): Promise<Alert[]>;
  /** Every loaded rule with its health, in file order. */
  rules(): Promise<RuleState[]>;
  /**
   * Waits until an alert named `name` whose labels include `labels` is in `state`, and returns it;
   * the time-out error lists the alerts seen last.
   */
  waitForAlert(name: string, state: Alert['state'], opts?: WaitAlertOptions): Promise<Alert>;
  /** Waits until no alert named `name` (with those labels) is active: it resolved. */
  waitForNoAlert(name: string, opts?: WaitAlertOptions): Promise<void>;
  /** The server's log (stderr), last few KB, for failure messages. */
  output(): string;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

export interface WaitAlertOptions {
  readonly labels?: Labels;
  readonly timeoutMs?: number;
}

const Answer = z.object({
  status: z.enum(['success', 'error']),
  data: z.unknown().optional(),
  error: z.string().optional(),
  errorType: z.string().optional(),
});

const QueryData = z.discriminatedUnion('resultType', [
  z.object({
    resultType: z.literal('vector'),
    result: z.array(z.object({ metric: Labels, value: z.tuple([z.number(), z.string()]) })),
  }),
  z.object({ resultType: z.literal('scalar'), result: z.tuple([z.number(), z.string()]) }),
  z.object({
    resultType: z.literal('matrix'),
    result: z.array(z.object({ metric: Labels, values: z.array(z.tuple([z.number(), z.string()])) })),
  }),
  z.object({ resultType: z.literal('string'), result: z.tuple([z.number(), z.string()]) }),
]);

/** Every Prometheus this process started and has not seen exit: killed if the process exits. */
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

function prometheusBin(): string {
  const bin = process.env.PROMETHEUS_BIN;
  if (bin === undefined || bin === '')
    throw new Error('PROMETHEUS_BIN unset: run the tests through vitest (its set-up finds prometheus)');
  return bin;
}

/** The generated prometheus.yml: one static job per ScrapeJob, the rule file, every `intervalS`. */
export function prometheusConfig(jobs: readonly ScrapeJob[], rulesPath: string, intervalS: number): string {
  return stringify({
    global: {
      scrape_interval: `${intervalS}s`,
      scrape_timeout: `${intervalS}s`,
      evaluation_interval: `${intervalS}s`,
    },
    rule_files: [rulesPath],
    scrape_configs: jobs.map((j) => ({
      job_name: j.job,
      static_configs: [{ targets: [...j.targets] }],
    })),
  });
}

export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusServer> {
  const bin = prometheusBin();
  const intervalS = options.intervalS ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'cachefleet-prometheus-'));
  const rulesPath = join(dir, 'rules.yaml');
  const configPath = join(dir, 'prometheus.yml');
  writeFileSync(rulesPath, options.rules);
  writeFileSync(configPath, prometheusConfig(options.jobs, rulesPath, intervalS));
  try {
    return await withFreePort(undefined, (port) => launch(bin, port, dir, configPath));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(bin: string, port: number, dir: string, configPath: string): Promise<PrometheusServer> {
  const child = spawn(
    bin,
    [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  track(child);
  let output = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    output = (output + s).slice(-8000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      `prometheus on port ${port} to be ready`,
      async (note) => {
        if (exited) throw new Error(`prometheus exited before ready:\n${output}`);
        const res = await fetch(`${url}/-/ready`);
        note(`/-/ready ${res.status}`);
        await res.text();
        return res.ok ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } catch (err) {
    child.kill('SIGKILL');
    await exit;
    throw err;
  }

  async function api(path: string, params: Record<string, string | string[]>): Promise<unknown> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) body.append(k, one);
    const res = await fetch(`${url}${path}`, { method: 'POST', body });
    const answer = Answer.parse(await res.json());
    if (answer.status !== 'success')
      throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${answer.errorType}: ${answer.error}`);
    return answer.data;
  }

  async function alerts(): Promise<Alert[]> {
    const res = await fetch(`${url}/api/v1/alerts`);
    return z.object({ data: z.object({ alerts: z.array(Alert) }) }).parse(await res.json()).data.alerts;
  }

  const matches = (alert: Alert, name: string, labels: Labels = {}) =>
    alert.labels.alertname === name && Object.entries(labels).every(([k, v]) => alert.labels[k] === v);
  const brief = (list: readonly Alert[]) =>
    list.map((a) => `${a.labels.alertname}${JSON.stringify(a.labels)} ${a.state}`).join('; ') || 'none';

  return {
    url,
    async query(expr) {
      const data = QueryData.parse(await api('/api/v1/query', { query: expr }));
      switch (data.resultType) {
        case 'vector':
          return data.result.map((r) => ({ metric: r.metric, value: r.value[1] }));
        case 'matrix':
          return data.result.map((r) => ({ metric: r.metric, value: r.values.at(-1)?.[1] ?? '' }));
        default:
          return [{ metric: {}, value: data.result[1] }];
      }
    },
    async series(match, sinceS = 300) {
      const now = Date.now() / 1000;
      const data = await api('/api/v1/series', {
        'match[]': match,
        start: String(now - sinceS),
        end: String(now),
      });
      return z.array(Labels).parse(data);
    },
    alerts,
    async rules() {
      const res = await fetch(`${url}/api/v1/rules`);
      return z
        .object({ data: z.object({ groups: z.array(z.object({ rules: z.array(RuleState) })) }) })
        .parse(await res.json())
        .data.groups.flatMap((g) => g.rules);
    },
    waitForAlert(name, state, opts = {}) {
      return waitUntil(
        `alert ${name}${opts.labels ? JSON.stringify(opts.labels) : ''} ${state}`,
        async (note) => {
          const all = await alerts();
          note(`active alerts: ${brief(all)}`);
          return all.find((a) => matches(a, name, opts.labels) && a.state === state);
        },
        { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 200 },
      );
    },
    async waitForNoAlert(name, opts = {}) {
      await waitUntil(
        `alert ${name}${opts.labels ? JSON.stringify(opts.labels) : ''} to resolve`,
        async (note) => {
          const all = await alerts();
          note(`active alerts: ${brief(all)}`);
          return all.some((a) => matches(a, name, opts.labels)) ? undefined : true;
        },
        { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 200 },
      );
    },
    output: () => output,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exit;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const UNIT_MS = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};
const DURATION = /^(?:\d+(?:ms|[smhdwy]))+$/;

/** A Prometheus duration (`90s`, `1h30m`, `500ms`) in milliseconds. */
export function durationMs(text: string): number {
  if (!DURATION.test(text)) throw new Error(`not a Prometheus duration: ${text}`);
  let ms = 0;
  for (const m of text.matchAll(/(\d+)(ms|[smhdwy])/g))
    ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return ms;
}

/** Milliseconds as a Prometheus duration: whole seconds when it is, else milliseconds. */
export function formatDuration(ms: number): string {
  const whole = Math.max(1, Math.round(ms));
  return whole % 1_000 === 0 ? `${whole / 1_000}s` : `${whole}ms`;
}

export interface ShortenOptions {
  /** Every `for:` and range window is divided by this (60: a minute becomes a second). */
  readonly divisor: number;
  /**
   * The shortest `for:` kept, ms: long enough that an alert stays pending for a few evaluations
   * before it fires (1 s evaluations: a `for:` of 1 s would be pending for one only).
   */
  readonly minForMs: number;
}

const RuleFile = z.object({
  groups: z.array(z.looseObject({ name: z.string(), rules: z.array(z.looseObject({ expr: z.string() })) })),
});

/**
 * The rule file `text` with every `for:` and every range window of its expressions divided by
 * `divisor` (a `for:` no shorter than `minForMs`); nothing else changes. Range windows are the
 * durations between square brackets: `[5m]`, `[15m:1m]` (a subquery: both parts); label matchers'
 * strings are left alone.
 */
export function shortenRules(text: string, options: ShortenOptions): string {
  const file = RuleFile.parse(parse(text));
  const scale = (d: string) => formatDuration(durationMs(d) / options.divisor);
  for (const group of file.groups) {
    for (const rule of group.rules) {
      rule.expr = shortenWindows(rule.expr, scale);
      if (typeof rule.for === 'string') {
        rule.for = formatDuration(Math.max(options.minForMs, durationMs(rule.for) / options.divisor));
      }
    }
  }
  return stringify(file);
}

/** `expr` with each duration inside `[…]` (outside strings) replaced by `scale(duration)`. */
function shortenWindows(expr: string, scale: (d: string) => string): string {
  // Strings first (kept whole), then ranges: `[5m]`, `[5m:]`, `[5m:30s]`.
  return expr.replace(
    /("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)|\[\s*([0-9a-z]+)\s*(?::\s*([0-9a-z]*)\s*)?\]/g,
    (whole, str: string | undefined, range: string | undefined, step: string | undefined) => {
      if (str !== undefined || range === undefined) return whole;
      if (step === undefined) return `[${scale(range)}]`;
      return `[${scale(range)}:${step === '' ? '' : scale(step)}]`;
    },
  );
}
