import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { JobError } from '../errors.js';

/** A backup file as storage lists it. */
export interface StoredBackup {
  readonly name: string;
  readonly size: number;
  readonly modifiedAt: Date;
}

/** A file being written: `commit` makes it visible (atomically), `abort` drops it. */
export interface BackupUpload {
  readonly stream: Writable;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Where backups live (docs/design-lifecycle.md). The filesystem implementation below is the one
 * shipped; another (an object store) implements the same five calls.
 */
export interface BackupStorage {
  /** Newest first. */
  list(): Promise<StoredBackup[]>;
  create(name: string): Promise<BackupUpload>;
  /** Undefined when there is no such backup. */
  size(name: string): Promise<number | undefined>;
  /** Bytes [start, end) of a backup. */
  read(name: string, start: number, end: number): Readable;
  remove(name: string): Promise<void>;
  /** Drops files left half-written by an attempt that died (call while holding the backup lock). */
  dropPartial(): Promise<number>;
  /** Where a backup is, for people (a path). */
  where(name: string): string;
}

/** Backup file names: what `backupName` makes, and nothing that could leave the directory. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.cfb$/;

export function isBackupName(name: string): boolean {
  return NAME.test(name);
}

/** `cachefleet-20261201T180000123Z-<8 hex>.cfb`: names sort by time. */
export function backupName(at: Date, suffix: string): string {
  return `cachefleet-${at.toISOString().replace(/[-:.]/g, '')}-${suffix}.cfb`;
}

export class FsBackupStorage implements BackupStorage {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  #path(name: string): string {
    if (!isBackupName(name))
      throw new JobError('E_JOB_BACKUP_NOT_FOUND', `not a backup file name: ${JSON.stringify(name)}`);
    return join(this.dir, name);
  }

  async list(): Promise<StoredBackup[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const out: StoredBackup[] = [];
    for (const name of names.filter(isBackupName)) {
      const s = await stat(join(this.dir, name)).catch(() => undefined);
      if (s?.isFile()) out.push({ name, size: s.size, modifiedAt: s.mtime });
    }
    return out.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  }

  async create(name: string): Promise<BackupUpload> {
    const path = this.#path(name);
    await mkdir(this.dir, { recursive: true });
    const part = `${path}.part`;
    const stream = createWriteStream(part, { flags: 'w' });
    const closed = new Promise<void>((resolve, reject) => {
      stream.once('close', resolve);
      stream.once('error', reject);
    });
    closed.catch(() => undefined);
    return {
      stream,
      commit: async () => {
        if (!stream.writableEnded) stream.end();
        await closed;
        await rename(part, path);
      },
      abort: async () => {
        stream.destroy();
        await closed.catch(() => undefined);
        await rm(part, { force: true });
      },
    };
  }

  async size(name: string): Promise<number | undefined> {
    const s = await stat(this.#path(name)).catch(() => undefined);
    return s?.isFile() ? s.size : undefined;
  }

  read(name: string, start: number, end: number): Readable {
    return createReadStream(this.#path(name), { start, end: end - 1 });
  }

  async remove(name: string): Promise<void> {
    await rm(this.#path(name), { force: true });
  }

  async dropPartial(): Promise<number> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const partial = names.filter((n) => n.endsWith('.cfb.part') && isBackupName(n.slice(0, -'.part'.length)));
    for (const n of partial) await rm(join(this.dir, n), { force: true });
    return partial.length;
  }

  where(name: string): string {
    return join(this.dir, name);
  }
}

/**
 * A backup as a person names it: `latest`, a name in the directory, or a path to a file
 * elsewhere (read from its own directory).
 */
export async function locateBackup(
  storage: FsBackupStorage,
  file: string,
): Promise<{ readonly storage: BackupStorage; readonly name: string }> {
  if (file === 'latest') {
    const newest = (await storage.list())[0];
    if (newest === undefined) throw new JobError('E_JOB_BACKUP_NOT_FOUND', `no backup in ${storage.dir}`);
    return { storage, name: newest.name };
  }
  const at = isAbsolute(file) || file.includes('/') ? new FsBackupStorage(dirname(file)) : storage;
  const name = basename(file);
  if ((await at.size(name)) === undefined)
    throw new JobError('E_JOB_BACKUP_NOT_FOUND', `no backup ${JSON.stringify(file)} in ${at.dir}`);
  return { storage: at, name };
}
