import { parseArgs } from 'node:util';
import { FsBackupStorage, loadBackupConfig, payloadSchemaWith, readLayout } from '@cachefleet/jobs';
import { check, parseFlags, usage } from '../args.js';
import { type Command, SUBMIT_HELP, SUBMIT_OPTIONS } from '../command.js';
import { EXIT } from '../errors.js';
import { isoTime, table } from '../format.js';
import { submit } from '../submit.js';

export const backup: Command = {
  name: 'backup',
  summary: 'back up namespaces of the cache Redis into a file (all by default), and follow the job',
  help: `Usage:
  cachefleet backup [<namespace>...] [--detach] [--json]

Enqueues a backup job on the backup queue: the namespaces' entries and tag sets (SCAN + DUMP +
PTTL on every master) are streamed into a compressed file in the workers' BACKUP_DIR, signed with
BACKUP_HMAC_KEY and encrypted with BACKUP_ENCRYPTION_KEY when those are set. The result names the
file. The workers keep the newest BACKUP_KEEP backups.

${SUBMIT_HELP}`,

  async run(args, session) {
    const { values, positionals } = parseFlags('backup', () =>
      parseArgs({ args, options: SUBMIT_OPTIONS, allowPositionals: true, strict: true }),
    );
    const payload = positionals.length > 0 ? { namespaces: positionals } : {};
    const schema = payloadSchemaWith('backup', await session.namespaceRules());
    const parsed = check(schema, payload, () => '<namespace>', 'E_JOB_INVALID_PAYLOAD');
    return submit(session, 'backup', parsed, values);
  },
};

const RESTORE_OPTIONS = { replace: { type: 'boolean' }, ...SUBMIT_OPTIONS } as const;

export const restore: Command = {
  name: 'restore',
  summary: 'restore a backup file (or the latest) into the cache Redis, and follow the job',
  help: `Usage:
  cachefleet restore <file|latest> [--replace] [--detach] [--json]

Enqueues a restore job on the backup queue. The worker first checks the whole file (checksum,
signature, decryption, record count, format version, key prefix): a file that fails is refused
with its code (E_JOB_BACKUP_CORRUPT, _SIGNATURE, _KEY, _INCOMPATIBLE, _NOT_FOUND) and nothing is
written. Then every key comes back with its remaining TTL (expired ones are skipped); entries
invalidated or rewritten since the backup are not brought back.

Arguments:
  <file>                a file name in the workers' BACKUP_DIR, a path, or latest
Flags:
  --replace             overwrite keys that exist (default: keep them)
${SUBMIT_HELP}`,

  async run(args, session) {
    const { values, positionals } = parseFlags('restore', () =>
      parseArgs({ args, options: RESTORE_OPTIONS, allowPositionals: true, strict: true }),
    );
    const [file, ...rest] = positionals;
    if (file === undefined) throw usage('<file>: missing (a backup file name, a path, or latest)');
    if (rest.length > 0) throw usage(`unexpected argument ${JSON.stringify(rest[0])} (one file)`);
    const payload = { file, replace: values.replace === true };
    const parsed = check(payloadSchemaWith('restore', []), payload, () => '<file>', 'E_JOB_INVALID_PAYLOAD');
    return submit(session, 'restore', parsed, values);
  },
};

export const backups: Command = {
  name: 'backups',
  summary: 'list the backup files in BACKUP_DIR (time, size, keys, namespaces)',
  help: `Usage:
  cachefleet backups [--json]

Lists the backups in BACKUP_DIR (default .data/backups), newest first, read from each file's
header: when it was taken, its size, its keys, its namespaces (name@version/generation), and
whether it is signed and encrypted. A file whose header cannot be read is listed as damaged.

Flags:
  --json                one JSON array`,

  async run(args, session) {
    const { values } = parseFlags('backups', () =>
      parseArgs({ args, options: { json: { type: 'boolean' } }, allowPositionals: false, strict: true }),
    );
    const storage = new FsBackupStorage(loadBackupConfig(session.env).dir);
    const rows = [];
    for (const file of await storage.list()) {
      try {
        const { header } = await readLayout(storage, file.name);
        rows.push({
          file: file.name,
          createdAt: header.createdAt,
          bytes: file.size,
          keys: header.keys,
          namespaces: header.namespaces.map((n) => `${n.name}@v${n.version}/g${n.generation}`),
          signed: header.signed,
          encrypted: header.encryption !== null,
          damaged: false,
        });
      } catch {
        rows.push({
          file: file.name,
          createdAt: isoTime(file.modifiedAt.getTime()),
          bytes: file.size,
          keys: 0,
          namespaces: [],
          signed: false,
          encrypted: false,
          damaged: true,
        });
      }
    }
    if (values.json) {
      session.out(JSON.stringify(rows));
      return EXIT.OK;
    }
    if (rows.length === 0) {
      session.note(`no backups in ${storage.dir}`);
      return EXIT.OK;
    }
    for (const line of table(
      ['FILE', 'TAKEN', 'BYTES', 'KEYS', 'NAMESPACES', 'SIGNED', 'ENCRYPTED'],
      rows.map((r) => [
        r.file,
        r.damaged ? `${r.createdAt} (damaged)` : r.createdAt,
        String(r.bytes),
        String(r.keys),
        r.namespaces.join(',') || '-',
        r.signed ? 'yes' : 'no',
        r.encrypted ? 'yes' : 'no',
      ]),
    ))
      session.out(line);
    return EXIT.OK;
  },
};
