import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Something the tests need that is absent and that the set-up cannot install here (not root, no
 * apt-get, or apt-get failed). Its message is the one line printed before the run fails.
 */
export class MissingPiece extends Error {
  override readonly name = 'MissingPiece';
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, as `command -v` finds it. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The command a person would type to install `pkg`, for the one line of a MissingPiece. */
function installCommand(pkg: string): string {
  return `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y ${pkg}`;
}

let listsUpdated = false;

/**
 * `apt-get install -y <pkg>` when this process is root and apt-get exists; otherwise a MissingPiece
 * naming the command. A fresh machine has no package lists, so `apt-get update` runs first (once per
 * process). apt's output is kept and only its last line shown when it fails: the install is a one-time
 * step, and its hundreds of lines would bury the test report.
 */
export function aptInstall(pkg: string, missing: string, say: (line: string) => void): void {
  const aptGet = onPath('apt-get');
  if (process.getuid?.() !== 0 || aptGet === undefined) {
    const why = aptGet === undefined ? 'no apt-get here' : 'not root';
    throw new MissingPiece(`${missing}; the set-up cannot install it (${why}): run ${installCommand(pkg)}`);
  }
  say(`${missing}: installing it with apt-get install -y ${pkg} (one time, may take a minute)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Two test runs may install at once: wait for the other's dpkg lock instead of failing.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const steps = listsUpdated ? [] : [['update', '-qq']];
  for (const args of [...steps, ['install', '-y', '-qq', pkg]]) {
    const run = spawnSync(aptGet, [...lock, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
    if (run.status !== 0) {
      const last = `${run.stderr ?? ''}${run.error?.message ?? ''}`.trim().split('\n').pop() ?? '';
      throw new MissingPiece(
        `${missing}; apt-get ${args[0]} failed (exit ${run.status ?? run.signal}: ${last}): run ${installCommand(pkg)}`,
      );
    }
    if (args[0] === 'update') listsUpdated = true;
  }
}
