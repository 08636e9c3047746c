import { parseArgs } from 'node:util';
import { migratePayload, type PayloadInputOf, payloadSchemaWith } from '@cachefleet/jobs';
import { z } from 'zod';
import { check, flagName, parseFlags, usage, wholeNumber } from '../args.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { submit } from '../submit.js';

const OPTIONS = {
  to: { type: 'string' },
  'dry-run': { type: 'boolean' },
  rate: { type: 'string' },
  ...SUBMIT_OPTIONS,
} as const;

/** Payload field → what the user typed, for error lines. */
function flagOf(path: readonly PropertyKey[]): string {
  switch (path[0]) {
    case 'namespace':
      return '<namespace>';
    case 'to':
      return '--to';
    case 'rate':
      return '--rate';
    default:
      return 'arguments';
  }
}

const numbers = z.object({ to: wholeNumber, rate: wholeNumber.optional() });

/**
 * The flags of `cachefleet migrate` as a payload checked against the catalogue (not yet against
 * the namespaces: `run` does that). Throws E_CLI_USAGE or E_JOB_INVALID_PAYLOAD naming the flag.
 */
export function migrateArgs(args: string[]): {
  readonly payload: PayloadInputOf<'migrate'>;
  readonly flags: { readonly detach?: boolean | undefined; readonly json?: boolean | undefined };
} {
  const { values, positionals } = parseFlags('migrate', () =>
    parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true }),
  );
  const [namespace, ...rest] = positionals;
  if (namespace === undefined) throw usage('<namespace>: missing');
  if (rest.length > 0) throw usage(`unexpected argument ${JSON.stringify(rest[0])} (one namespace)`);
  if (values.to === undefined) throw usage('--to: required (the version to migrate to)');
  const { to, rate } = check(numbers, { to: values.to, rate: values.rate }, flagName);
  const payload: PayloadInputOf<'migrate'> = {
    namespace,
    to,
    dryRun: values['dry-run'] === true,
    ...(rate !== undefined ? { rate } : {}),
  };
  check(migratePayload, payload, flagOf, 'E_JOB_INVALID_PAYLOAD');
  return { payload, flags: { detach: values.detach, json: values.json } };
}

export const migrate: Command = {
  name: 'migrate',
  summary: "move a namespace's cached entries to a new version of its definition, and follow the job",
  help: `Usage:
  cachefleet migrate <namespace> --to <version> [--dry-run] [--rate <keys/s>] [--detach] [--json]

Enqueues a migrate job on the migrate queue, prints its id, then follows it with a progress bar
until it ends and prints its result. The workers must already run the definitions of <version>:
each entry of version <version - 1> is converted by the definition's migrations[<version - 1>]
(or reloaded from the source when it declares none), checked by the new schema, and written at
<version> with its remaining TTL, unless it was invalidated meanwhile. Entries that fail are
counted and the first ones listed with their ids; they are left to expire. Afterwards a sweep
job removes the old version's keys.

Flags:
  --to <version>        the version to migrate to (required; the one before it is read)
  --dry-run             convert and check every entry, write nothing: counts and failures only
  --rate <keys/s>       at most this many keys a second (default: no limit)
${SUBMIT_HELP}`,

  async run(args, session) {
    const { payload, flags } = migrateArgs(args);
    // The namespace against the definitions, before any connection (exit 2).
    const schema = payloadSchemaWith('migrate', await session.namespaceRules());
    const parsed = check(schema, payload, flagOf, 'E_JOB_INVALID_PAYLOAD');
    return submit(session, 'migrate', parsed, flags);
  },
};
