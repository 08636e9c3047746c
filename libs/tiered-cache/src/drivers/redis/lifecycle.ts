import { findMaster, masters, scanMasters, scanStep } from '@cachefleet/redis';
import { compareStreamIds } from '../../bus/events.js';
import { CacheError } from '../../errors.js';
import { err, ok, type Result } from '../../result.js';
import type { L2Connection } from './connection.js';
import type { Fencing } from './fencing.js';
import { dumpMany } from './scripts.js';

/**
 * The cache Redis side of the lifecycle jobs (docs/design-lifecycle.md): reading a migration step's
 * old entries with their remaining TTL, writing the new ones fenced, and the sweep's SCAN + UNLINK
 * of keys no pod can reach. Every call runs under the store's breaker and hang watchdog.
 */

/**
 * Pairs per migrate-n.lua call: ~5 µs of Redis a pair, so a call holds Redis about half a
 * millisecond, and its ~13 KB of arguments fit one 16 KB read of Redis (which runs every command a
 * read completed before it serves the next client).
 */
const MIGRATE_CHUNK = 100;

/**
 * An old entry as a migration step read it: its wire (null: gone) and, on a Cluster, its PTTL (ms;
 * < 0: none). On a single node the write reads the PTTL itself (migrate-n.lua), exact at the write.
 */
export interface ReadEntry {
  readonly wire: string | null;
  readonly pttl: number | undefined;
}

export interface MigrateRead {
  /** Full keys SCAN returned on the master, in order. */
  readonly keys: readonly string[];
  readonly cursor: string;
  readonly entries: readonly ReadEntry[];
  /** The namespace's walk counter, read before the entries. */
  readonly inv: number;
}

export interface MigratePair {
  /** Full keys. */
  readonly oldKey: string;
  readonly newKey: string;
  /** The old entry's wire as read: the write stands only if it still holds it. */
  readonly was: string;
  readonly wire: string;
  /**
   * The TTL to give the new entry, ms: the old one's remaining PTTL as read on a Cluster; on a
   * single node the write gives the old entry's PTTL at the write, this only if it has none.
   */
  readonly ttlMs: number;
  readonly tags: readonly string[] | undefined;
}

export interface MigrateWrite {
  readonly written: number;
  /** The old entry changed since it was read (an invalidation, a write): not written. */
  readonly changed: number;
  /** The new entry existed (a vN+1 fill, or its tombstone): left alone. */
  readonly present: number;
  /** A pattern or tag invalidation of the namespace began since the read: nothing stands, redo. */
  readonly walked: boolean;
}

export interface SweepStep {
  readonly cursor: string;
  readonly scanned: number;
  readonly unlinked: number;
}

function noMaster(master: string): Result<never> {
  // Not a Redis fault (the breaker must not count it): the topology changed since the walk began.
  return err(
    new CacheError('E_CACHE_L2_UNAVAILABLE', `no cache master ${master} (failover since the walk began?)`),
  );
}

/** Keys per dump-n.lua call of a backup step: no one call holds Redis long. */
const DUMP_CHUNK = 250;

/** Keys per MGET of a migration step's read: no one command holds Redis long. */
const READ_CHUNK = 500;

/**
 * One SCAN step on `master`, then the walk counter and the values of the keys found. Single node:
 * one MGET (in chunks, pipelined) whose first key is the counter, so it is read first; the PTTLs
 * are read by the write. Cluster: GET of the counter, then GET + PTTL of every key (pipelined).
 */
export async function migrateRead(
  c: L2Connection,
  namespace: string,
  master: string,
  match: string,
  cursor: string,
  count: number,
  keep: (fullKey: string) => boolean,
): Promise<Result<MigrateRead>> {
  const node = findMaster(c.client, master);
  if (node === undefined) return noMaster(master);
  return c.guard.run(async () => {
    const step = await scanStep(node, c.keys.entryMatch(match), cursor, count, c.guard.watchdog);
    const keys = step.keys.filter(keep);
    if (keys.length === 0) return { keys, cursor: step.cursor, entries: [], inv: 0 };
    const counter = c.keys.invalidations(namespace);
    if (!c.cluster) {
      const calls: Promise<(string | null)[]>[] = [];
      for (let at = 0; at < keys.length; at += READ_CHUNK) {
        const chunk = keys.slice(at, at + READ_CHUNK);
        calls.push(c.client.mget(at === 0 ? [counter, ...chunk] : chunk));
      }
      const replies = await Promise.all(calls);
      const inv = Number(replies[0]?.[0] ?? 0);
      const entries: ReadEntry[] = [];
      replies.forEach((wires, chunkNo) => {
        for (let i = chunkNo === 0 ? 1 : 0; i < wires.length; i++)
          entries.push({ wire: wires[i] ?? null, pttl: undefined });
      });
      return { keys, cursor: step.cursor, entries, inv };
    }
    // The counter first: a walk that begins after this read is seen by the write.
    const inv = Number((await c.client.get(counter)) ?? 0);
    const [wires, pttls] = await Promise.all([
      c.getAll(keys),
      Promise.all(keys.map((k) => c.client.pttl(k))),
    ]);
    const entries = keys.map((_, i) => ({ wire: wires[i] ?? null, pttl: pttls[i] ?? -2 }));
    return { keys, cursor: step.cursor, entries, inv };
  });
}

/**
 * Writes migrated entries, each only if its old entry is unchanged and its new one absent, none
 * if the walk counter moved (migrate-n.lua, which also gives each the old entry's PTTL). On a
 * Cluster the keys span slots: each new entry is written by the fill compare-and-set (absent →
 * value), then the old entries are read again and new entries whose old one changed are
 * tombstoned. Then the tags are added and, if any were (or on a Cluster, where nothing checked
 * it yet), the counter is read again: if it moved, every entry written is removed again if it
 * still holds what was written (a tag walk may have missed it) and the step reports `walked`, to
 * be done again. On a single node without tags the script's own check is the whole fence: a
 * walk that begins after it finds the new entries by SCAN.
 */
export async function migrateWrite(
  c: L2Connection,
  fence: Fencing,
  namespace: string,
  pairs: readonly MigratePair[],
  inv: number,
): Promise<Result<MigrateWrite>> {
  if (pairs.length === 0) return ok({ written: 0, changed: 0, present: 0, walked: false });
  const counter = c.keys.invalidations(namespace);
  const cmds = c.scripts;
  /** Per pair: the TTL it was written with (> 0), 0 the old entry changed, -1 the new one existed. */
  const codes: number[] = new Array(pairs.length).fill(0);
  let walked = false;
  const w = await c.guard.run(async () => {
    if (c.cluster) {
      const filled = await Promise.all(pairs.map((p) => cmds.fill(p.newKey, '', p.wire, p.ttlMs)));
      const now = await c.getAll(pairs.map((p) => p.oldKey));
      const retract: string[] = [];
      pairs.forEach((p, i) => {
        if (filled[i] !== 1) codes[i] = -1;
        else if (now[i] !== p.was) {
          codes[i] = 0;
          retract.push(p.newKey);
        } else codes[i] = Math.max(1, Math.round(p.ttlMs));
      });
      if (retract.length > 0) await fence.tombstone(retract);
      return;
    }
    const calls: Promise<number | number[]>[] = [];
    const inv$ = String(inv);
    for (let at = 0; at < pairs.length; at += MIGRATE_CHUNK) {
      const end = Math.min(pairs.length, at + MIGRATE_CHUNK);
      const keys: string[] = [];
      const args: string[] = [];
      for (let i = at; i < end; i++) {
        const p = pairs[i] as MigratePair;
        keys.push(p.oldKey, p.newKey);
        args.push(p.was, p.wire, String(Math.max(1, Math.round(p.ttlMs))));
      }
      calls.push(cmds.migrate(keys.length + 1, counter, ...keys, inv$, ...args));
    }
    const results = await Promise.all(calls);
    results.forEach((r, chunkNo) => {
      if (!Array.isArray(r)) {
        walked = true;
        return;
      }
      r.forEach((code, j) => {
        codes[chunkNo * MIGRATE_CHUNK + j] = code;
      });
    });
  });
  if (!w.ok) return w;
  const written: { pair: MigratePair; ttl: number }[] = [];
  let changed = 0;
  let present = 0;
  pairs.forEach((pair, i) => {
    const code = codes[i] ?? 0;
    if (code > 0) written.push({ pair, ttl: code });
    else if (code === 0) changed++;
    else present++;
  });
  const byTag = new Map<string, { members: string[]; ttl: number }>();
  for (const { pair, ttl } of written) {
    for (const tag of pair.tags ?? []) {
      const into = byTag.get(tag);
      if (into === undefined) byTag.set(tag, { members: [pair.newKey], ttl });
      else {
        into.members.push(pair.newKey);
        into.ttl = Math.max(into.ttl, ttl);
      }
    }
  }
  if (!walked && (c.cluster || byTag.size > 0)) {
    const t = await c.guard.run(async () => {
      await Promise.all(
        [...byTag].map(([tag, { members, ttl }]) => cmds.tagAddMany(c.keys.tag(tag), ttl, ...members)),
      );
      return Number((await c.client.get(counter)) ?? 0);
    });
    if (!t.ok) return t;
    if (t.value !== inv) walked = true;
  }
  if (walked) {
    // Retracted by compare-and-delete, not tombstoned: the step is done again, and a tombstone of
    // our own would read as "a vN+1 pod got there first" and the entry would never be migrated.
    // An invalidation that replaced the entry since keeps its tombstone.
    if (written.length > 0) {
      const r = await c.guard.run(() =>
        Promise.all(written.map(({ pair }) => cmds.deleteIf(pair.newKey, pair.wire))),
      );
      if (!r.ok) return r;
    }
    return ok({ written: 0, changed: 0, present: 0, walked: true });
  }
  return ok({ written: written.length, changed, present, walked: false });
}

/**
 * One SCAN step on `master` and an UNLINK of the keys `unreachable` picks (by full key). Stateless:
 * the caller keeps the cursor, as for the pattern walk's slices.
 */
export function sweepStep(
  c: L2Connection,
  master: string,
  match: string,
  cursor: string,
  count: number,
  unreachable: (fullKey: string) => boolean,
): Promise<Result<SweepStep>> {
  const node = findMaster(c.client, master);
  if (node === undefined) return Promise.resolve(noMaster(master));
  return c.guard.run(async () => {
    const step = await scanStep(node, c.keys.entryMatch(match), cursor, count, c.guard.watchdog);
    const doomed = step.keys.filter(unreachable);
    let unlinked = 0;
    if (doomed.length > 0) {
      if (c.cluster) for (const n of await Promise.all(doomed.map((k) => node.unlink(k)))) unlinked += n;
      else unlinked = await node.unlink(...doomed);
    }
    return { cursor: step.cursor, scanned: step.keys.length, unlinked };
  });
}

/** How many keys match on every master (SCAN only: a progress total, not a promise). */
export function countKeys(
  c: L2Connection,
  match: string,
  keep: (fullKey: string) => boolean,
): Promise<Result<number>> {
  return c.guard.run(() =>
    scanMasters(c.client, c.keys.entryMatch(match), (keys) => keys.filter(keep).length, {
      tracker: c.guard.watchdog,
    }),
  );
}

/**
 * Keys in the cache's database on every master (DBSIZE): what a migration's progress total starts
 * from before its walk has seen enough to estimate (every namespace's keys: an upper bound).
 */
export function keyCount(c: L2Connection): Promise<Result<number>> {
  return c.guard.run(async () => {
    let n = 0;
    for (const size of await Promise.all(masters(c.client).map((m) => m.dbsize()))) n += size;
    return n;
  });
}

/** One key as a backup holds it: relative to the prefix, its DUMP payload, its expiry (0: none). */
export interface DumpedKey {
  readonly key: string;
  readonly dump: Buffer;
  /** Absolute expiry, ms since the epoch; 0 for a key without TTL. */
  readonly expireAt: number;
}

export interface DumpStep {
  readonly cursor: string;
  readonly scanned: number;
  readonly keys: readonly DumpedKey[];
}

/**
 * One SCAN step on `master` and DUMP + PTTL of every key found (keys that vanished in between are
 * left out): on a single node one dump-n.lua call per 250 keys, on a Cluster two commands a key
 * (pipelined per node: the keys span slots). The expiry is made absolute with this process's
 * clock right after the replies (RESTORE … ABSTTL takes it back).
 */
export function dumpStep(
  c: L2Connection,
  master: string,
  match: string,
  cursor: string,
  count: number,
): Promise<Result<DumpStep>> {
  const node = findMaster(c.client, master);
  if (node === undefined) return Promise.resolve(noMaster(master));
  return c.guard.run(async () => {
    const step = await scanStep(node, c.keys.entryMatch(match), cursor, count, c.guard.watchdog);
    let read: { readonly dump: Buffer | null; readonly pttl: number }[];
    if (c.cluster) {
      const [dumps, pttls] = await Promise.all([
        Promise.all(step.keys.map((k) => c.client.dumpBuffer(k))),
        Promise.all(step.keys.map((k) => c.client.pttl(k))),
      ]);
      read = step.keys.map((_, i) => ({ dump: dumps[i] ?? null, pttl: pttls[i] ?? -2 }));
    } else {
      // One script call per chunk instead of two commands a key (dump-n.lua).
      const calls: ReturnType<typeof dumpMany>[] = [];
      for (let at = 0; at < step.keys.length; at += DUMP_CHUNK)
        calls.push(dumpMany(c.client, step.keys.slice(at, at + DUMP_CHUNK)));
      read = (await Promise.all(calls)).flat();
    }
    const now = Date.now();
    const keys: DumpedKey[] = [];
    const cut = c.prefix.length;
    step.keys.forEach((k, i) => {
      const r = read[i];
      if (r === undefined || r.dump === null || r.pttl === -2) return;
      keys.push({ key: k.slice(cut), dump: r.dump, expireAt: r.pttl > 0 ? now + r.pttl : 0 });
    });
    return { cursor: step.cursor, scanned: step.keys.length, keys };
  });
}

export interface RestoreResult {
  readonly restored: number;
  /** Kept: the key existed and `replace` was not asked. */
  readonly existing: number;
  /** Expired since the backup: not written. */
  readonly expired: number;
}

/** Keys per restore-n.lua call: no one call holds Redis long. */
const RESTORE_CHUNK = 250;

/**
 * RESTORE of each key with its absolute expiry (ABSTTL), REPLACE if asked (else an existing key is
 * kept): on a single node one restore-n.lua call per 250 keys; on a Cluster one RESTORE a key
 * (BUSYKEY = kept).
 */
export function restoreKeys(
  c: L2Connection,
  keys: readonly DumpedKey[],
  replace: boolean,
): Promise<Result<RestoreResult>> {
  const now = Date.now();
  const live = keys.filter((k) => k.expireAt === 0 || k.expireAt > now + 1);
  const expired = keys.length - live.length;
  return c.guard.run(async () => {
    if (!c.cluster) {
      const calls: Promise<number>[] = [];
      for (let at = 0; at < live.length; at += RESTORE_CHUNK) {
        const chunk = live.slice(at, at + RESTORE_CHUNK);
        const args: (string | Buffer)[] = chunk.map((k) => c.keys.entry(k.key));
        args.push(replace ? '1' : '0');
        for (const k of chunk) args.push(String(k.expireAt), k.dump);
        calls.push(c.scripts.restoreMany(chunk.length, ...args));
      }
      let restored = 0;
      for (const n of await Promise.all(calls)) restored += n;
      return { restored, existing: live.length - restored, expired };
    }
    const calls = live.map((k) => {
      const full = c.keys.entry(k.key);
      const p = replace
        ? c.client.restore(full, k.expireAt, k.dump, 'REPLACE', 'ABSTTL')
        : c.client.restore(full, k.expireAt, k.dump, 'ABSTTL');
      return p.then(
        () => 1,
        (error: unknown) => {
          if (error instanceof Error && error.message.startsWith('BUSYKEY')) return 0;
          throw error;
        },
      );
    });
    let restored = 0;
    for (const n of await Promise.all(calls)) restored += n;
    return { restored, existing: live.length - restored, expired };
  });
}

/** What a backup records of the source: generations, walk counters, the bus position, the server version. */
export interface BackupPoint {
  readonly generations: ReadonlyMap<string, number>;
  readonly invalidations: ReadonlyMap<string, number>;
  /** The last bus stream id ('0-0' without a stream): later events happened after the backup. */
  readonly busId: string;
  readonly redisVersion: string;
}

export function backupPoint(c: L2Connection, namespaces: readonly string[]): Promise<Result<BackupPoint>> {
  return c.guard.run(async () => {
    const [gens, invs, last, info] = await Promise.all([
      c.client.hgetall(c.keys.generations),
      Promise.all(namespaces.map((ns) => c.client.get(c.keys.invalidations(ns)))),
      c.client.xrevrange(c.keys.bus, '+', '-', 'COUNT', 1),
      (masters(c.client)[0] ?? c.client).info('server'),
    ]);
    const generations = new Map(Object.entries(gens).map(([ns, g]) => [ns, Number(g)]));
    const invalidations = new Map(namespaces.map((ns, i) => [ns, Number(invs[i] ?? 0)]));
    const redisVersion = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
    return { generations, invalidations, busId: last[0]?.[0] ?? '0-0', redisVersion };
  });
}

/** The bus events after `afterId` (JSON, unparsed), and whether the stream still holds all of them. */
export function busSince(
  c: L2Connection,
  afterId: string,
): Promise<Result<{ readonly covered: boolean; readonly events: readonly string[] }>> {
  return c.guard.run(async () => {
    const exists = await c.client.exists(c.keys.bus);
    if (exists === 0) return { covered: true, events: [] };
    const info = (await c.client.call('XINFO', 'STREAM', c.keys.bus)) as unknown[];
    const at = info.indexOf('max-deleted-entry-id');
    const deleted = at >= 0 ? String(info[at + 1]) : '0-0';
    const covered = compareStreamIds(deleted, afterId) <= 0;
    const events: string[] = [];
    let from = `(${afterId}`;
    for (;;) {
      const page = await c.client.xrange(c.keys.bus, from, '+', 'COUNT', 1000);
      for (const [id, fields] of page) {
        const e = fields.indexOf('e');
        const json = e >= 0 ? fields[e + 1] : undefined;
        if (json !== undefined) events.push(json);
        from = `(${id}`;
      }
      if (page.length < 1000) break;
    }
    return { covered, events };
  });
}

/** Raises a namespace's generation to at least `generation` (gen-raise-1.lua); resolves the result. */
export function raiseGeneration(
  c: L2Connection,
  namespace: string,
  generation: number,
): Promise<Result<number>> {
  return c.guard.run(() => c.scripts.genRaise(c.keys.generations, namespace, generation));
}

/**
 * Takes (or, for the same `token`, keeps) `<prefix>__backup:lock` for `ttlMs`: one backup or
 * restore at a time. A job retried after its worker died holds its own token, so it takes its
 * lock back at once instead of waiting for it to expire.
 */
export function backupLock(c: L2Connection, token: string, ttlMs: number): Promise<Result<boolean>> {
  const key = c.keys.backupLock;
  return c.guard.run(async () => {
    if ((await c.client.set(key, token, 'PX', ttlMs, 'NX')) === 'OK') return true;
    if ((await c.client.get(key)) !== token) return false;
    await c.client.pexpire(key, ttlMs);
    return true;
  });
}

export function backupUnlock(c: L2Connection, token: string): Promise<Result<number>> {
  return c.guard.run(() => c.scripts.lockRelease(c.keys.backupLock, token));
}

/** The entry keys (relative to the prefix) a tag index set holds now. */
export function tagMembers(c: L2Connection, scoped: string): Promise<Result<string[]>> {
  return c.guard.run(async () =>
    (await c.client.smembers(c.keys.tag(scoped))).map((k) => k.slice(c.prefix.length)),
  );
}

/** SADDs full entry keys to their tags' index sets (tag-add-many-1.lua keeps each alive `ttlMs`). */
export function tagAddAll(
  c: L2Connection,
  byTag: ReadonlyMap<string, readonly string[]>,
  ttlMs: number,
): Promise<Result<number>> {
  const ttl = Math.max(1, Math.round(ttlMs));
  return c.guard.run(async () => {
    const calls: Promise<number>[] = [];
    for (const [tag, members] of byTag)
      for (let at = 0; at < members.length; at += 500)
        calls.push(c.scripts.tagAddMany(c.keys.tag(tag), ttl, ...members.slice(at, at + 500)));
    let n = 0;
    for (const x of await Promise.all(calls)) n += x;
    return n;
  });
}
