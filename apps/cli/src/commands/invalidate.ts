import { parseArgs } from 'node:util';
import { invalidatePayloadOf, payloadSchemaWith } from '@cachefleet/jobs';
import { check, commaList, parseFlags, usage } from '../args.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { CliError } from '../errors.js';
import type { Session } from '../session.js';
import { submit } from '../submit.js';

const OPTIONS = {
  namespace: { type: 'string', short: 'n' },
  pattern: { type: 'string', short: 'p' },
  keys: { type: 'string', short: 'k', multiple: true },
  tags: { type: 'string', short: 't', multiple: true },
  all: { type: 'boolean' },
  yes: { type: 'boolean', short: 'y' },
  ...SUBMIT_OPTIONS,
} as const;

const SCOPES = ['--pattern', '--keys', '--tags', '--all'] as const;

/** Payload field → the flag it came from (`keys.3` → `--keys`). */
function flagOf(path: readonly PropertyKey[]): string {
  const head = path[0];
  return typeof head === 'string' && head !== 'scope' ? `--${head}` : SCOPES.join(' | ');
}

/**
 * `--all` and a pattern of only `*` empty the whole namespace: asked at a terminal, refused without
 * --yes elsewhere (a script must say it means it). A pattern `*` is told that --all is O(1).
 */
async function confirmWholeNamespace(
  session: Session,
  namespace: string,
  values: { readonly all?: boolean; readonly pattern?: string },
): Promise<void> {
  const everyKey = values.pattern !== undefined && /^\*+$/.test(values.pattern);
  if (values.all !== true && !everyKey) return;
  const what = everyKey
    ? `every key of namespace ${namespace}, one by one (--all does the same in O(1))`
    : `every entry of namespace ${namespace} (it moves to a new generation)`;
  const ask = session.io.confirm;
  if (ask === undefined) {
    throw new CliError(
      'E_CLI_NOT_CONFIRMED',
      `this invalidates ${what}; pass --yes to confirm (no terminal to ask)`,
    );
  }
  if (!(await ask(`Invalidate ${what}? [y/N] `))) {
    throw new CliError('E_CLI_NOT_CONFIRMED', 'not confirmed; nothing was enqueued');
  }
}

export const invalidate: Command = {
  name: 'invalidate',
  summary: 'invalidate a pattern, ids, tags or a whole namespace, fleet-wide, and follow the job',
  help: `Usage:
  cachefleet invalidate --namespace <ns> (--pattern <glob> | --keys <id,...> | --tags <tag,...> | --all)
                        [--yes] [--detach] [--json]

Enqueues an invalidate job on the invalidate queue, prints its id, then follows it until it ends
and prints its result (removed, and for a pattern the slices and keys scanned). A pattern
invalidation fans out one child per cache master (<id>-slice-<i>): the bar sums their progress.

Flags:
  -n, --namespace <ns>  the namespace (required)
  -p, --pattern <glob>  Redis glob over ids (* ? [abc]); no white space or braces. Quote it: 'sku-1*'
  -k, --keys <ids>      ids, comma-separated or repeated
  -t, --tags <tags>     tags, comma-separated or repeated
  --all                 the whole namespace, in O(1) (it moves to a new generation)
  -y, --yes             do not ask: --all and a pattern of only * empty the whole namespace, so
                        they ask for confirmation at a terminal and need --yes anywhere else
${SUBMIT_HELP}`,

  async run(args, session) {
    const { values } = parseFlags('invalidate', () =>
      parseArgs({ args, options: OPTIONS, allowPositionals: false, strict: true }),
    );
    const namespace = values.namespace;
    if (namespace === undefined) throw usage('--namespace: required');
    const keys = commaList(values.keys);
    const tags = commaList(values.tags);
    const given = [values.pattern !== undefined, keys !== undefined, tags !== undefined, values.all === true];
    if (given.filter(Boolean).length !== 1) {
      throw usage(`give exactly one of ${SCOPES.join(', ')}`);
    }
    const payload = invalidatePayloadOf({ namespace, pattern: values.pattern, keys, tags, all: values.all });
    // Checked before any connection, ids against the namespace's schema too: a refused payload
    // never becomes a job (exit 2).
    const schema = payloadSchemaWith('invalidate', await session.namespaceRules());
    const parsed = check(schema, payload, flagOf, 'E_JOB_INVALID_PAYLOAD');
    if (values.yes !== true) await confirmWholeNamespace(session, namespace, values);
    return submit(session, 'invalidate', parsed, values);
  },
};
