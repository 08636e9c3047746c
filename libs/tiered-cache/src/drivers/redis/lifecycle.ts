import { findMaster, scanMasters, scanStep } from '@cachefleet/redis';
import { CacheError } from '../../errors.js';
import { err, ok, type Result } from '../../result.js';
import type { L2Connection } from './connection.js';
import type { Fencing } from './fencing.js';

/**
 * The cache Redis side of the lifecycle jobs (docs/design-lifecycle.md): reading a migration step's
 * old entries with their remaining TTL, writing the new ones fenced, and the sweep's SCAN + UNLINK
 * of keys no pod can reach. Every call runs under the store's breaker and hang watchdog.
 */

/** Pairs per migrate-n.lua call: one EVALSHA writes them all, and no call holds Redis long. */
const MIGRATE_CHUNK = 250;

/** An old entry as a migration step read it: its wire (null: gone) and its PTTL (ms; < 0: none). */
export interface ReadEntry {
  readonly wire: string | null;
  readonly pttl: number;
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

/** One SCAN step on `master`, then the walk counter and GET + PTTL of every key found (pipelined). */
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
    // The counter first: a walk that begins after this read is seen by the write.
    const inv = Number((await c.client.get(c.keys.invalidations(namespace))) ?? 0);
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
 * if the walk counter moved (migrate-n.lua). On a Cluster the keys span slots: each new entry is
 * written by the fill compare-and-set (absent → value), then the old entries are read again and
 * new entries whose old one changed are tombstoned. Then, on both, the tags are added and the
 * counter read again: if it moved, every entry written is tombstoned (a tag walk may have missed
 * it) and the step reports `walked`, to be done again.
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
  const codes: number[] = new Array(pairs.length).fill(0);
  let walked = false;
  const w = await c.guard.run(async () => {
    if (c.cluster) {
      const filled = await Promise.all(pairs.map((p) => cmds.fill(p.newKey, '', p.wire, p.ttlMs)));
      const now = await c.getAll(pairs.map((p) => p.oldKey));
      const retract: string[] = [];
      pairs.forEach((p, i) => {
        if (filled[i] !== 1) codes[i] = 2;
        else if (now[i] !== p.was) {
          codes[i] = 0;
          retract.push(p.newKey);
        } else codes[i] = 1;
      });
      if (retract.length > 0) await fence.tombstone(retract);
      return;
    }
    const calls: Promise<number | number[]>[] = [];
    for (let at = 0; at < pairs.length; at += MIGRATE_CHUNK) {
      const chunk = pairs.slice(at, at + MIGRATE_CHUNK);
      const keys = chunk.flatMap((p) => [p.oldKey, p.newKey]);
      const args = chunk.flatMap((p) => [p.was, p.wire, String(Math.max(1, Math.round(p.ttlMs)))]);
      calls.push(cmds.migrate(keys.length + 1, counter, ...keys, String(inv), ...args));
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
  const written = pairs.filter((_, i) => codes[i] === 1);
  const t = await c.guard.run(async () => {
    const byTag = new Map<string, { members: string[]; ttl: number }>();
    for (const p of written) {
      for (const tag of p.tags ?? []) {
        const into = byTag.get(tag);
        if (into === undefined) byTag.set(tag, { members: [p.newKey], ttl: p.ttlMs });
        else {
          into.members.push(p.newKey);
          into.ttl = Math.max(into.ttl, p.ttlMs);
        }
      }
    }
    await Promise.all(
      [...byTag].map(([tag, { members, ttl }]) =>
        cmds.tagAddMany(c.keys.tag(tag), Math.max(1, Math.round(ttl)), ...members),
      ),
    );
    return Number((await c.client.get(counter)) ?? 0);
  });
  if (!t.ok) return t;
  if (walked || t.value !== inv) {
    if (written.length > 0) {
      const r = await c.guard.run(() => fence.tombstone(written.map((p) => p.newKey)));
      if (!r.ok) return r;
    }
    return ok({ written: 0, changed: 0, present: 0, walked: true });
  }
  let changed = 0;
  let present = 0;
  for (const code of codes) {
    if (code === 0) changed++;
    else if (code === 2) present++;
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
