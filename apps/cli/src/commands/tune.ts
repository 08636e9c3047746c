import { parseArgs } from 'node:util';
import { pinSetting, type TuneResult, tuneResultSchema, undoLast, unpinSetting } from '@cachefleet/jobs';
import { type StoredAuditEntry, TUNE_SETTINGS, tuneFactorSchema } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { check, parseFlags, usage, wholeNumber } from '../args.js';
import { must, openViewer } from '../cache-viewer.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { deadline, enqueueWithRetry } from '../connect.js';
import { EXIT } from '../errors.js';
import { isoTime, table } from '../format.js';
import type { Session } from '../session.js';
import { followAndReport } from '../submit.js';

const OPTIONS = {
  'dry-run': { type: 'boolean' },
  history: { type: 'boolean' },
  limit: { type: 'string' },
  ...SUBMIT_OPTIONS,
} as const;

const namespaceName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'a namespace name (a-z, 0-9, _ and -)');
const setting = z.enum(TUNE_SETTINGS);
const factor = z
  .string()
  .regex(/^\d{1,3}(\.\d{1,4})?$/, 'expects a factor such as 2 or 0.5')
  .transform(Number)
  .pipe(tuneFactorSchema);
const limit = wholeNumber.pipe(z.number().int().min(1).max(1_000));

/** What `cachefleet tune …` asks for, checked. */
export type TuneRequest =
  | { readonly kind: 'run'; readonly dryRun: boolean; readonly detach: boolean; readonly json: boolean }
  | { readonly kind: 'history'; readonly limit: number; readonly json: boolean }
  | {
      readonly kind: 'pin';
      readonly namespace: string;
      readonly setting: (typeof TUNE_SETTINGS)[number];
      readonly value: number;
    }
  | { readonly kind: 'unpin'; readonly namespace: string; readonly setting: (typeof TUNE_SETTINGS)[number] }
  | { readonly kind: 'undo' };

const positional = (name: string) => () => name;

/** The arguments of `cachefleet tune` (no I/O); E_CLI_USAGE naming the argument otherwise. */
export function tuneArgs(args: string[]): TuneRequest {
  const { values, positionals } = parseFlags('tune', () =>
    parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true }),
  );
  const [verb, ...rest] = positionals;
  const flagsGiven = Object.keys(values).filter((k) => values[k as keyof typeof values] !== undefined);
  const only = (allowed: readonly string[], what: string) => {
    const extra = flagsGiven.find((f) => !allowed.includes(f));
    if (extra !== undefined) throw usage(`--${extra}: not with ${what}`);
  };
  if (verb === undefined) {
    if (values.history === true) {
      only(['history', 'limit', 'json'], '--history');
      const n = values.limit === undefined ? 20 : check(limit, values.limit, () => '--limit');
      return { kind: 'history', limit: n, json: values.json === true };
    }
    if (values.limit !== undefined) throw usage('--limit: only with --history');
    return {
      kind: 'run',
      dryRun: values['dry-run'] === true,
      detach: values.detach === true,
      json: values.json === true,
    };
  }
  only([], `tune ${verb}`);
  const ns = (v: string | undefined) => check(namespaceName, v ?? '', positional('<namespace>'));
  const st = (v: string | undefined) =>
    check(setting, v ?? '', () => `<setting> (one of ${TUNE_SETTINGS.join(', ')})`);
  const expect = (n: number, usageLine: string) => {
    if (rest.length !== n) throw usage(`tune ${verb}: expects ${usageLine}`);
  };
  switch (verb) {
    case 'pin':
      expect(3, '<namespace> <setting> <value>');
      return {
        kind: 'pin',
        namespace: ns(rest[0]),
        setting: st(rest[1]),
        value: check(factor, rest[2] ?? '', positional('<value>')),
      };
    case 'unpin':
      expect(2, '<namespace> <setting>');
      return { kind: 'unpin', namespace: ns(rest[0]), setting: st(rest[1]) };
    case 'undo':
      expect(0, 'no argument');
      return { kind: 'undo' };
    default:
      throw usage(`unexpected argument ${JSON.stringify(verb)} (pin, unpin, undo, or flags)`);
  }
}

function auditLines(entries: readonly StoredAuditEntry[]): string[] {
  return table(
    ['AT', 'NAMESPACE', 'RULE', 'ACTION', 'SETTING', 'BEFORE', 'AFTER', 'MODE', 'BY', 'INPUTS'],
    entries.map((e) => [
      isoTime(e.at),
      e.namespace,
      e.rule,
      e.undoes !== undefined ? `undo ${e.undoes}` : e.action,
      e.setting ?? '-',
      e.before === undefined ? '-' : String(e.before),
      e.after === undefined ? '-' : String(e.after),
      e.mode,
      e.by,
      Object.entries(e.inputs)
        .map(([k, v]) => `${k}=${v ?? '-'}`)
        .join(' ') || '-',
    ]),
  );
}

function decisionLines(r: TuneResult): string[] {
  const head = r.skipped
    ? 'skipped: another tune tick was running'
    : `${r.dryRun ? 'dry run: nothing changed; ' : ''}window ${r.windowSeconds === null ? 'none yet (first tick)' : `${r.windowSeconds.toFixed(0)} s`}, pressure ${r.pressure === null ? '-' : r.pressure.toFixed(3)}, ${r.namespaces} namespaces, ${r.decisions.length} decisions`;
  if (r.decisions.length === 0) return [head];
  return [
    head,
    ...table(
      ['NAMESPACE', 'RULE', 'ACTION', 'SETTING', 'BEFORE', 'AFTER', 'INPUTS'],
      r.decisions.map((d) => [
        d.namespace,
        d.rule,
        d.action,
        d.setting ?? '-',
        d.before === undefined ? '-' : String(d.before),
        d.after === undefined ? '-' : String(d.after),
        Object.entries(d.inputs)
          .map(([k, v]) => `${k}=${v ?? '-'}`)
          .join(' ') || '-',
      ]),
    ),
    ...(r.warmJobIds.length > 0 ? [`hot warms enqueued: ${r.warmJobIds.join(', ')}`] : []),
  ];
}

async function runTune(session: Session, req: Extract<TuneRequest, { kind: 'run' }>) {
  const jobs = await session.jobs();
  const job = await enqueueWithRetry(jobs, 'tune', { dryRun: req.dryRun }, (line) => session.note(line));
  if (req.json || req.detach) {
    if (req.detach) {
      session.out(
        req.json
          ? JSON.stringify({ id: job.id, queue: job.queue, name: job.name, deduplicated: job.deduplicated })
          : job.id,
      );
      return EXIT.OK;
    }
    return followAndReport(session, jobs, job.id, { json: true, deduplicated: job.deduplicated });
  }
  session.out(job.id);
  const code = await followAndReport(session, jobs, job.id, { json: false, deduplicated: job.deduplicated });
  const view = await deadline(jobs.job(job.id), `reading job ${job.id}`);
  const parsed = tuneResultSchema.safeParse(view?.result);
  if (parsed.success) for (const line of decisionLines(parsed.data)) session.out(line);
  return code;
}

export const tune: Command = {
  name: 'tune',
  summary:
    'run the tuner now (or --dry-run), read its --history, pin or unpin a setting, undo its last decision',
  help: `Usage:
  cachefleet tune [--dry-run] [--detach] [--json]
  cachefleet tune --history [--limit <n>] [--json]
  cachefleet tune pin <namespace> <setting> <value>
  cachefleet tune unpin <namespace> <setting>
  cachefleet tune undo

Enqueues a tune job on the tune queue (it also runs every minute: SCHEDULE_TUNE) and prints its
decisions: per namespace, the rule (l2-hit-rate, memory-pressure, l1-hit-rate, invalidation-rate,
rollout-guard), the action (set, revert, recommend, clear, prewarm, rollback: a rollout stage
lowered, see cachefleet rollout), the setting and its value before and after,
and what the rule saw. With --dry-run the job decides and reports (audit entries marked dry-run)
but changes nothing: no setting, no config event, no warm, not the tuner's memory.

--history prints the audit stream (newest first), from the cache Redis (CACHE_REDIS_URL, else
REDIS_URL). pin sets a setting (l1TtlFactor or l2TtlFactor, a factor on the namespace's TTL for
new writes, 0.01–100) and keeps the tuner from ever changing it; unpin gives it back to the tuner.
undo puts back the setting the last decision changed (refused when it is pinned). Pods pick pins
and undos up within their telemetry interval (CACHE_TELEMETRY_INTERVAL_S).

Flags:
  --dry-run             decide and report only
  --history             print the audit stream
  --limit <n>           with --history: entries printed (default 20, at most 1000)
${SUBMIT_HELP}`,

  async run(args, session) {
    const req = tuneArgs(args);
    if (req.kind === 'run') return runTune(session, req);
    const cache = await openViewer(session);
    const store = must(cache.tuning);
    switch (req.kind) {
      case 'history': {
        const entries = must(await deadline(store.audit(req.limit), 'reading the tune audit stream'));
        if (req.json) session.out(JSON.stringify({ entries }));
        else
          for (const line of entries.length > 0 ? auditLines(entries) : ['no decision yet'])
            session.out(line);
        return EXIT.OK;
      }
      case 'pin': {
        const id = await deadline(pinSetting(store, req.namespace, req.setting, req.value), 'pinning');
        session.out(`pinned ${req.namespace} ${req.setting}=${req.value} (audit ${id})`);
        return EXIT.OK;
      }
      case 'unpin': {
        const id = await deadline(unpinSetting(store, req.namespace, req.setting), 'unpinning');
        session.out(`unpinned ${req.namespace} ${req.setting} (audit ${id})`);
        return EXIT.OK;
      }
      case 'undo': {
        const undone = await deadline(undoLast(store), 'undoing');
        session.out(
          undone === undefined
            ? 'nothing to undo'
            : `undone ${undone.id}: ${undone.namespace} ${undone.setting ?? ''} back to ${undone.before ?? '-'}`,
        );
        return EXIT.OK;
      }
    }
  },
};
