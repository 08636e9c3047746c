import { randomBytes, randomUUID } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * What `npm start` keeps in its data folder besides the data: the admin token (so cookies, CLI
 * settings and scripts survive a restart), the system id (CACHEFLEET_SYSTEM_ID: the Redis of this
 * system carry it, and a process pointed at another system's Redis refuses to start) and a lock (one `npm start` per folder: two would open
 * the same embedded database).
 */
const TOKEN_FILE = 'admin-token';
const SYSTEM_ID_FILE = 'system-id';
const LOCK_FILE = 'start.lock';

/** The token kept in `dir`, made (mode 0600) at the first start. */
export function adminTokenIn(dir: string): { readonly token: string; readonly created: boolean } {
  const path = join(dir, TOKEN_FILE);
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 16) return { token, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return { token: writeToken(dir), created: true };
}

/** The system id kept in `dir`, made at the first start (a UUID; never changed by npm start). */
export function systemIdIn(dir: string): { readonly id: string; readonly created: boolean } {
  const path = join(dir, SYSTEM_ID_FILE);
  try {
    const id = readFileSync(path, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{1,64}$/.test(id)) return { id, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dir, { recursive: true });
  const id = randomUUID();
  writeFileSync(`${path}.new`, `${id}\n`);
  renameSync(`${path}.new`, path);
  return { id, created: true };
}

/** A new token replaces the kept one (the running API keeps the old one until it restarts). */
export function rotateAdminToken(dir: string): string {
  return writeToken(dir);
}

function writeToken(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  const path = join(dir, TOKEN_FILE);
  // Written aside, then renamed: a reader never sees half a token.
  writeFileSync(`${path}.new`, `${token}\n`, { mode: 0o600 });
  renameSync(`${path}.new`, path);
  return token;
}

export type Lock = { readonly ok: true; release(): void } | { readonly ok: false; readonly holder: number };

/** Takes the folder's lock, or names the live process holding it (a dead holder's lock is taken over). */
export function lockDataDir(dir: string, pid = process.pid): Lock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${pid}\n`);
      closeSync(fd);
      return { ok: true, release: () => rmSync(path, { force: true }) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== pid && alive(holder))
        return { ok: false, holder };
      rmSync(path, { force: true }); // left by a process that is gone (killed, power cut)
    }
  }
  throw new Error(`could not take ${path}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
