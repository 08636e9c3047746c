import { createHash } from 'node:crypto';
import { ok, type Result } from '../../result.js';
import { isTombstone, newTombstone } from '../codec.js';
import type { L2Connection } from './connection.js';
import type { Fencing } from './fencing.js';
import { WARM_GATE_LUA } from './scripts.js';

/** Entries per warm script call: one EVALSHA writes them all, and no call holds Redis long. */
const WARM_CHUNK = 500;

/**
 * Entries per warm transaction (absent entries, a native SET NX each, ~2 µs of Redis): a warm
 * batch of 1,000 in one, which holds Redis about as long as a warm-n.lua call of 500.
 */
const WARM_TX_CHUNK = 1_000;

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
  return c.guard.run(async () => {
    const [was, inv] = await Promise.all([c.getAll(full), c.client.get(c.keys.invalidations(namespace))]);
    return { was, inv: Number(inv ?? 0) };
  });
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
  const tagAdds = (): Promise<number>[] =>
    [...byTag].flatMap(([tag, members]) => {
      const calls: Promise<number>[] = [];
      for (let at = 0; at < members.length; at += WARM_CHUNK)
        calls.push(cmds.tagAddMany(c.keys.tag(tag), tagTtl, ...members.slice(at, at + WARM_CHUNK)));
      return calls;
    });
  const inv = c.keys.invalidations(namespace);
  if (c.cluster) {
    const r = await c.guard.run(() =>
      Promise.all([
        Promise.all(
          entries.map((e, i) => cmds.fill(c.keys.entry(e.key), snapshot.was[i] ?? '', e.wire, ttlOf(e))),
        ),
        Promise.all(tagAdds()),
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
  // Entries absent from the snapshot go through a transaction of native SET NX (warm-gate-1.lua);
  // the others (live values, tombstones) through warm-n.lua's compare-and-set.
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
  // Sent inside `run` only: with the breaker open nothing is sent (and nothing left unawaited).
  const send = (): Promise<number>[] => {
    const calls: Promise<number>[] = [];
    for (let at = 0; at < present.length; at += WARM_CHUNK) {
      const chunk = present.slice(at, at + WARM_CHUNK);
      const keys = chunk.map((e) => c.keys.entry(e.key));
      const args: string[] = [String(snapshot.inv)];
      chunk.forEach((e, j) => {
        args.push(fingerprint(presentWas[at + j] ?? null, e.wire), e.wire, String(ttlOf(e)));
      });
      calls.push(cmds.warm(keys.length + 1, inv, ...keys, ...args));
    }
    for (let at = 0; at < absent.length; at += WARM_TX_CHUNK)
      calls.push(
        setAbsent(
          c,
          namespace,
          snapshot.inv,
          absent.slice(at, at + WARM_TX_CHUNK),
          ttlOf,
          fence.tombstoneTtlMs,
        ),
      );
    return calls;
  };
  const r = await c.guard.run(() => Promise.all([Promise.all(send()), Promise.all(tagAdds())]));
  if (!r.ok) return r;
  let written = 0;
  let walked = false;
  for (const n of r.value[0]) {
    if (n < 0) walked = true;
    else written += n;
  }
  return ok({ written, changed: walked ? 0 : entries.length - written, walked, retracted: [] });
}

/**
 * Writes entries that were absent when the warm read them, each only if still absent (`SET NX`,
 * native: no Lua a key), none if the walk counter moved: MULTI, warm-gate-1.lua, the SETs,
 * warm-gate-1.lua, EXEC (the script's header says how). Resolves how many were written, or -1
 * if the counter moved (nothing written).
 */
async function setAbsent(
  c: L2Connection,
  namespace: string,
  inv: number,
  chunk: readonly WarmEntry[],
  ttlOf: (e: WarmEntry) => number,
  placeholderTtlMs: number,
): Promise<number> {
  const keys = chunk.map((e) => c.keys.entry(e.key));
  const base = commonStart(keys);
  const list = JSON.stringify([base, ...keys.map((k) => k.slice(base.length))]);
  const gate = [c.keys.invalidations(namespace), c.keys.warmGate(namespace), String(inv), newTombstone()];
  const tx = c.client.multi();
  tx.eval(WARM_GATE_LUA, 2, ...gate, '1', placeholderTtlMs, list);
  chunk.forEach((e, i) => {
    tx.set(keys[i] as string, e.wire, 'PX', ttlOf(e), 'NX');
  });
  tx.eval(WARM_GATE_LUA, 2, ...gate, '0');
  const replies = await c.guard.track(tx.exec());
  if (replies === null) throw new Error('warm transaction discarded');
  const [gateError, gated] = replies[0] ?? [new Error('warm transaction: no reply'), null];
  let written = 0;
  let error: Error | null = null;
  for (let i = 1; i <= chunk.length + 1; i++) {
    const [e, reply] = replies[i] ?? [null, null];
    error ??= e;
    if (reply === 'OK') written++;
  }
  if (gateError !== null) {
    // Not expected (a broken counter key?): the SETs ran unfenced, so take back what they wrote.
    await Promise.all(chunk.map((e, i) => c.scripts.deleteIf(keys[i] as string, e.wire)));
    throw gateError;
  }
  if (error !== null) throw error;
  return gated === 0 ? written : -1;
}

/** The longest start the strings share (never half a surrogate pair: each part stays valid UTF-16). */
function commonStart(strings: readonly string[]): string {
  let n = (strings[0] ?? '').length;
  const first = strings[0] ?? '';
  for (const s of strings) {
    let i = 0;
    while (i < n && i < s.length && s.charCodeAt(i) === first.charCodeAt(i)) i++;
    n = i;
  }
  const last = first.charCodeAt(n - 1);
  if (last >= 0xd800 && last <= 0xdbff) n--;
  return first.slice(0, n);
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
