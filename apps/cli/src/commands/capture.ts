import { parseArgs } from 'node:util';
import { captureSql, installCapture, loadCaptureConfig } from '@cachefleet/capture';
import pg from 'pg';
import { parseFlags, usage } from '../args.js';
import type { Command } from '../command.js';
import { importDefinitions } from '../definitions.js';
import { CliError, EXIT } from '../errors.js';
import type { Session } from '../session.js';

/** The definitions module's namespaces (createDefinitions: it may connect to the database). */
async function withNamespaces<T>(
  session: Session,
  use: (namespaces: Parameters<typeof captureSql>[0]) => Promise<T>,
): Promise<T> {
  const definitions = await (await importDefinitions(session.env))
    .createDefinitions({ ...session.env })
    .catch((error: unknown) => {
      throw unreachable(error);
    });
  try {
    return await use(definitions.namespaces);
  } finally {
    await definitions.close();
  }
}

function unreachable(error: unknown): unknown {
  // A pg connection error carries no code of ours: the database did not answer.
  if (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    /^E[A-Z]+$/.test(error.code)
  )
    return new CliError('E_CLI_UNREACHABLE', `PostgreSQL (DATABASE_URL): ${error.message}`, { cause: error });
  return error;
}

export const capture: Command = {
  name: 'capture',
  summary: 'change capture from PostgreSQL: install the outbox and triggers, or print their SQL',
  help: `Usage:
  cachefleet capture install [--json]
  cachefleet capture sql

install  creates the outbox table (schema CAPTURE_SCHEMA, default cachefleet) and, on every source
         table the namespaces of WORKER_DEFINITIONS declare, the statement-level triggers that append
         each committed change to it and NOTIFY the capture reader (a worker with --queues capture).
         Idempotent: run it again after a definition changed. Connects to DATABASE_URL.
sql      prints the same script, for teams that apply migrations themselves (the sample
         catalogue's is libs/catalogue/sql/capture.sql). The definitions module is loaded, and
         it may connect to DATABASE_URL too (required for both).

Flags:
  --json                install: one JSON object at the end: {"schema", "tables"}`,

  async run(args, session) {
    const { values, positionals } = parseFlags('capture', () =>
      parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: true, strict: true }),
    );
    const [action, ...rest] = positionals;
    if (rest.length > 0) throw usage(`unexpected argument ${JSON.stringify(rest[0])}`);
    if (action !== 'install' && action !== 'sql')
      throw usage('expected install or sql (cachefleet capture --help)');
    // Never a default address: the definitions module connects (the catalogue migrates its table).
    const url = session.env.DATABASE_URL;
    if (!url) throw usage('DATABASE_URL: required (the PostgreSQL of the source tables)');
    const config = loadCaptureConfig(session.env);
    if (action === 'sql') {
      const sql = await withNamespaces(session, async (namespaces) => captureSql(namespaces, config));
      session.io.stdout.write(sql);
      return EXIT.OK;
    }
    const { tables } = await withNamespaces(session, async (namespaces) => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
      try {
        await client.connect();
        return await installCapture(client, namespaces, config);
      } catch (error) {
        throw unreachable(error);
      } finally {
        await client.end().catch(() => undefined);
      }
    });
    if (values.json) session.out(JSON.stringify({ schema: config.schema, tables }));
    else {
      session.out(`change capture installed in schema ${config.schema}:`);
      for (const t of tables) session.out(`  ${t}`);
      session.out('start a reader: a worker with --queues capture (alone or beside other queues)');
    }
    return EXIT.OK;
  },
};
