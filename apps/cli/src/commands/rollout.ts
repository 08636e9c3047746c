import { parseArgs } from 'node:util';
import { setRollout } from '@cachefleet/jobs';
import { ROLLOUT_SETTING, type RolloutStage } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { check, parseFlags, usage } from '../args.js';
import { must, openViewer } from '../cache-viewer.js';
import type { Command } from '../command.js';
import { deadline } from '../connect.js';
import { EXIT } from '../errors.js';
import { isoTime, table } from '../format.js';

const OPTIONS = { json: { type: 'boolean' } } as const;

const percent = z
  .string()
  .regex(/^\d{1,3}$/, 'expects a whole percentage 0..100')
  .transform(Number)
  .pipe(z.number().int().max(100, 'expects a whole percentage 0..100'));

/** What `cachefleet rollout …` asks for, checked. */
export type RolloutRequest =
  | { readonly kind: 'list'; readonly json: boolean }
  | { readonly kind: 'set'; readonly namespace: string; readonly percent: number; readonly json: boolean };

/**
 * The arguments of `cachefleet rollout` (no I/O): `defined` are the definitions' namespace names;
 * E_CLI_USAGE naming the argument otherwise.
 */
export function rolloutArgs(args: string[], defined: readonly string[]): RolloutRequest {
  const { values, positionals } = parseFlags('rollout', () =>
    parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true }),
  );
  const json = values.json === true;
  if (positionals.length === 0) return { kind: 'list', json };
  if (positionals.length !== 2) throw usage('rollout: expects no argument, or <namespace> <percent>');
  const [namespace = '', given = ''] = positionals;
  if (!defined.includes(namespace))
    throw usage(
      `<namespace>: ${JSON.stringify(namespace.slice(0, 80))} is not a defined namespace (${defined.join(', ')})`,
    );
  return { kind: 'set', namespace, percent: check(percent, given, () => '<percent>'), json };
}

function stageLines(stages: ReadonlyMap<string, RolloutStage>): string[] {
  if (stages.size === 0) return ['no stored stage: every namespace follows CACHE_ROLLOUT'];
  return table(
    ['NAMESPACE', 'PERCENT', 'PREVIOUS', 'SINCE', 'BY', 'BASELINE'],
    [...stages]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([ns, s]) => [
        ns,
        String(s.percent),
        s.previous === null ? '-' : String(s.previous),
        isoTime(s.at),
        s.by,
        s.baseline === undefined ? 'pending' : s.baseline === null ? '-' : s.baseline.toFixed(3),
      ]),
  );
}

export const rollout: Command = {
  name: 'rollout',
  summary: "list the rollout stages, or promote or lower a namespace's percentage of users on the cache",
  help: `Usage:
  cachefleet rollout [--json]
  cachefleet rollout <namespace> <percent> [--json]

Without arguments: the stored rollout stages (REQUIREMENTS A8), per namespace: the percentage of
users whose reads go through the cache, the stage it came from, since when, who set it
(operator, or tuner:<job id> for the rollout guard's rollback) and the hit-rate baseline the
guard holds the stage to (pending until the tuner's next tick). A namespace without a stored stage
follows the API pods' CACHE_ROLLOUT.

With <namespace> <percent> (a defined namespace, a whole number 0..100): stores the stage, with an
audit entry (rule operator, action promote or lower; see cachefleet tune --history), and publishes
a config event: API pods apply it at once (and read it within their telemetry interval otherwise).
The plan's stages are 10 → 50 → 100; the tuner's rollout guard lowers a stage whose cache cohort
errs over 1% or whose hit rate falls more than 10% below its baseline, and never raises one.

Flags:
  --json                print JSON`,

  async run(args, session) {
    const names = (await session.namespaceRules()).map((r) => r.name);
    const req = rolloutArgs(args, names);
    const cache = await openViewer(session, { bus: req.kind === 'set' });
    const store = must(cache.tuning);
    if (req.kind === 'list') {
      const stages = must(await deadline(store.rollouts(), 'reading the rollout stages'));
      if (req.json) session.out(JSON.stringify({ stages: Object.fromEntries(stages) }));
      else for (const line of stageLines(stages)) session.out(line);
      return EXIT.OK;
    }
    const written = await deadline(
      setRollout(store, req.namespace, req.percent),
      'storing the rollout stage',
    );
    const published = await deadline(
      cache.publishConfig(req.namespace, { [ROLLOUT_SETTING]: req.percent }),
      'publishing the config event',
    );
    if (req.json)
      session.out(
        JSON.stringify({
          namespace: req.namespace,
          stage: written.stage,
          audit: written.auditId,
          event: published.ok,
        }),
      );
    else
      session.out(
        `${req.namespace}: ${written.before?.percent ?? '-'}% -> ${req.percent}% (audit ${written.auditId}${published.ok ? '' : '; config event not published: pods read it within their telemetry interval'})`,
      );
    return EXIT.OK;
  },
};
