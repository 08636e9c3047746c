import { findMaster, isCluster, masterName, masters, scanMasters, scanStep } from '@cachefleet/redis';
import { CacheError } from '../../errors.js';
import { err, ok, type Result } from '../../result.js';
import type { L2Connection } from './connection.js';
import type { Fencing } from './fencing.js';
import {
  type BackupPoint,
  backupLock,
  backupPoint,
  backupUnlock,
  busSince,
  countKeys,
  type DumpedKey,
  type DumpStep,
  dumpStep,
  keyCount,
  type MigratePair,
  type MigrateRead,
  type MigrateWrite,
  migrateRead,
  migrateWrite,
  type RestoreResult,
  raiseGeneration,
  restoreKeys,
  type SweepStep,
  sweepStep,
  tagAddAll,
  tagMembers,
} from './lifecycle.js';
import { type WarmEntry, type WarmSnapshot, type WarmWriteResult, warmSnapshot, warmWrite } from './warm.js';

const CLUSTER_SLOTS = 16_384;

export interface UnlinkStep {
  /** SCAN cursor to continue from; '0' when the master has been walked completely. */
  readonly cursor: string;
  readonly scanned: number;
  readonly unlinked: number;
}

export interface HotKey {
  readonly id: string;
  /** Sampled reads (scaled to an estimate of all reads), decayed by each hot warm. */
  readonly score: number;
}

/**
 * Bulk operations of the worker fleet on the cache Redis: warming batches, stepwise SCAN + UNLINK
 * over one master, hot-key counts. Each runs under the store's breaker and hang watchdog.
 */
export class Bulk {
  readonly #c: L2Connection;
  readonly #fence: Fencing;

  constructor(connection: L2Connection, fence: Fencing) {
    this.#c = connection;
    this.#fence = fence;
  }

  /** Reads the entries a warm batch will write and the walk counter, before loading. */
  warmSnapshot(namespace: string, keys: readonly string[]): Promise<Result<WarmSnapshot>> {
    return warmSnapshot(this.#c, namespace, keys);
  }

  /** Writes a warm batch loaded after `snapshot`, fenced like a read-through fill (warm.ts). */
  warmWrite(
    namespace: string,
    entries: readonly WarmEntry[],
    snapshot: WarmSnapshot,
    ttlMs: number,
  ): Promise<Result<WarmWriteResult>> {
    return warmWrite(this.#c, this.#fence, namespace, entries, snapshot, ttlMs);
  }

  /** The cache masters a bulk walk visits, as `host:port`. */
  masterNames(): string[] {
    return masters(this.#c.client).map(masterName);
  }

  /**
   * Whether every one of the 16,384 slots is owned by a master the client knows (always, off a
   * Cluster). Not during a failover: the dead master has left the list while its replica is not
   * promoted yet, and a walk of the masters listed then would miss its slots. When not, the client
   * is asked to read the slot map again: walks address masters directly, never by slot, so no
   * MOVED reply would ever tell it of the new master.
   */
  coversAllSlots(names: readonly string[]): boolean {
    const client = this.#c.client;
    if (!isCluster(client)) return true;
    const known = new Set(names);
    for (let slot = 0; slot < CLUSTER_SLOTS; slot++) {
      const owner = client.slots[slot]?.[0];
      if (owner === undefined || !known.has(owner)) {
        client.refreshSlotsCache();
        return false;
      }
    }
    return true;
  }

  /**
   * One SCAN iteration on one master (`MATCH prefix + match`, never KEYS) and an UNLINK of what it
   * returned. Stateless: the caller keeps the cursor (a worker saves it in its job), and SCAN still
   * returns every key present for the whole walk when it is resumed after a crash.
   */
  unlinkStep(master: string, match: string, cursor: string, count: number): Promise<Result<UnlinkStep>> {
    const c = this.#c;
    const node = findMaster(c.client, master);
    if (node === undefined) {
      // Not a Redis fault (the breaker must not count it): the topology changed since the walk began.
      return Promise.resolve(
        err(
          new CacheError(
            'E_CACHE_L2_UNAVAILABLE',
            `no cache master ${master} (failover since the walk began?)`,
          ),
        ),
      );
    }
    return c.guard.run(async () => {
      const step = await scanStep(node, c.keys.entryMatch(match), cursor, count);
      const keys = step.keys;
      let unlinked = 0;
      if (keys.length > 0) {
        if (c.cluster) {
          // Keys of one master span many slots: one UNLINK each, pipelined to that master.
          const counts = await Promise.all(keys.map((k) => node.unlink(k)));
          for (const n of counts) unlinked += n;
        } else unlinked = await node.unlink(...keys);
      }
      return { cursor: step.cursor, scanned: keys.length, unlinked };
    });
  }

  /** A migration step's read: SCAN on `master`, the walk counter, GET + PTTL of the keys `keep` picks. */
  migrateRead(
    namespace: string,
    master: string,
    match: string,
    cursor: string,
    count: number,
    keep: (fullKey: string) => boolean,
  ): Promise<Result<MigrateRead>> {
    return migrateRead(this.#c, namespace, master, match, cursor, count, keep);
  }

  /** A migration step's fenced write (lifecycle.ts). */
  migrateWrite(namespace: string, pairs: readonly MigratePair[], inv: number): Promise<Result<MigrateWrite>> {
    return migrateWrite(this.#c, this.#fence, namespace, pairs, inv);
  }

  /** Keys in the database on every master (DBSIZE): an upper bound of any namespace's count. */
  keyCount(): Promise<Result<number>> {
    return keyCount(this.#c);
  }

  /** Keys matching on every master (SCAN only), for a progress total. */
  countKeys(match: string, keep: (fullKey: string) => boolean): Promise<Result<number>> {
    return countKeys(this.#c, match, keep);
  }

  /** One SCAN step on `master` and an UNLINK of the keys `unreachable` picks. */
  sweepStep(
    master: string,
    match: string,
    cursor: string,
    count: number,
    unreachable: (fullKey: string) => boolean,
  ): Promise<Result<SweepStep>> {
    return sweepStep(this.#c, master, match, cursor, count, unreachable);
  }

  /** One SCAN step on `master` with DUMP + PTTL of the keys found (a backup's step). */
  dumpStep(master: string, match: string, cursor: string, count: number): Promise<Result<DumpStep>> {
    return dumpStep(this.#c, master, match, cursor, count);
  }

  /** RESTORE of backed-up keys with their absolute expiry. */
  restoreKeys(keys: readonly DumpedKey[], replace: boolean): Promise<Result<RestoreResult>> {
    return restoreKeys(this.#c, keys, replace);
  }

  backupPoint(namespaces: readonly string[]): Promise<Result<BackupPoint>> {
    return backupPoint(this.#c, namespaces);
  }

  busSince(
    afterId: string,
  ): Promise<Result<{ readonly covered: boolean; readonly events: readonly string[] }>> {
    return busSince(this.#c, afterId);
  }

  backupLock(token: string, ttlMs: number): Promise<Result<boolean>> {
    return backupLock(this.#c, token, ttlMs);
  }

  backupUnlock(token: string): Promise<Result<number>> {
    return backupUnlock(this.#c, token);
  }

  tagAddAll(byTag: ReadonlyMap<string, readonly string[]>, ttlMs: number): Promise<Result<number>> {
    return tagAddAll(this.#c, byTag, ttlMs);
  }

  tagMembers(scoped: string): Promise<Result<string[]>> {
    return tagMembers(this.#c, scoped);
  }

  raiseGeneration(namespace: string, generation: number): Promise<Result<number>> {
    return raiseGeneration(this.#c, namespace, generation);
  }

  /** Adds sampled read counts to each namespace's hot set, then trims it to the top `keep`. */
  flushHotCounts(
    counts: ReadonlyMap<string, ReadonlyMap<string, number>>,
    scale: number,
    keep: number,
  ): Promise<Result<number>> {
    const c = this.#c;
    return c.guard.run(async () => {
      const calls: Promise<unknown>[] = [];
      let n = 0;
      for (const [namespace, ids] of counts) {
        const key = c.keys.hot(namespace);
        for (const [id, count] of ids) {
          calls.push(c.client.zincrby(key, count * scale, id));
          n++;
        }
        calls.push(c.client.zremrangebyrank(key, 0, -(keep + 1)));
      }
      await Promise.all(calls);
      return n;
    });
  }

  topHotKeys(namespace: string, n: number): Promise<Result<HotKey[]>> {
    if (n < 1) return Promise.resolve(ok([]));
    const c = this.#c;
    return c.guard.run(async () => {
      const flat = await c.client.zrevrange(c.keys.hot(namespace), 0, n - 1, 'WITHSCORES');
      const out: HotKey[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2)
        out.push({ id: flat[i] as string, score: Number(flat[i + 1]) });
      return out;
    });
  }

  /** Multiplies every score by `factor` (< 1) and drops ids that fell below one read. */
  decayHotKeys(namespace: string, factor: number): Promise<Result<number>> {
    const c = this.#c;
    const key = c.keys.hot(namespace);
    return c.guard.run(async () => {
      await c.client.zunionstore(key, 1, key, 'WEIGHTS', factor);
      return c.client.zremrangebyscore(key, '-inf', '(1');
    });
  }

  /** Namespaces that have a hot set, found with SCAN on every master (at least `limit` when there are). */
  hotNamespaces(limit: number): Promise<Result<string[]>> {
    const c = this.#c;
    const found = new Set<string>();
    return c.guard.run(async () => {
      await scanMasters(
        c.client,
        c.keys.hotMatch,
        (keys) => {
          for (const key of keys) found.add(c.keys.hotNamespace(key));
          return 0;
        },
        { tracker: c.guard.watchdog, enough: () => found.size >= limit },
      );
      return [...found].sort();
    });
  }
}
