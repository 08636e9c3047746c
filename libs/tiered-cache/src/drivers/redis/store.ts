import {
  type CacheKeys,
  Downtime,
  type HangWatchdog,
  type RedisClient,
  scanMasters,
} from '@cachefleet/redis';
import { CacheError } from '../../errors.js';
import { err, OK_UNDEFINED, ok, type Result } from '../../result.js';
import type { CacheStore, SetOptions, StoreHealth } from '../../types.js';
import type { BreakerState, CircuitBreaker } from '../breaker.js';
import { type Codec, type EntryTimes, entryTimes, isTombstone } from '../codec.js';
import type { L2ErrorType, L2Guard } from '../guard.js';
import { Bulk } from './bulk.js';
import { L2Connection } from './connection.js';
import { type DeleteStats, Fencing } from './fencing.js';
import { Locks } from './locks.js';
import { masterAddresses, TelemetryStore } from './telemetry.js';
import { TuningStore } from './tuning.js';

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

interface L2Stats extends DeleteStats {
  readonly errors: Record<L2ErrorType, number>;
}

/** A decoded L2 read with the entry's JSON length (for L1 size accounting). */
interface L2Entry {
  readonly value: unknown;
  readonly size: number;
  /** Load and expiry times of an entry written with them (grace, early refresh). */
  readonly times?: EntryTimes;
}

/**
 * L2: Redis (single node, Sentinel or Cluster) behind a circuit breaker. Every fault becomes an
 * `{ ok: false }` result and a counted error. Its roles share one connection: reads and writes
 * here, invalidation fences and generations in `fence`, the fleet load lock in `locks`, the
 * worker fleet's batches and walks in `bulk`.
 */
export class RedisStore implements CacheStore {
  readonly impl = 'redis' as const;
  readonly client: RedisClient;
  readonly prefix: string;
  readonly stats: L2Stats;
  readonly fence: Fencing;
  readonly locks: Locks;
  readonly bulk: Bulk;
  /** The fleet's snapshots, Redis INFO and namespace samples (docs/telemetry.md). */
  readonly telemetry: TelemetryStore;
  /** The tuner's settings, pins, audit stream and state (docs/tuning.md). */
  readonly tuning: TuningStore;
  /** Masters the client moved to since it started (failovers, reshards): `noteMasters`. */
  failovers = 0;
  #masters = new Set<string>();
  /** The error behind the last `undefined` from `readWire`. */
  lastError: CacheError = new CacheError('E_CACHE_L2_UNAVAILABLE');
  // The hot path reads these directly rather than through the connection object.
  readonly #c: L2Connection;
  readonly #guard: L2Guard;
  readonly #breaker: CircuitBreaker;
  readonly #watchdog: HangWatchdog;
  readonly #keys: CacheKeys;
  readonly #codec: Codec;
  readonly #pending: Set<string>;
  readonly #defaultTtlMs: number;
  readonly #connectTimeoutMs: number;
  readonly #downtime: Downtime;
  #closed = false;

  constructor(options: RedisStoreOptions) {
    this.#c = new L2Connection({
      client: options.client,
      prefix: options.prefix,
      compressionThreshold: options.compressionThreshold,
      commandTimeoutMs: options.commandTimeoutMs,
      breaker: options.breaker,
      ...(options.clock ? { clock: options.clock } : {}),
      onBreakerChange: (from, to) => {
        options.onBreakerChange?.(from, to);
        // A breaker opened by timeouts closes through a probe on the same connection, without
        // 'ready': replay here too, or a delete refused meanwhile would wait for the next reconnect.
        if (to === 'closed') void this.fence.replay();
      },
    });
    this.client = options.client;
    this.#downtime = new Downtime(options.client);
    this.prefix = options.prefix;
    this.#keys = this.#c.keys;
    this.#guard = this.#c.guard;
    this.#breaker = this.#guard.breaker;
    this.#watchdog = this.#guard.watchdog;
    this.#codec = this.#c.codec;
    this.#defaultTtlMs = options.defaultTtlSeconds * 1000;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    this.stats = { errors: this.#guard.errors, replayedDeletes: 0, droppedDeletes: 0 };
    this.fence = new Fencing(this.#c, options, this.stats);
    this.#pending = this.fence.pending;
    this.locks = new Locks(this.#c);
    this.bulk = new Bulk(this.#c, this.fence);
    this.telemetry = new TelemetryStore(this.#c);
    this.tuning = new TuningStore(this.#c);
    // Registered once, not per reconnect: the 'ready' event fires after every reconnect.
    this.client.on('ready', () => {
      this.noteMasters();
      this.#breaker.success();
      void this.fence.replay();
    });
    // A dropped connection opens the breaker at once: no call waits on a socket that is gone.
    this.client.on('close', () => {
      if (!this.#closed) this.#breaker.trip();
    });
  }

  /**
   * Compares the masters the client reaches now with the last ones it saw: each new address is a
   * failover (or a reshard) the client followed, counted in `failovers`. Called on every 'ready',
   * each telemetry tick and each scrape (a Cluster's topology changes without a reconnect).
   */
  noteMasters(): void {
    const now = masterAddresses(this.#c);
    if (now.length === 0) return;
    if (this.#masters.size > 0) for (const m of now) if (!this.#masters.has(m)) this.failovers++;
    this.#masters = new Set(now);
  }

  /** The key layout of this store's prefix. */
  get keys(): CacheKeys {
    return this.#c.keys;
  }

  get breakerState(): BreakerState {
    return this.#breaker.state;
  }

  /** Whether a call would be sent now (connected and breaker not open). */
  get available(): boolean {
    return this.client.status === 'ready' && this.#breaker.state !== 'open';
  }

  /** How long the connection has been down (0 while it is ready), ms: for readiness probes. */
  get downMs(): number {
    return this.#downtime.ms;
  }

  /** Invalidations waiting for Redis (for status and tests). */
  get pendingDeletes(): number {
    return this.#pending.size;
  }

  async start(): Promise<void> {
    const ready = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.#connectTimeoutMs);
      timer.unref();
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    // connect() rejects when Redis is down at start; the client keeps retrying in the background
    // and the store serves degraded until it is up (REQUIREMENTS A5).
    this.client.connect().catch(() => this.#breaker.trip());
    this.#watchdog.start();
    await ready;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchdog.stop();
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
    if (!this.#breaker.allow()) {
      this.lastError = this.#guard.unavailable().error;
      return undefined;
    }
    let wire: string | null;
    // The watchdog's count inlined (no `track` promise): this is the L2 hit path.
    this.#watchdog.inFlight++;
    try {
      wire = await this.client.get(this.prefix + key);
      this.#breaker.success();
    } catch (cause) {
      this.lastError = this.#guard.fail(cause).error;
      return undefined;
    } finally {
      this.#watchdog.inFlight--;
      this.#watchdog.completions++;
    }
    // A tombstone is returned as is: it reads as a miss, and the fill must compare against it.
    return wire === null || this.#isPendingDelete(key) ? null : wire;
  }

  /** A value whose delete has not reached Redis yet must not be served (nor copied into L1). */
  #isPendingDelete(key: string): boolean {
    return this.#pending.size > 0 && this.#pending.has(this.prefix + key);
  }

  async readMany(keys: readonly string[]): Promise<Result<(L2Entry | undefined)[]>> {
    if (keys.length === 0) return ok([]);
    if (!this.#breaker.allow()) return this.#guard.unavailable();
    let wires: (string | null)[];
    try {
      wires = await this.#guard.track(this.#c.getAll(keys.map((k) => this.#keys.entry(k))));
      this.#breaker.success();
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
      if (!decoded.ok) continue;
      const times = entryTimes(wire);
      out[i] = times
        ? { value: decoded.value, size: wire.length, times }
        : { value: decoded.value, size: wire.length };
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

  /** Encodes once for callers that also need the size (the read-through fill). */
  encode(value: unknown): { wire: string; size: number } {
    return this.#codec.encode(value);
  }

  /** Decodes a wire string; a corrupt entry is deleted (it would fail forever) and reported. */
  decode(key: string, wire: string): Result<unknown> {
    try {
      return ok(this.#codec.decode(wire));
    } catch (cause) {
      this.stats.errors.corrupt++;
      void this.client.unlink(this.#keys.entry(key)).catch(() => {});
      return err(new CacheError('E_CACHE_CORRUPT_ENTRY', `L2 entry ${key} could not be decoded`, { cause }));
    }
  }

  /** An authoritative write (a `set`): no fence, tags indexed. */
  async write(key: string, wire: string, ttlMs: number, tags?: readonly string[]): Promise<Result<void>> {
    const full = this.#keys.entry(key);
    const r = await this.#guard.run(() =>
      Promise.all([
        this.client.set(full, wire, 'PX', Math.max(1, Math.round(ttlMs))),
        ...this.#c.tagAdds(full, ttlMs, tags),
      ]),
    );
    return r.ok ? OK_UNDEFINED : r;
  }

  async del(key: string): Promise<Result<boolean>> {
    const r = await this.delMany([key]);
    return r.ok ? ok(r.value > 0) : r;
  }

  /** UNLINK; keys Redis cannot take now are remembered and replayed (as tombstones) once it answers. */
  async delMany(keys: readonly string[]): Promise<Result<number>> {
    if (keys.length === 0) return ok(0);
    const full = keys.map((k) => this.#keys.entry(k));
    return this.#guard.run(
      () => this.#c.unlink(full),
      () => this.fence.remember(full),
    );
  }

  invalidateTags(tags: readonly string[]): Promise<Result<number>> {
    return this.fence.invalidateTags(tags);
  }

  /**
   * Everything under the prefix (SCAN + UNLINK on every master) except the fleet's state: the bus
   * stream, namespace generations and walk counters are coherence state, not cache data, and
   * resetting them would let pods miss invalidations.
   */
  async clear(): Promise<Result<number>> {
    const keys = this.#keys;
    return this.#guard.run(() =>
      scanMasters(
        this.client,
        keys.entryMatch('*'),
        (found) => {
          const doomed = found.filter((k) => !keys.isFleetState(k));
          return doomed.length > 0 ? this.#c.unlink(doomed) : 0;
        },
        { tracker: this.#watchdog },
      ),
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
        breaker: this.#breaker.state,
      };
    } catch (cause) {
      return {
        ok: false,
        impl: 'redis',
        breaker: this.#breaker.state,
        detail: cause instanceof Error ? cause.message : String(cause),
      };
    }
  }
}
