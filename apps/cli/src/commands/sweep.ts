import { parseArgs } from 'node:util';
import { payloadSchemaWith } from '@cachefleet/jobs';
import { check, parseFlags, usage } from '../args.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { submit } from '../submit.js';

export const sweep: Command = {
  name: 'sweep',
  summary: 'unlink the keys no pod can reach (older versions and generations), and follow the job',
  help: `Usage:
  cachefleet sweep [<namespace>] [--detach] [--json]

Enqueues a sweep job on the sweep queue: SCAN of every cache master, UNLINK of the keys of an
older version or an older generation of the namespace (every namespace when none is given).
Keys of a newer version than the workers' definitions are kept. It also runs daily, and after
every whole-namespace invalidation and every migration.

${SUBMIT_HELP}`,

  async run(args, session) {
    const { values, positionals } = parseFlags('sweep', () =>
      parseArgs({ args, options: SUBMIT_OPTIONS, allowPositionals: true, strict: true }),
    );
    const [namespace, ...rest] = positionals;
    if (rest.length > 0)
      throw usage(`unexpected argument ${JSON.stringify(rest[0])} (one namespace at most)`);
    const payload = namespace !== undefined ? { namespace } : {};
    const schema = payloadSchemaWith('sweep', await session.namespaceRules());
    const parsed = check(schema, payload, () => '<namespace>', 'E_JOB_INVALID_PAYLOAD');
    return submit(session, 'sweep', parsed, values);
  },
};
