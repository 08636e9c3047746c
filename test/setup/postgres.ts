import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withFreePort } from '../helpers/redis-server.js';

/** A PostgreSQL server of one test (or bench) run: its own folder and loopback port, trust auth. */
interface PrivatePostgres {
  readonly url: string;
  readonly dir: string;
  /** Stops the server at once (`-m immediate`, as a crash) and starts it again on the same port and data. */
  restart(): void;
  /** Stops the server and removes its folder; also done at process exit if not called. */
  stop(): void;
}

interface Owner {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function idOf(name: string, flag: '-u' | '-g'): number | undefined {
  const run = spawnSync('id', [flag, name], { encoding: 'utf8' });
  return run.status === 0 ? Number(run.stdout.trim()) : undefined;
}

/**
 * initdb and pg_ctl refuse to run as root, so as root the server runs as `postgres` (made by
 * Debian's package) or, without it, `nobody`; as anybody else, as that user.
 */
function serverOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    const uid = idOf(name, '-u');
    const gid = idOf(name, '-g');
    if (uid !== undefined && gid !== undefined) return { name, uid, gid };
  }
  throw new Error(
    'postgresql: running as root, and neither user postgres nor nobody exists to own the server',
  );
}

/**
 * initdb, then `pg_ctl start` on a free loopback port. Durability is off (initdb --no-sync; fsync,
 * synchronous_commit, full_page_writes): the data is thrown away at the end, and --no-sync alone
 * took initdb from 3.5 s to 1.9 s on this kind of machine (2 cores, busy).
 */
export async function startPrivatePostgres(bin: string): Promise<PrivatePostgres> {
  const owner = serverOwner();
  const dir = mkdtempSync(join(tmpdir(), 'cachefleet-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const run = (tool: string, args: readonly string[]): void => {
    const command = owner ? ['runuser', '-u', owner.name, '--', join(bin, tool)] : [join(bin, tool)];
    const [file = '', ...rest] = [...command, ...args];
    // cwd: the server's user may not be allowed into the caller's folder.
    const result = spawnSync(file, rest, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) {
      let tail = '';
      try {
        tail = readFileSync(log, 'utf8').split('\n').slice(-6).join('\n');
      } catch {
        // no log yet (initdb)
      }
      const output = `${result.stderr ?? ''}${result.error?.message ?? ''}`.trim();
      throw new Error(`postgresql: ${tool} failed (exit ${result.status}): ${output}\n${tail}`);
    }
  };
  let stopped = false;
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stop);
    try {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // not started, or already gone: the folder goes anyway
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A run that ends without stop() (an error, process.exit) must not leave a server holding a port.
  process.once('exit', stop);
  try {
    if (owner) chownSync(dir, owner.uid, owner.gid);
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    const port = await withFreePort(undefined, async (p) => {
      const options = [
        // pg_ctl hands these to postgres through sh: quote the folder.
        `-h 127.0.0.1 -p ${p} -k '${dir}'`,
        '-c fsync=off -c synchronous_commit=off -c full_page_writes=off',
      ].join(' ');
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', '-s', '-o', options, 'start']);
      return p;
    });
    const options = `-h 127.0.0.1 -p ${port} -k '${dir}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
    const restart = (): void => {
      run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', '-s', '-o', options, 'start']);
    };
    return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, dir, restart, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
