import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { CacheError } from '../errors.js';
import { isCluster, type RedisClient, scanTargets, scripts } from '../redis/factory.js';
import { err, OK_UNDEFINED, ok, type Result } from '../result.js';
import type { CacheStore, SetOptions, StoreHealth } from '../types.js';
import type { BreakerState } from './breaker.js';
import { type L2ErrorType, L2Guard } from './guard.js';

export type { L2ErrorType } from './guard.js';

import { type Codec, createCodec } from './codec.js';

export interface RedisStoreOptions {
  readonly client: RedisClient;
  readonly prefix: string;
  readonly defaultTtlSeconds: number;
  readonly compressionThreshold: number;
  readonly connectTimeoutMs: number;
  /** Commands outstanding with none completing for this long means Redis hangs: reconnect. */
  readonly commandTimeoutMs: number;
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly maxPendingDeletes: number;
  /** Lifetime of an invalidation tombstone; fills older than this never write. */
  readonly tombstoneTtlMs: number;
  readonly clock?: { now(): number };
  readonly onBreakerChange?: (from: BreakerState, to: BreakerState) => void;
}

export interface L2Stats {
  readonly errors: Record<L2ErrorType, number>;
  /** Deletes that could not reach Redis and were replayed after it came back. */
  replayedDeletes: number;
  /** Deletes dropped because the replay list was full (documented limit). */
  droppedDeletes: number;
}

/** A decoded L2 read with the entry's JSON length (for L1 size accounting). */
export interface L2Entry {
  readonly value: unknown;
  readonly size: number;
}

const UNLINK_BATCH = 500;
const SCAN_COUNT = 1000;

/**
 * L2: Redis (single node, Sentinel or Cluster) behind a circuit breaker. Every fault becomes an
 * `{ ok: false }` result and a counted error; deletes that fail are remembered and replayed once
 * the connection is back, so an invalidation made during an outage is not lost.
 */
export class RedisStore implements CacheStore {
  readonly impl = 'redis' as const;
  readonly client: RedisClient;
  readonly prefix: string;
  readonly stats: L2Stats;
  readonly #guard: L2Guard;
  readonly #codec: Codec;
  readonly #defaultTtlMs: number;
  readonly #tagPrefix: string;
  readonly #lockPrefix: string;
  readonly #genKey: string;
  readonly #invPrefix: string;
  readonly #hotPrefix: string;
  /**
   * Whether `fill` checks the walk counter in the same script as the entry. Not on Cluster (two
   * slots): there the read-through checks it after writing and retracts, announcing the retraction.
   */
  readonly fencesWalks: boolean;
  readonly #pendingDeletes = new Set<string>();
  readonly #opts: RedisStoreOptions;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#opts = options;
    this.client = options.client;
    this.prefix = options.prefix;
    this.#tagPrefix = `${options.prefix}__tag:`;
    this.#lockPrefix = `${options.prefix}__lock:`;
    this.#genKey = `${options.prefix}__gen`;
    this.#invPrefix = `${options.prefix}__inv:`;
    this.#hotPrefix = `${options.prefix}__hot:`;
    this.fencesWalks = !isCluster(this.client);
    this.#defaultTtlMs = options.defaultTtlSeconds * 1000;
    this.#codec = createCodec(options.compressionThreshold);
    this.#guard = new L2Guard(this.client, {
      breaker: options.breaker,
      commandTimeoutMs: options.commandTimeoutMs,
      ...(options.clock ? { clock: options.clock } : {}),
      onBreakerChange: (from, to) => {
        options.onBreakerChange?.(from, to);
        // A breaker opened by timeouts closes through a probe on the same connection, without
        // 'ready': replay here too, or a delete refused meanwhile would wait for the next reconnect.
        if (to === 'closed') void this.#replayDeletes();
      },
    });
    this.stats = { errors: this.#guard.errors, replayedDeletes: 0, droppedDeletes: 0 };
    // Registered once, not per reconnect: the 'ready' event fires after every reconnect.
    this.client.on('ready', () => {
      this.#guard.breaker.success();
      void this.#replayDeletes();
    });
    // A dropped connection opens the breaker at once: no call waits on a socket that is gone.
    this.client.on('close', () => {
      if (!this.#closed) this.#guard.breaker.trip();
    });
  }

  get breakerState(): BreakerState {
    return this.#guard.breaker.state;
  }

  /** Whether a call would be sent now (connected and breaker not open). */
  get available(): boolean {
    return this.client.status === 'ready' && this.#guard.breaker.state !== 'open';
  }

  async start(): Promise<void> {
    const ready = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#opts.connectTimeoutMs);
      timer.unref();
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    // connect() rejects when Redis is down at start; the client keeps retrying in the background
    // and the store serves degraded until it is up (REQUIREMENTS A5).
    this.client.connect().catch(() => this.#guard.breaker.trip());
    this.#guard.startWatchdog();
    await ready;
  }

  #tagAdds(full: string, ttlMs: number, tags: readonly string[] | undefined): Promise<number>[] {
    return tags ? tags.map((tag) => scripts(this.client).tagAdd(this.#tagPrefix + tag, full, ttlMs)) : [];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#guard.stopWatchdog();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /** Decoded read with size; the read-through path uses it to size L1 entries. */
  async read(key: string): Promise<Result<L2Entry | undefined>> {
    const wire = await this.readWire(key);
    if (wire === null || (wire !== undefined && isTombstone(wire))) return OK_UNDEFINED;
    if (wire === undefined) return err(this.lastError);
    const r = this.decode(key, wire);
    return r.ok ? ok({ value: r.value, size: wire.length }) : r;
  }

  /**
   * The L2 hit path without wrappers (every allocation here showed up as GC in the profile):
   * the wire string, `null` for a miss, `undefined` for a fault (counted; see `lastError`).
   */
  async readWire(key: string): Promise<string | null | undefined> {
    if (!this.#guard.breaker.allow()) {
      this.lastError = this.#guard.unavailable().error;
      return undefined;
    }
    let wire: string | null;
    // Inlined #track: this is the L2 hit path.
    this.#guard.inFlight++;
    try {
      wire = await this.client.get(this.prefix + key);
      this.#guard.breaker.success();
    } catch (cause) {
      this.lastError = this.#guard.fail(cause).error;
      return undefined;
    } finally {
      this.#guard.inFlight--;
      this.#guard.completions++;
    }
    // A tombstone is returned as is: it reads as a miss, and the fill must compare against it.
    return wire === null || this.#isPendingDelete(key) ? null : wire;
  }

  /** The error behind the last `undefined` from `readWire`. */
  lastError: CacheError = new CacheError('E_CACHE_L2_UNAVAILABLE');

  /** A value whose delete has not reached Redis yet must not be served (nor copied into L1). */
  #isPendingDelete(key: string): boolean {
    return this.#pendingDeletes.size > 0 && this.#pendingDeletes.has(this.prefix + key);
  }

  async readMany(keys: readonly string[]): Promise<Result<(L2Entry | undefined)[]>> {
    if (keys.length === 0) return ok([]);
    if (!this.#guard.breaker.allow()) return this.#guard.unavailable();
    let wires: (string | null)[];
    try {
      const full = keys.map((k) => this.prefix + k);
      // MGET needs one slot; on a Cluster, auto-pipelined GETs are grouped per node instead.
      wires = await this.#guard.track(
        isCluster(this.client) ? Promise.all(full.map((k) => this.client.get(k))) : this.client.mget(full),
      );
      this.#guard.breaker.success();
    } catch (cause) {
      return this.#guard.fail(cause);
    }
    const out: (L2Entry | undefined)[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const wire = wires[i];
      if (
        wire === null ||
        wire === undefined ||
        isTombstone(wire) ||
        this.#isPendingDelete(keys[i] as string)
      )
        continue;
      const decoded = this.decode(keys[i] as string, wire);
      out[i] = decoded.ok ? { value: decoded.value, size: wire.length } : undefined;
    }
    return ok(out);
  }

  async get(key: string): Promise<Result<unknown>> {
    const r = await this.read(key);
    return r.ok ? (r.value === undefined ? OK_UNDEFINED : ok(r.value.value)) : r;
  }

  async getMany(keys: readonly string[]): Promise<Result<unknown[]>> {
    const r = await this.readMany(keys);
    return r.ok ? ok(r.value.map((e) => e?.value)) : r;
  }

  async set(key: string, value: unknown, ttlSeconds?: number, options?: SetOptions): Promise<Result<void>> {
    let wire: string;
    try {
      wire = this.#codec.encode(value).wire;
    } catch (cause) {
      return err(new CacheError('E_CACHE_INVALID_VALUE', 'value is not JSON-serialisable', { cause }));
    }
    return this.write(
      key,
      wire,
      ttlSeconds !== undefined ? ttlSeconds * 1000 : this.#defaultTtlMs,
      options?.tags,
    );
  }

  /** Full key names of the fleet state kept beside the entries (for redis-bulk.ts). */
  keyOf(kind: 'inv' | 'hot' | 'tag', name: string): string {
    return (kind === 'inv' ? this.#invPrefix : kind === 'tag' ? this.#tagPrefix : this.#hotPrefix) + name;
  }

  /** Runs Redis calls under this store's breaker and hang watchdog. */
  guarded<T>(op: () => Promise<T>): Promise<Result<T>> {
    return this.#guard.run(op);
  }

  /** Encodes once for callers that also need the size (the read-through fill). */
  encode(value: unknown): { wire: string; size: number } {
    return this.#codec.encode(value);
  }

  async write(key: string, wire: string, ttlMs: number, tags?: readonly string[]): Promise<Result<void>> {
    const full = this.prefix + key;
    const r = await this.#guard.run(() =>
      Promise.all([
        this.client.set(full, wire, 'PX', Math.max(1, Math.round(ttlMs))),
        ...this.#tagAdds(full, ttlMs, tags),
      ]),
    );
    return r.ok ? OK_UNDEFINED : r;
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
    const full = this.prefix + key;
    const ttl = Math.max(1, Math.round(ttlMs));
    const cmds = scripts(this.client);
    const r = await this.#guard.run(() =>
      Promise.all([
        fence !== undefined && this.fencesWalks
          ? cmds.fillFenced(full, this.#invPrefix + fence.namespace, expected, wire, ttl, fence.inv)
          : cmds.fill(full, expected, wire, ttl),
        ...this.#tagAdds(full, ttlMs, tags),
      ]),
    );
    return r.ok ? ok(r.value[0] === 1) : r;
  }

  /**
   * Replaces entries by unique tombstones (DESIGN invariant 2): a fill that started before this
   * call finds a different value at its compare-and-set and does not write. Resolves how many
   * live values were replaced. A call Redis cannot take is remembered and replayed.
   */
  async invalidate(keys: readonly string[]): Promise<Result<number>> {
    if (keys.length === 0) return ok(0);
    const full = keys.map((k) => this.prefix + k);
    return this.#guard.run(
      () => this.#tombstone(full),
      () => this.#remember(full),
    );
  }

  /** Current generation of every namespace that was ever invalidated as a whole. */
  async generations(): Promise<Result<Map<string, number>>> {
    const r = await this.#guard.run(() => this.client.hgetall(this.#genKey));
    return r.ok ? ok(new Map(Object.entries(r.value).map(([ns, g]) => [ns, Number(g)]))) : r;
  }

  /**
   * Counts pattern and tag invalidations of a namespace. They walk existing keys (SCAN, SSCAN), so
   * a fill of a key they could not see — absent from L2, or not yet in a tag's index — is fenced
   * by this counter instead: bumped before the walk, read by the fill before loading and again
   * after writing; if it moved, the fill tombstones its own entry.
   */
  async bumpInvalidations(namespace: string): Promise<Result<number>> {
    return this.#guard.run(() => this.client.incr(this.#invPrefix + namespace));
  }

  async invalidations(namespace: string): Promise<Result<number>> {
    const r = await this.#guard.run(() => this.client.get(this.#invPrefix + namespace));
    return r.ok ? ok(Number(r.value ?? 0)) : r;
  }

  /** O(1) invalidation of a whole namespace: its keys move to a new generation. */
  async bumpGeneration(namespace: string): Promise<Result<number>> {
    return this.#guard.run(() => this.client.hincrby(this.#genKey, namespace, 1));
  }

  async del(key: string): Promise<Result<boolean>> {
    const r = await this.delMany([key]);
    return r.ok ? ok(r.value > 0) : r;
  }

  async delMany(keys: readonly string[]): Promise<Result<number>> {
    if (keys.length === 0) return ok(0);
    const full = keys.map((k) => this.prefix + k);
    return this.#guard.run(
      () => this.#unlink(full),
      () => this.#remember(full),
    );
  }

  async invalidateTags(tags: readonly string[]): Promise<Result<number>> {
    return this.#guard.run(async () => {
      let removed = 0;
      for (const tag of tags) {
        const tagKey = this.#tagPrefix + tag;
        // SSCAN rather than SMEMBERS: a tag on a million entries must not block Redis.
        let cursor = '0';
        do {
          const [next, members] = await this.#guard.track(
            this.client.sscan(tagKey, cursor, 'COUNT', UNLINK_BATCH),
          );
          cursor = next;
          if (members.length > 0) removed += await this.#tombstone(members);
        } while (cursor !== '0');
        // The set is kept: entries refilled meanwhile have added themselves to it, and the next
        // invalidation of the tag must find them (it expires with its entries).
      }
      return removed;
    });
  }

  async clear(): Promise<Result<number>> {
    // The bus stream, namespace generations and invalidation counters are the fleet's coherence
    // state, not cache data: resetting them would let pods miss invalidations.
    const keep = (k: string) =>
      k === this.#genKey || k === `${this.prefix}__bus` || k.startsWith(this.#invPrefix);
    return this.#guard.run(() =>
      this.#scanAll('*', (keys) => {
        const doomed = keys.filter((k) => !keep(k));
        return doomed.length > 0 ? this.#unlink(doomed) : Promise.resolve(0);
      }),
    );
  }

  async health(): Promise<StoreHealth> {
    const started = performance.now();
    try {
      await this.#guard.track(this.client.ping());
      return {
        ok: true,
        impl: 'redis',
        latencyMs: performance.now() - started,
        breaker: this.#guard.breaker.state,
      };
    } catch (cause) {
      return {
        ok: false,
        impl: 'redis',
        breaker: this.#guard.breaker.state,
        detail: cause instanceof Error ? cause.message : String(cause),
      };
    }
  }

  /** Fleet-wide load lock (D1): SET NX PX with a random token. `null` = someone else holds it. */
  async acquireLock(key: string, ttlMs: number): Promise<Result<string | null>> {
    const token = randomBytes(12).toString('base64url');
    const r = await this.#guard.run(() => this.client.set(this.#lockPrefix + key, token, 'PX', ttlMs, 'NX'));
    return r.ok ? ok(r.value === 'OK' ? token : null) : r;
  }

  /** Owner-only release (compare-and-delete in Lua). An expired lock is not an error. */
  async releaseLock(key: string, token: string): Promise<Result<boolean>> {
    try {
      const n = await this.#guard.track(scripts(this.client).lockRelease(this.#lockPrefix + key, token));
      return ok(n === 1);
    } catch (cause) {
      return this.#guard.fail(cause);
    }
  }

  /**
   * SCAN every master for `prefix + pattern` (never KEYS; the pattern cannot leave the prefix) and
   * tombstone what it finds, so concurrent fills are fenced. For pattern invalidations.
   */
  async invalidateMatching(pattern: string): Promise<Result<number>> {
    return this.#guard.run(() => this.#scanAll(pattern, (keys) => this.#tombstone(keys)));
  }

  /** SCAN every master for `prefix + pattern` (never KEYS) and hand each batch to `each`. */
  async #scanAll(pattern: string, each: (keys: string[]) => Promise<number>): Promise<number> {
    const match = escapeGlob(this.prefix) + pattern;
    let removed = 0;
    for (const node of scanTargets(this.client)) removed += await this.#scanEach(node, match, each);
    return removed;
  }

  async #scanEach(node: Redis, match: string, each: (keys: string[]) => Promise<number>): Promise<number> {
    let removed = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.#guard.track(node.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT));
      cursor = next;
      if (keys.length > 0) removed += await each(keys);
    } while (cursor !== '0');
    return removed;
  }

  async #tombstone(fullKeys: readonly string[]): Promise<number> {
    const counts = await this.#guard.track(
      Promise.all(
        fullKeys.map((k) => scripts(this.client).invalidate(k, newTombstone(), this.#opts.tombstoneTtlMs)),
      ),
    );
    let n = 0;
    for (const c of counts) n += c;
    return n;
  }

  /** UNLINK in batches of 500 so one call never holds Redis long; per key on a Cluster (slots). */
  async #unlink(fullKeys: readonly string[]): Promise<number> {
    let n = 0;
    if (isCluster(this.client)) {
      const counts = await this.#guard.track(Promise.all(fullKeys.map((k) => this.client.unlink(k))));
      for (const c of counts) n += c;
      return n;
    }
    for (let i = 0; i < fullKeys.length; i += UNLINK_BATCH) {
      n += await this.#guard.track(this.client.unlink(...fullKeys.slice(i, i + UNLINK_BATCH)));
    }
    return n;
  }

  /** Decodes a wire string; a corrupt entry is deleted (it would fail forever) and reported. */
  decode(key: string, wire: string): Result<unknown> {
    try {
      return ok(this.#codec.decode(wire));
    } catch (cause) {
      this.stats.errors.corrupt++;
      void this.client.unlink(this.prefix + key).catch(() => {});
      return err(new CacheError('E_CACHE_CORRUPT_ENTRY', `L2 entry ${key} could not be decoded`, { cause }));
    }
  }

  #remember(fullKeys: readonly string[]): void {
    for (const k of fullKeys) {
      if (this.#pendingDeletes.size >= this.#opts.maxPendingDeletes) {
        this.stats.droppedDeletes++;
        continue;
      }
      this.#pendingDeletes.add(k);
    }
  }

  #replaying = false;

  /** Keys leave the pending set only once their UNLINK succeeded: until then reads treat them as misses. */
  async #replayDeletes(): Promise<void> {
    if (this.#pendingDeletes.size === 0 || this.#replaying) return;
    this.#replaying = true;
    try {
      while (this.#pendingDeletes.size > 0) {
        const batch = [...this.#pendingDeletes].slice(0, UNLINK_BATCH);
        await this.#tombstone(batch);
        for (const k of batch) this.#pendingDeletes.delete(k);
        this.stats.replayedDeletes += batch.length;
      }
    } catch {
      // Still unreachable: the keys stay pending for the next 'ready' or breaker close.
    } finally {
      this.#replaying = false;
    }
  }

  /** Pending deletes waiting for Redis (for status and tests). */
  get pendingDeletes(): number {
    return this.#pendingDeletes.size;
  }
}

/** Escapes Redis glob metacharacters so a prefix is matched literally. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

const TILDE = 126;
const T = 116;
/** Tombstones are `~t` + a random token; JSON never starts with `~`, compressed values use `~z`. */
export function isTombstone(wire: string): boolean {
  return wire.charCodeAt(0) === TILDE && wire.charCodeAt(1) === T;
}

function newTombstone(): string {
  return `~t${randomBytes(9).toString('base64url')}`;
}
