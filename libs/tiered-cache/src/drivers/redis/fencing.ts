import { scanMasters } from '@cachefleet/redis';
import { ok, type Result } from '../../result.js';
import { newTombstone } from '../codec.js';
import { type L2Connection, UNLINK_BATCH } from './connection.js';

interface FencingOptions {
  /** Lifetime of an invalidation tombstone; fills older than this never write. */
  readonly tombstoneTtlMs: number;
  readonly maxPendingDeletes: number;
}

/**
 * An invalidation's event written by the same script as its tombstones (invalidate-publish-n.lua):
 * built by the bus (EventBus.inline), which is told the stream id once the script ran (on a
 * Cluster it never runs: the caller then announces the event itself).
 */
export interface InlineEvent {
  readonly stream: string;
  readonly channel: string;
  readonly maxLen: number;
  /** The event, JSON. */
  readonly json: string;
  published(id: string): void;
}

export interface DeleteStats {
  /** Deletes that could not reach Redis and were replayed after it came back. */
  replayedDeletes: number;
  /** Deletes dropped because the replay list was full (documented limit). */
  droppedDeletes: number;
}

/**
 * How L2 keeps invalidations ahead of fills (DESIGN invariant 2): tombstones instead of deletes,
 * compare-and-set fills, the per-namespace walk counter, namespace generations, and the deletes
 * that could not reach Redis, kept and replayed once it answers (an invalidation made during an
 * outage is not lost). See docs/design-coherence.md.
 */
export class Fencing {
  /** Full keys whose invalidation has not reached Redis yet: reads treat them as misses. */
  readonly pending = new Set<string>();
  /**
   * Whether `fill` checks the walk counter in the same script as the entry. Not on Cluster (two
   * slots): there the read-through checks it after writing and retracts, announcing the retraction.
   */
  readonly fencesWalks: boolean;
  readonly #c: L2Connection;
  readonly #opts: FencingOptions;
  readonly #stats: DeleteStats;
  /** Callers waiting for pending keys to be written (`whenWritten`). */
  readonly #waiters = new Set<{ readonly keys: readonly string[]; readonly resolve: () => void }>();
  #replaying = false;

  constructor(connection: L2Connection, options: FencingOptions, stats: DeleteStats) {
    this.#c = connection;
    this.#opts = options;
    this.#stats = stats;
    this.fencesWalks = !connection.cluster;
  }

  /**
   * A read-through fill: written only if the entry is still what the miss saw (`expected`: ''
   * for no key, or the tombstone read) and, given `inv` (the namespace's walk counter read before
   * loading) and `fencesWalks`, only if no pattern or tag invalidation began since. Resolves false
   * when an invalidation got there first.
   */
  async fill(
    key: string,
    expected: string,
    wire: string,
    ttlMs: number,
    tags?: readonly string[],
    fence?: { readonly namespace: string; readonly inv: number },
  ): Promise<Result<boolean>> {
    const c = this.#c;
    const full = c.keys.entry(key);
    const ttl = Math.max(1, Math.round(ttlMs));
    const r = await c.guard.run(() =>
      Promise.all([
        fence !== undefined && this.fencesWalks
          ? c.scripts.fillFenced(full, c.keys.invalidations(fence.namespace), expected, wire, ttl, fence.inv)
          : c.scripts.fill(full, expected, wire, ttl),
        ...c.tagAdds(full, ttlMs, tags),
      ]),
    );
    return r.ok ? ok(r.value[0] === 1) : r;
  }

  /**
   * Replaces entries by unique tombstones: a fill that started before this call finds a different
   * value at its compare-and-set and does not write. Resolves how many live values were replaced.
   * A call Redis cannot take is remembered and replayed. With `inline` (not on a Cluster: the
   * stream is in another slot), the same script then publishes the invalidation's event: a fault
   * means neither was done for sure, and the caller announces after the replay as it would have
   * without it.
   */
  async invalidate(keys: readonly string[], inline?: InlineEvent): Promise<Result<number>> {
    if (keys.length === 0) return ok(0);
    const full = keys.map((k) => this.#c.keys.entry(k));
    return this.#c.guard.run(
      () =>
        inline !== undefined && !this.#c.cluster
          ? this.#tombstoneAndPublish(full, inline)
          : this.tombstone(full),
      () => this.remember(full),
    );
  }

  async #tombstoneAndPublish(fullKeys: readonly string[], e: InlineEvent): Promise<number> {
    const c = this.#c;
    const tombstones = fullKeys.map(() => newTombstone());
    const reply = await c.guard.track(
      c.scripts.invalidatePublish(
        fullKeys.length + 1,
        e.stream,
        ...fullKeys,
        e.channel,
        e.maxLen,
        e.json,
        this.#opts.tombstoneTtlMs,
        ...tombstones,
      ),
    );
    const [replaced, id] = Array.isArray(reply) ? reply : [];
    if (typeof replaced !== 'number' || typeof id !== 'string')
      throw new Error(`invalidate-publish-n.lua: unexpected reply ${JSON.stringify(reply)}`);
    e.published(id);
    return replaced;
  }

  /** Tombstones full keys (one script call each, auto-pipelined); resolves the live values replaced. */
  async tombstone(fullKeys: readonly string[]): Promise<number> {
    const c = this.#c;
    const ttl = this.#opts.tombstoneTtlMs;
    const counts = await c.guard.track(
      Promise.all(fullKeys.map((k) => c.scripts.invalidate(k, newTombstone(), ttl))),
    );
    let n = 0;
    for (const x of counts) n += x;
    return n;
  }

  /** Keeps deletes Redis could not take (up to maxPendingDeletes) for `replay`. */
  remember(fullKeys: readonly string[]): void {
    for (const k of fullKeys) {
      if (this.pending.size >= this.#opts.maxPendingDeletes) {
        this.#stats.droppedDeletes++;
        continue;
      }
      this.pending.add(k);
    }
  }

  /**
   * Resolves once none of these keys (as `invalidate` takes them) waits for replay: their
   * tombstones are written — or were never kept, the list being full. The cache publishes the
   * invalidation event of a delete that Redis could not take only then: sent earlier, another pod
   * would drop its L1 copy and read the old value back from L2.
   */
  whenWritten(keys: readonly string[]): Promise<void> {
    const full = keys.map((k) => this.#c.keys.entry(k));
    if (!full.some((k) => this.pending.has(k))) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ keys: full, resolve }));
  }

  #settle(): void {
    for (const w of this.#waiters) {
      if (w.keys.some((k) => this.pending.has(k))) continue;
      this.#waiters.delete(w);
      w.resolve();
    }
  }

  /** Keys leave the pending set only once their tombstone is written: until then reads treat them as misses. */
  async replay(): Promise<void> {
    if (this.pending.size === 0 || this.#replaying) return;
    this.#replaying = true;
    try {
      while (this.pending.size > 0) {
        const batch = [...this.pending].slice(0, UNLINK_BATCH);
        await this.tombstone(batch);
        for (const k of batch) this.pending.delete(k);
        this.#stats.replayedDeletes += batch.length;
        this.#settle();
      }
    } catch {
      // Still unreachable: the keys stay pending for the next 'ready' or breaker close.
    } finally {
      this.#replaying = false;
    }
  }

  /**
   * Tombstones every entry in the tags' indexes. SSCAN rather than SMEMBERS: a tag on a million
   * entries must not block Redis. The sets are kept: entries refilled meanwhile have added
   * themselves to them, and the next invalidation of the tag must find them (they expire with
   * their entries).
   */
  async invalidateTags(tags: readonly string[]): Promise<Result<number>> {
    const c = this.#c;
    return c.guard.run(async () => {
      let removed = 0;
      for (const tag of tags) {
        const tagKey = c.keys.tag(tag);
        let cursor = '0';
        do {
          const [next, members] = await c.guard.track(c.client.sscan(tagKey, cursor, 'COUNT', UNLINK_BATCH));
          cursor = next;
          if (members.length > 0) removed += await this.tombstone(members);
        } while (cursor !== '0');
      }
      return removed;
    });
  }

  /**
   * SCAN every master for `prefix + pattern` (never KEYS; the pattern cannot leave the prefix) and
   * tombstone what it finds, so concurrent fills are fenced. For pattern invalidations.
   */
  async invalidateMatching(pattern: string): Promise<Result<number>> {
    const c = this.#c;
    return c.guard.run(() =>
      scanMasters(c.client, c.keys.entryMatch(pattern), (keys) => this.tombstone(keys), {
        tracker: c.guard.watchdog,
      }),
    );
  }

  /** Current generation of every namespace that was ever invalidated as a whole. */
  async generations(): Promise<Result<Map<string, number>>> {
    const c = this.#c;
    const r = await c.guard.run(() => c.client.hgetall(c.keys.generations));
    return r.ok ? ok(new Map(Object.entries(r.value).map(([ns, g]) => [ns, Number(g)]))) : r;
  }

  /** O(1) invalidation of a whole namespace: its keys move to a new generation. */
  async bumpGeneration(namespace: string): Promise<Result<number>> {
    const c = this.#c;
    return c.guard.run(() => c.client.hincrby(c.keys.generations, namespace, 1));
  }

  /**
   * Counts pattern and tag invalidations of a namespace. They walk existing keys (SCAN, SSCAN), so
   * a fill of a key they could not see — absent from L2, or not yet in a tag's index — is fenced
   * by this counter instead: bumped before the walk, read by the fill before loading and again
   * after writing (or in the fill's script); if it moved, the fill does not stand.
   */
  async bumpInvalidations(namespace: string): Promise<Result<number>> {
    const c = this.#c;
    return c.guard.run(() => c.client.incr(c.keys.invalidations(namespace)));
  }

  async invalidations(namespace: string): Promise<Result<number>> {
    const c = this.#c;
    const r = await c.guard.run(() => c.client.get(c.keys.invalidations(namespace)));
    return r.ok ? ok(Number(r.value ?? 0)) : r;
  }
}
