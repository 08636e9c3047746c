import { createHash } from 'node:crypto';
import { ok, type Result } from '../../result.js';
import { isTombstone } from '../codec.js';
import type { L2Connection } from './connection.js';
import type { Fencing } from './fencing.js';
import type { CacheScripts } from './scripts.js';

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
  /** This entry's TTL (spread, plus grace), ms; the batch's `ttlMs` when absent. */
  readonly ttlMs?: number;
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

export function warmSnapshot(
  c: L2Connection,
  namespace: string,
  keys: readonly string[],
): Promise<Result<WarmSnapshot>> {
  const full = keys.map((k) => c.keys.entry(k));
  const counter = c.keys.invalidations(namespace);
  if (!c.cluster) {
    return c.guard.run(async () => {
      const [was, inv] = await sent(c.client.pipeline().mget(full).get(counter));
      if (!Array.isArray(was) || was.length !== full.length)
        throw new TypeError('warm snapshot: not one reply a key');
      return { was: was.map((w) => (typeof w === 'string' ? w : null)), inv: Number(inv ?? 0) };
    });
  }
  return c.guard.run(async () => {
    const [was, inv] = await Promise.all([c.getAll(full), c.client.get(counter)]);
    return { was, inv: Number(inv ?? 0) };
  });
}

type Pipeline = ReturnType<L2Connection['client']['pipeline']>;

/** The cache's scripts queued on a pipeline (each call queues one; the replies come from `exec`). */
type Queued<C> = {
  readonly [K in keyof C]: C[K] extends (...args: infer A) => unknown ? (...args: A) => void : never;
};

/**
 * Sends a warm batch's commands as an explicit pipeline: written to the socket at once. Through
 * auto-pipelining they would wait for the auto-pipeline in flight (ioredis sends one at a time per
 * connection), and the batches a full warm keeps in flight would reach Redis in lock-step with
 * Node's encoding instead of beside it (docs/benchmarks.md, "Warm into L2"). A reply that is an
 * error fails the whole call, as it did awaited alone.
 */
async function sent(pipeline: Pipeline): Promise<unknown[]> {
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, reply]) => {
    if (error !== null) throw error;
    return reply;
  });
}

function count(reply: unknown): number {
  if (typeof reply !== 'number') throw new TypeError(`warm script: not a number: ${String(reply)}`);
  return reply;
}

/**
 * Writes a batch whose values were loaded after `snapshot`: each entry only if it is unchanged
 * since, and (single node) none if the walk counter moved — all in `warm-n.lua`. On a Cluster
 * entries and counter live in different slots: each entry is written by `fill-n.lua` with one
 * key, then the counter is read again and, if it moved, the written entries are tombstoned and
 * reported.
 */
export async function warmWrite(
  c: L2Connection,
  fence: Fencing,
  namespace: string,
  entries: readonly WarmEntry[],
  snapshot: WarmSnapshot,
  ttlMs: number,
): Promise<Result<WarmWriteResult>> {
  const ttl = Math.max(1, Math.round(ttlMs));
  const ttlOf = (e: WarmEntry) => (e.ttlMs === undefined ? ttl : Math.max(1, Math.round(e.ttlMs)));
  // Tag sets must outlive the longest entry they index.
  const tagTtl = entries.reduce((m, e) => Math.max(m, ttlOf(e)), ttl);
  const cmds = c.scripts;
  // One call per tag of the batch, not one per entry and tag: it halved the warm with one tag each.
  const byTag = new Map<string, string[]>();
  for (const e of entries) {
    for (const tag of e.tags ?? []) {
      const members = byTag.get(tag);
      if (members === undefined) byTag.set(tag, [c.keys.entry(e.key)]);
      else members.push(c.keys.entry(e.key));
    }
  }
  /** Each tag-add-many call of the batch: the tag's key and up to WARM_CHUNK of its members. */
  const tagChunks = (): [string, string[]][] =>
    [...byTag].flatMap(([tag, members]) => {
      const calls: [string, string[]][] = [];
      for (let at = 0; at < members.length; at += WARM_CHUNK)
        calls.push([c.keys.tag(tag), members.slice(at, at + WARM_CHUNK)]);
      return calls;
    });
  const inv = c.keys.invalidations(namespace);
  if (c.cluster) {
    const r = await c.guard.run(() =>
      Promise.all([
        Promise.all(
          entries.map((e, i) => cmds.fill(c.keys.entry(e.key), snapshot.was[i] ?? '', e.wire, ttlOf(e))),
        ),
        Promise.all(tagChunks().map(([key, members]) => cmds.tagAddMany(key, tagTtl, ...members))),
        // Read after the fills were sent: a walk that began before any of them is seen.
      ]).then(async ([fills]) => ({ fills, inv: Number((await c.client.get(inv)) ?? 0) })),
    );
    if (!r.ok) return r;
    const written = entries.filter((_, i) => r.value.fills[i] === 1).map((e) => e.key);
    if (r.value.inv !== snapshot.inv && written.length > 0) {
      const t = await fence.invalidate(written);
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
  // Entries absent from the snapshot need no compare, only SET NX (warm-absent-n.lua: one
  // redis.call and two arguments an entry); the others (live values, tombstones) warm-n.lua's
  // compare-and-set. Both check the walk counter first, in the same call.
  const absent: WarmEntry[] = [];
  const present: WarmEntry[] = [];
  const presentWas: (string | null)[] = [];
  entries.forEach((e, i) => {
    const was = snapshot.was[i] ?? null;
    if (was === null) absent.push(e);
    else {
      present.push(e);
      presentWas.push(was);
    }
  });
  // Sent inside `run` only: with the breaker open nothing is sent. The warm scripts first, then
  // one tag-add-many per tag and chunk, in one pipeline (see `sent`).
  const send = (): Promise<number[]> => {
    const pipeline = c.client.pipeline();
    const queue = pipeline as unknown as Queued<CacheScripts>;
    for (let at = 0; at < present.length; at += WARM_CHUNK) {
      const chunk = present.slice(at, at + WARM_CHUNK);
      const keys = chunk.map((e) => c.keys.entry(e.key));
      const args: string[] = [String(snapshot.inv)];
      chunk.forEach((e, j) => {
        args.push(fingerprint(presentWas[at + j] ?? null, e.wire), e.wire, String(ttlOf(e)));
      });
      queue.warm(keys.length + 1, inv, ...keys, ...args);
    }
    for (let at = 0; at < absent.length; at += WARM_CHUNK) {
      const chunk = absent.slice(at, at + WARM_CHUNK);
      const args: string[] = [String(snapshot.inv)];
      for (const e of chunk) args.push(e.wire, String(ttlOf(e)));
      queue.warmAbsent(chunk.length + 1, inv, ...chunk.map((e) => c.keys.entry(e.key)), ...args);
    }
    for (const [key, members] of tagChunks()) queue.tagAddMany(key, tagTtl, ...members);
    // The warm scripts' replies (the tag adds' are only checked for errors).
    const warmCalls = Math.ceil(present.length / WARM_CHUNK) + Math.ceil(absent.length / WARM_CHUNK);
    return sent(pipeline).then((replies) => replies.slice(0, warmCalls).map(count));
  };
  const r = await c.guard.run(send);
  if (!r.ok) return r;
  let written = 0;
  let walked = false;
  for (const n of r.value) {
    if (n < 0) walked = true;
    else written += n;
  }
  return ok({ written, changed: walked ? 0 : entries.length - written, walked, retracted: [] });
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
