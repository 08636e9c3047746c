/** The data folder of `npm start`: the admin token kept across starts, and one start per folder. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { adminTokenIn, lockDataDir, rotateAdminToken } from '../src/data-dir.js';

const dirs: string[] = [];
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cachefleet-data-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the admin token', () => {
  it('is made once (mode 0600), then read back at every start; a rotation replaces it', () => {
    const dir = join(folder(), 'nested');
    const first = adminTokenIn(dir);
    expect(first.created).toBe(true);
    expect(first.token).toMatch(/^[\w-]{32}$/);
    expect(statSync(join(dir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(adminTokenIn(dir)).toEqual({ token: first.token, created: false });

    const rotated = rotateAdminToken(dir);
    expect(rotated).not.toBe(first.token);
    expect(adminTokenIn(dir)).toEqual({ token: rotated, created: false });
    expect(readFileSync(join(dir, 'admin-token'), 'utf8')).toBe(`${rotated}\n`);
  });

  it('a file too short to be a token (emptied, truncated) is replaced, not used', () => {
    const dir = folder();
    writeFileSync(join(dir, 'admin-token'), 'short\n');
    const made = adminTokenIn(dir);
    expect(made.created).toBe(true);
    expect(made.token).not.toBe('short');
  });
});

describe('one npm start per folder', () => {
  it('a second start is refused, naming the live holder; after release it may start', () => {
    const dir = folder();
    const first = lockDataDir(dir);
    expect(first.ok).toBe(true);
    // Another process (any live pid that is not ours) asks for the same folder.
    const second = lockDataDir(dir, process.pid + 1_000_000);
    expect(second).toEqual({ ok: false, holder: process.pid });
    if (first.ok) first.release();
    const third = lockDataDir(dir, process.pid + 1_000_000);
    expect(third.ok).toBe(true);
    if (third.ok) third.release();
  });

  it('the lock of a process that is gone (killed, power cut) is taken over', () => {
    const dir = folder();
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const deadPid = Number(gone.stdout.toString());
    expect(deadPid).toBeGreaterThan(0);
    writeFileSync(join(dir, 'start.lock'), `${deadPid}\n`);
    const lock = lockDataDir(dir);
    expect(lock.ok).toBe(true);
    expect(readFileSync(join(dir, 'start.lock'), 'utf8')).toBe(`${process.pid}\n`);
    if (lock.ok) lock.release();
  });
});
