import { randomBytes } from 'node:crypto';
import { type CacheEvent, cacheEventSchema, type DumpedKey, globToRegExp } from '@cachefleet/tiered-cache';
import type { BackupConfig } from '../backup/config.js';
import { type BackupHeader, readRecords, verifyBackup, writeBackup } from '../backup/format.js';
import { backupName, FsBackupStorage, locateBackup } from '../backup/storage.js';
import type { BackupResult, RestoreResult, RestoreState, RestoreTotals } from '../catalogue.js';
import { JobError } from '../errors.js';
import { checkpoint, type JobContext, must } from './context.js';

/** Keys per SCAN + DUMP step, and per RESTORE batch. */
const STEP = 500;
/** The backup lock's life, renewed at every step: a dead worker's lock frees itself this fast. */
const LOCK_MS = 30_000;

function settings(backups: BackupConfig | undefined): BackupConfig {
  if (backups === undefined)
    throw new JobError(
      'E_JOB_CONFIG',
      'this worker has no backup settings (BACKUP_DIR): backup jobs cannot run',
    );
  return backups;
}

async function lock(ctx: JobContext<'backup' | 'restore'>): Promise<() => Promise<void>> {
  const token = `job:${ctx.job.id ?? 'unknown'}`;
  if (!must(await ctx.cache.fleet.backupLock(token, LOCK_MS)))
    throw new JobError('E_JOB_BACKUP_BUSY', 'another backup or restore is running');
  return async () => {
    await ctx.cache.fleet.backupUnlock(token);
  };
}

/** How often a running backup or restore renews its lock and reports progress, ms. */
const EVERY_MS = 1_000;

/**
 * Renews the lock and reports progress, at most once a second (per step, they were three round
 * trips to the cache Redis and one to the queue Redis for every 500 keys).
 */
function heartbeat(
  ctx: JobContext<'backup' | 'restore'>,
): (progress: Record<string, number | string>, force?: boolean) => Promise<void> {
  let last = 0;
  return async (progress, force = false) => {
    const now = performance.now();
    if (!force && now - last < EVERY_MS) return;
    last = now;
    if (!must(await ctx.cache.fleet.backupLock(`job:${ctx.job.id ?? 'unknown'}`, LOCK_MS)))
      throw new JobError('E_JOB_BACKUP_BUSY', 'the backup lock was lost (taken by another job)');
    await ctx.progress(progress);
  };
}

/**
 * A logical backup (docs/design-lifecycle.md): SCAN + DUMP + PTTL of the namespaces' entries and
 * tag sets, master by master, streamed through gzip (and AES-256-GCM) into a new file, then the
 * retention. An attempt starts its file over (a partial one is removed).
 */
export async function backupHandler(ctx: JobContext<'backup'>): Promise<BackupResult> {
  const config = settings(ctx.backups);
  const storage = new FsBackupStorage(config.dir);
  const names = ctx.payload.namespaces?.length
    ? [...new Set(ctx.payload.namespaces)]
    : ctx.definitions.namespaces.map((n) => n.name);
  const namespaces = names.map((n) => ctx.namespace(n));
  const unlock = await lock(ctx);
  try {
    // A file an attempt killed mid-write left behind (no backup runs but this one).
    const dropped = await storage.dropPartial();
    if (dropped > 0) ctx.log.info({ dropped }, 'removed half-written backup files of an earlier attempt');
    const point = must(await ctx.cache.fleet.backupPoint(names));
    const masters = must(ctx.cache.fleet.masters());
    const matches = names.flatMap((n) => ctx.cache.fleet.backupMatches(n));
    let total = 0;
    for (const m of matches) total += must(await ctx.cache.fleet.countMatching(m));
    const createdAt = new Date();
    const name = backupName(createdAt, randomBytes(4).toString('hex'));
    let done = 0;
    const beat = heartbeat(ctx);
    async function* records(): AsyncGenerator<readonly DumpedKey[]> {
      for (const match of matches) {
        for (const master of masters) {
          let next = ctx.cache.fleet.dumpStep(master, match, '0', STEP);
          for (;;) {
            checkpoint(ctx.signal);
            const step = must(await next);
            // The next step is read while this one is compressed and written (reads have no effect).
            if (step.cursor !== '0') next = ctx.cache.fleet.dumpStep(master, match, step.cursor, STEP);
            done += step.scanned;
            if (step.keys.length > 0) yield step.keys;
            // Forced at a walk's end: a backup shorter than the beat's second still ends at 100%.
            await beat({ file: name, done, total: Math.max(total, done) }, step.cursor === '0');
            if (step.cursor === '0') break;
          }
        }
      }
    }
    const upload = await storage.create(name);
    let written: Awaited<ReturnType<typeof writeBackup>>;
    try {
      written = await writeBackup(
        upload.stream,
        records(),
        {
          createdAt: createdAt.toISOString(),
          prefix: ctx.cache.fleet.prefix() ?? '',
          namespaces: namespaces.map((ns) => ({
            name: ns.name,
            version: ns.version,
            generation: point.generations.get(ns.name) ?? 0,
            invalidations: point.invalidations.get(ns.name) ?? 0,
          })),
          busId: point.busId,
          redisVersion: point.redisVersion,
        },
        config,
      );
      await upload.commit();
    } catch (error) {
      await upload.abort();
      throw error;
    }
    // Retention: the newest `keep` stay.
    let removed = 0;
    for (const old of (await storage.list()).slice(config.keep)) {
      await storage.remove(old.name);
      removed++;
    }
    return {
      file: name,
      path: storage.where(name),
      keys: written.header.keys,
      bytes: written.bytes,
      namespaces: names,
      sha256: written.sha256,
      signed: written.header.signed,
      encrypted: written.header.encryption !== null,
      removed,
    };
  } finally {
    await unlock();
  }
}

/** What happened to a namespace after the backup was taken, from the invalidation log. */
interface Fence {
  /** Its generation moved: none of its backed-up entries is reachable. */
  whole: boolean;
  ids: Set<string>;
  patterns: RegExp[];
  /** Entry keys (relative) of tags invalidated since. */
  keys: Set<string>;
}

/**
 * Restores a backup (docs/design-lifecycle.md): verifies the whole file first (checksum,
 * signature, decryption, record count, format, prefix, Redis version) — a refusal writes nothing —
 * then RESTOREs each key with its remaining TTL, keeping existing keys unless `replace`, and never
 * bringing back an entry invalidated after the backup. The position is saved after each batch.
 */
export async function restoreHandler(ctx: JobContext<'restore'>): Promise<RestoreResult> {
  const config = settings(ctx.backups);
  const { storage, name } = await locateBackup(new FsBackupStorage(config.dir), ctx.payload.file);
  const unlock = await lock(ctx);
  try {
    const layout = await verifyBackup(storage, name, config);
    const { header } = layout;
    const prefix = ctx.cache.fleet.prefix() ?? '';
    if (header.prefix !== prefix) {
      throw new JobError(
        'E_JOB_BACKUP_INCOMPATIBLE',
        `backup ${name} holds keys of prefix ${JSON.stringify(header.prefix)}, this cache's is ${JSON.stringify(prefix)}: refused, nothing written`,
      );
    }
    const names = header.namespaces.map((n) => n.name);
    const now = must(await ctx.cache.fleet.backupPoint(names));
    if (major(now.redisVersion) < major(header.redisVersion)) {
      throw new JobError(
        'E_JOB_BACKUP_INCOMPATIBLE',
        `backup ${name} was taken from Redis ${header.redisVersion}; this one is ${now.redisVersion} (DUMP payloads do not load into an older major): refused, nothing written`,
      );
    }
    const fences = await fencesSince(ctx, header, now.generations);
    const resumed: RestoreState | undefined = ctx.state?.name === name ? ctx.state : undefined;
    const totals: RestoreTotals = resumed?.totals ?? {
      read: 0,
      restored: 0,
      existing: 0,
      expired: 0,
      fenced: 0,
    };
    let done = resumed?.done ?? 0;
    // Entries come back at the generation they were taken at: make it the namespace's own again
    // (a fresh Redis has none); a namespace that moved past it is fenced whole.
    for (const ns of header.namespaces) {
      if (!(fences.get(ns.name)?.whole ?? false))
        must(await ctx.cache.fleet.raiseGeneration(ns.name, ns.generation));
    }
    const beat = heartbeat(ctx);
    for await (const batch of readRecords(storage, name, layout, config, done, STEP)) {
      checkpoint(ctx.signal);
      const keep = batch.filter((k) => !isFenced(k.key, header, fences));
      // Tag index sets are never replaced (a live one holds members added since the backup): one
      // that exists is kept, and the entries restored are indexed into it from their values.
      const tagSets = keep.filter((k) => !ENTRY.test(k.key));
      const entries = keep.filter((k) => ENTRY.test(k.key));
      const [r, t] = await Promise.all([
        ctx.cache.fleet.restoreKeys(entries, ctx.payload.replace).then(must),
        ctx.cache.fleet.restoreKeys(tagSets, false).then(must),
      ]);
      await reindex(ctx, entries);
      done += batch.length;
      totals.read += batch.length;
      totals.fenced += batch.length - keep.length;
      totals.restored += r.restored + t.restored;
      totals.existing += r.existing + t.existing;
      totals.expired += r.expired + t.expired;
      await ctx.save({ name, done, totals });
      await beat({ file: name, done, total: header.keys, restored: totals.restored });
    }
    // The last batches may have fallen inside the beat's second: the progress ends where the job did.
    await beat({ file: name, done, total: header.keys, restored: totals.restored }, true);
    return { file: name, keys: header.keys, createdAt: header.createdAt, namespaces: names, ...totals };
  } finally {
    await unlock();
  }
}

/** Indexes restored entries of the worker's namespaces (at their current version) into their tags. */
async function reindex(ctx: JobContext<'restore'>, entries: readonly DumpedKey[]): Promise<void> {
  const byNamespace = new Map<string, string[]>();
  for (const { key } of entries) {
    const m = ENTRY.exec(key);
    if (m === null) continue;
    const list = byNamespace.get(m[1] as string);
    if (list === undefined) byNamespace.set(m[1] as string, [key]);
    else list.push(key);
  }
  for (const [name, keys] of byNamespace) {
    const ns = ctx.definitions.namespaces.find((n) => n.name === name);
    if (ns?.tags === undefined) continue;
    const current = `${name}:v${ns.version}:`;
    must(
      await ctx.cache.fleet.reindexTags(
        ns,
        keys.filter((k) => k.startsWith(current)),
      ),
    );
  }
}

function major(version: string): number {
  const m = /^(\d+)/.exec(version);
  return m ? Number(m[1]) : 0;
}

/**
 * Reads the invalidation log since the backup (the bus stream after the id the backup recorded):
 * ids, patterns and tags invalidated or rewritten since, and generations moved. A log trimmed past
 * that point cannot tell, so the restore is refused (into a fresh Redis there is no log at all).
 */
async function fencesSince(
  ctx: JobContext<'restore'>,
  header: BackupHeader,
  generations: ReadonlyMap<string, number>,
): Promise<Map<string, Fence>> {
  const fences = new Map<string, Fence>();
  for (const ns of header.namespaces) {
    fences.set(ns.name, {
      whole: (generations.get(ns.name) ?? 0) > ns.generation,
      ids: new Set(),
      patterns: [],
      keys: new Set(),
    });
  }
  const log = must(await ctx.cache.fleet.busSince(header.busId));
  if (!log.covered) {
    throw new JobError(
      'E_JOB_BACKUP_INCOMPATIBLE',
      `the invalidation log no longer reaches back to ${header.createdAt} (trimmed): entries invalidated since could come back; restore into a Redis without a log, or take a newer backup`,
    );
  }
  const tags: { ns: string; tag: string }[] = [];
  for (const json of log.events) {
    let event: CacheEvent;
    try {
      event = cacheEventSchema.parse(JSON.parse(json));
    } catch {
      continue; // the bus drops these too
    }
    const f = fences.get(event.namespace);
    if (f === undefined) continue;
    if (event.event_type === 'update') for (const id of event.keys) f.ids.add(id);
    if (event.event_type !== 'invalidate') continue;
    if (event.generation !== undefined) f.whole = true;
    else if (event.keys !== undefined) for (const id of event.keys) f.ids.add(id);
    else if (event.key_pattern !== undefined) f.patterns.push(globToRegExp(event.key_pattern));
    else if (event.tags !== undefined) for (const tag of event.tags) tags.push({ ns: event.namespace, tag });
  }
  // A tag index is never emptied by an invalidation: its members now are the entries it reached.
  for (const { ns, tag } of tags) {
    const f = fences.get(ns);
    for (const key of must(await ctx.cache.fleet.tagMembers(ns, tag))) f?.keys.add(key);
  }
  return fences;
}

const ENTRY = /^([a-z][a-z0-9_-]*):v\d+:(?:g\d+:)?(.*)$/s;

function isFenced(key: string, header: BackupHeader, fences: ReadonlyMap<string, Fence>): boolean {
  const m = ENTRY.exec(key);
  if (m === null) return false; // a tag index set: restored as it was
  const f = fences.get(m[1] as string);
  if (f === undefined) return !header.namespaces.some((n) => n.name === m[1]);
  if (f.whole || f.keys.has(key)) return true;
  const id = m[2] as string;
  return f.ids.has(id) || f.patterns.some((re) => re.test(id));
}
