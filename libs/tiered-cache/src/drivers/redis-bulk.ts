import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CacheError } from '../errors.js';
import { isCluster, scanTargets, scripts } from '../redis/factory.js';
import { err, ok, type Result } from '../result.js';
import { escapeGlob, isTombstone, type RedisStore } from './redis.js';

/**
 * Bulk operations of the worker fleet on the cache Redis: warming batches, stepwise SCAN + UNLINK
 * over one master, hot-key counts. Each runs under the store's breaker and hang watchdog.
 */

/** Entries per warm script call: one EVALSHA writes them all, and no call holds Redis long. */
const WARM_CHUNK = 500;

/** What a warm batch saw before loading: each entry's current wire (null: absent) and the walk counter. */
export interface WarmSnapshot {
  readonly was: readonly (string | null)[];
  readonly inv: number;
}

export interface WarmEntry {
  /** Key without the store prefix (as the read-through uses it). */
  readonly key: string;
  readonly wire: string;
  readonly tags: readonly string[] | undefined;
}

export function warmSnapshot(
  store: RedisStore,
  namespace: string,
  keys: readonly string[],
): Promise<Result<WarmSnapshot>> {
  const client = store.client;
  const full = keys.map((k) => store.prefix + k);
  return store.guarded(async () => {
    const [was, inv] = await Promise.all([
      isCluster(client) ? Promise.all(full.map((k) => client.get(k))) : full.length ? client.mget(full) : [],
      client.get(store.keyOf('inv', namespace)),
    ]);
    return { was, inv: Number(inv ?? 0) };
  });
}

export interface WarmWriteResult {
  readonly written: number;
  /** Entries left unwritten because they changed since the snapshot (a write or an invalidation). */
  readonly changed: number;
  /** A pattern or tag invalidation of the namespace began since the snapshot: redo the batch. */
  readonly walked: boolean;
  /** Cluster only: keys written and then retracted because the walk counter moved. */
  readonly retracted: readonly string[];
}

/**
 * Writes a batch whose values were loaded after `snapshot`: each entry only if it is unchanged
 * since, and (single node) none if the walk counter moved — all in `warm-n.lua`. On a Cluster
 * entries and counter live in different slots: each entry is written by `fill-1.lua`, then the
 * counter is read again and, if it moved, the written entries are tombstoned and reported.
 */
export async function warmWrite(
  store: RedisStore,
  namespace: string,
  entries: readonly WarmEntry[],
  snapshot: WarmSnapshot,
  ttlMs: number,
): Promise<Result<WarmWriteResult>> {
  const client = store.client;
  const ttl = Math.max(1, Math.round(ttlMs));
  const cmds = scripts(client);
  // One call per tag of the batch, not one per entry and tag: it halved the warm with one tag each.
  const byTag = new Map<string, string[]>();
  for (const e of entries) {
    for (const tag of e.tags ?? []) {
      const members = byTag.get(tag);
      if (members === undefined) byTag.set(tag, [store.prefix + e.key]);
      else members.push(store.prefix + e.key);
    }
  }
  const tagAdds = (): Promise<number>[] =>
    [...byTag].flatMap(([tag, members]) => {
      const calls: Promise<number>[] = [];
      for (let at = 0; at < members.length; at += WARM_CHUNK)
        calls.push(cmds.tagAddMany(store.keyOf('tag', tag), ttl, ...members.slice(at, at + WARM_CHUNK)));
      return calls;
    });
  if (isCluster(client)) {
    const r = await store.guarded(() =>
      Promise.all([
        Promise.all(entries.map((e, i) => cmds.fill(store.prefix + e.key, was(snapshot, i), e.wire, ttl))),
        Promise.all(tagAdds()),
        // Read after the fills were sent: a walk that began before any of them is seen.
      ]).then(async ([fills]) => ({
        fills,
        inv: Number((await client.get(store.keyOf('inv', namespace))) ?? 0),
      })),
    );
    if (!r.ok) return r;
    const written = entries.filter((_, i) => r.value.fills[i] === 1).map((e) => e.key);
    if (r.value.inv !== snapshot.inv && written.length > 0) {
      const t = await store.invalidate(written);
      if (!t.ok) return t;
      return ok({ written: 0, changed: 0, walked: true, retracted: written });
    }
    return ok({
      written: written.length,
      changed: entries.length - written.length,
      walked: r.value.inv !== snapshot.inv,
      retracted: [],
    });
  }
  const inv = store.keyOf('inv', namespace);
  // Sent inside `guarded` only: with the breaker open nothing is sent (and nothing left unawaited).
  const send = (): Promise<number>[] => {
    const calls: Promise<number>[] = [];
    for (let at = 0; at < entries.length; at += WARM_CHUNK) {
      const chunk = entries.slice(at, at + WARM_CHUNK);
      const keys = chunk.map((e) => store.prefix + e.key);
      const args: string[] = [String(snapshot.inv), String(ttl)];
      chunk.forEach((e, j) => {
        args.push(fingerprint(snapshot.was[at + j] ?? null, e.wire), e.wire);
      });
      calls.push(cmds.warm(keys.length + 1, inv, ...keys, ...args));
    }
    return calls;
  };
  const r = await store.guarded(() => Promise.all([Promise.all(send()), Promise.all(tagAdds())]));
  if (!r.ok) return r;
  let written = 0;
  let walked = false;
  for (const n of r.value[0]) {
    if (n < 0) walked = true;
    else written += n;
  }
  return ok({ written, changed: walked ? 0 : entries.length - written, walked, retracted: [] });
}

function was(snapshot: WarmSnapshot, i: number): string {
  return snapshot.was[i] ?? '';
}

/**
 * '' for absent, a tombstone as is, '=' for a live value equal to the new one, '#' + SHA-1 for
 * another live value (warm-n.lua compares these).
 */
function fingerprint(wire: string | null, next: string): string {
  if (wire === null) return '';
  if (isTombstone(wire)) return wire;
  if (wire === next) return '=';
  return `#${createHash('sha1').update(wire).digest('hex')}`;
}

/** A cache master as the bulk walk names it: `host:port`. */
export function masterNames(store: RedisStore): string[] {
  return scanTargets(store.client).map(nodeName);
}

function nodeName(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

export interface UnlinkStep {
  /** SCAN cursor to continue from; '0' when the master has been walked completely. */
  readonly cursor: string;
  readonly scanned: number;
  readonly unlinked: number;
}

/**
 * One SCAN iteration on one master (`MATCH prefix + match`, never KEYS) and an UNLINK of what it
 * returned. Stateless: the caller keeps the cursor (a worker saves it in its job), and SCAN still
 * returns every key present for the whole walk when it is resumed after a crash.
 */
export function unlinkStep(
  store: RedisStore,
  master: string,
  match: string,
  cursor: string,
  count: number,
): Promise<Result<UnlinkStep>> {
  const node = scanTargets(store.client).find((n) => nodeName(n) === master);
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
  return store.guarded(async () => {
    const [next, keys] = await node.scan(cursor, 'MATCH', escapeGlob(store.prefix) + match, 'COUNT', count);
    let unlinked = 0;
    if (keys.length > 0) {
      if (isCluster(store.client)) {
        // Keys of one master span many slots: one UNLINK each, pipelined to that master.
        const counts = await Promise.all(keys.map((k) => node.unlink(k)));
        for (const c of counts) unlinked += c;
      } else unlinked = await node.unlink(...keys);
    }
    return { cursor: next, scanned: keys.length, unlinked };
  });
}

/** Adds sampled read counts to each namespace's hot set, then trims it to the top `keep`. */
export async function flushHotCounts(
  store: RedisStore,
  counts: ReadonlyMap<string, ReadonlyMap<string, number>>,
  scale: number,
  keep: number,
): Promise<Result<number>> {
  const client = store.client;
  return store.guarded(async () => {
    const calls: Promise<unknown>[] = [];
    let n = 0;
    for (const [namespace, ids] of counts) {
      const key = store.keyOf('hot', namespace);
      for (const [id, c] of ids) {
        calls.push(client.zincrby(key, c * scale, id));
        n++;
      }
      calls.push(client.zremrangebyrank(key, 0, -(keep + 1)));
    }
    await Promise.all(calls);
    return n;
  });
}

export interface HotKey {
  readonly id: string;
  /** Sampled reads (scaled to an estimate of all reads), decayed by each hot warm. */
  readonly score: number;
}

export function topHotKeys(store: RedisStore, namespace: string, n: number): Promise<Result<HotKey[]>> {
  if (n < 1) return Promise.resolve(ok([]));
  return store.guarded(async () => {
    const flat = await store.client.zrevrange(store.keyOf('hot', namespace), 0, n - 1, 'WITHSCORES');
    const out: HotKey[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      out.push({ id: flat[i] as string, score: Number(flat[i + 1]) });
    return out;
  });
}

/** Multiplies every score by `factor` (< 1) and drops ids that fell below one read. */
export function decayHotKeys(store: RedisStore, namespace: string, factor: number): Promise<Result<number>> {
  const key = store.keyOf('hot', namespace);
  return store.guarded(async () => {
    await store.client.zunionstore(key, 1, key, 'WEIGHTS', factor);
    return store.client.zremrangebyscore(key, '-inf', '(1');
  });
}
