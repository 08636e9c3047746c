import { parseArgs } from 'node:util';
import { payloadSchemaWith, warmPayloadOf } from '@cachefleet/jobs';
import { z } from 'zod';
import { check, commaList, flagName, parseFlags, usage, wholeNumber } from '../args.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { submit } from '../submit.js';

const KINDS = ['critical', 'hot', 'all', 'keys'] as const;
type Kind = (typeof KINDS)[number];

const OPTIONS = {
  namespace: { type: 'string', short: 'n', multiple: true },
  top: { type: 'string' },
  ...SUBMIT_OPTIONS,
} as const;

/** Payload field → what the user typed, for error lines. */
function flagOf(path: readonly PropertyKey[]): string {
  switch (path[0]) {
    case 'namespace':
    case 'namespaces':
      return '--namespace';
    case 'keys':
      return '<id>';
    case 'top':
      return '--top';
    case 'type':
      return '<kind>';
    default:
      return 'arguments';
  }
}

export const warm: Command = {
  name: 'warm',
  summary: 'warm L2 from the source of truth (critical, hot, all, or given ids) and follow the job',
  help: `Usage:
  cachefleet warm <critical|hot|all> [--namespace <ns>]... [--top <n>] [--detach] [--json]
  cachefleet warm keys --namespace <ns> <id>... [--detach] [--json]

Enqueues a warm job on the warm queue, prints its id, then follows it with a progress bar
until it ends and prints its result (requested, loaded, written, changed, invalid).

Kinds:
  critical            the definitions' critical ids; every pod then copies them into L1
  hot                 the hottest ids pods sampled (top N per namespace), then halves the counts
  all                 every id the namespace enumerates (1,000 a batch)
  keys                the ids given after the flags (one namespace)

Flags:
  -n, --namespace <ns>  namespace to warm; repeat or comma-separate (default: every namespace)
  --top <n>             warm hot only: ids per namespace (default 1000, at most 100000)
${SUBMIT_HELP}`,

  async run(args, session) {
    const { values, positionals } = parseFlags('warm', () =>
      parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true }),
    );
    const [kindArg, ...ids] = positionals;
    if (kindArg === undefined) throw usage('<kind>: missing: critical, hot, all or keys');
    if (!(KINDS as readonly string[]).includes(kindArg)) {
      throw usage(`<kind>: unknown kind ${JSON.stringify(kindArg)} (critical, hot, all or keys)`);
    }
    const kind = kindArg as Kind;
    const namespaces = commaList(values.namespace);
    if (values.top !== undefined && kind !== 'hot') throw usage('--top: only for warm hot');
    if (kind === 'keys') {
      if (namespaces === undefined || namespaces.length !== 1) {
        throw usage('--namespace: warm keys needs exactly one namespace');
      }
      if (ids.length === 0) throw usage('<id>: warm keys needs at least one id');
    } else if (ids.length > 0) {
      throw usage(`unexpected argument ${JSON.stringify(ids[0])} (only warm keys takes ids)`);
    }
    const { top } = check(z.object({ top: wholeNumber.optional() }), values, flagName);
    const payload = warmPayloadOf({ type: kind, namespaces, top, keys: ids });
    // Checked here, before any connection, ids and namespaces against the definitions too: a
    // refused payload never needs Redis (exit 2).
    const schema = payloadSchemaWith('warm', await session.namespaceRules());
    const parsed = check(schema, payload, flagOf, 'E_JOB_INVALID_PAYLOAD');
    return submit(session, 'warm', parsed, values);
  },
};
