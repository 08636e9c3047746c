import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { EventBus } from './bus/event-bus.js';
import type { CacheEvent, CacheEventInput, EventBody } from './bus/events.js';
import {
  type CacheImpl,
  type CacheOptions,
  type ResolvedCacheOptions,
  resolveCacheOptions,
} from './config.js';
import { MemoryStore } from './drivers/memory.js';
import { NullStore } from './drivers/null.js';
import { escapeGlob, RedisStore } from './drivers/redis.js';
import { TieredStore } from './drivers/tiered.js';
import { CacheError } from './errors.js';
import { FleetOps, ID_PATTERN } from './fleet.js';
import { registerCacheMetrics } from './metrics/prometheus.js';
import type { Namespace } from './namespace.js';
import { createRedisClient } from './redis/factory.js';
import { CacheRegistry, type CacheStatus } from './registry.js';
import { err, ok, type Result } from './result.js';
import { applyToL1, globToRegExp } from './stack/coherence.js';
import { ReadThrough, type Tiers } from './stack/read-through.js';
import { type NamespaceState, totals } from './stack/state.js';
import type { CacheStore } from './types.js';

export interface CacheDeps {
  /** Where the cache registers its metrics; a fresh registry by default (`cache.metrics`). */
  readonly metricsRegistry?: Registry;
  /** pino logger for breaker changes, bus gaps and degraded starts; silent by default. */
  readonly logger?: Logger;
}

export interface TierStats {
  readonly l1:
    | {
        readonly entries: number;
        readonly bytes: number;
        readonly maxEntries: number;
        readonly maxBytes: number;
        readonly evictions: number;
      }
    | undefined;
  readonly l2: { readonly available: boolean; readonly breaker: string } | undefined;
}

/** Per-namespace, per-tier counters for `GET /cache/stats` (G1). */
export interface NamespaceStats {
  readonly namespace: string;
  readonly l1: { readonly hits: number; readonly misses: number; readonly hitRate: number };
  readonly l2: { readonly hits: number; readonly misses: number; readonly hitRate: number };
  readonly loads: number;
  readonly combinedHitRate: number;
  /** Fills not cached because an invalidation overtook them. */
  readonly fencedFills: number;
}

/**
 * The cache an app instance holds: a registry with the active store, the read-through paths over
 * it, and the bus that keeps this pod's L1 coherent with the fleet. Construct with `createCache`,
 * then `await start()`; no I/O happens before that.
 */
export class Cache {
  readonly options: ResolvedCacheOptions;
  readonly registry: CacheRegistry;
  readonly metrics: Registry;
  readonly podId: string;
  readonly #rt: ReadThrough;
  readonly #logger: Logger | undefined;
  readonly #breakerTransitions: Record<string, number> = {};
  readonly #listeners = new Set<(event: CacheEvent) => void>();
  readonly #buses = new WeakMap<CacheStore, EventBus>();
  #tiers: Tiers = { l1: undefined, l2: undefined };
  #closed = false;
  #hotTimer: NodeJS.Timeout | undefined;
  /** Primitives of the worker fleet: warm batches, bulk invalidation steps, hot keys. */
  readonly fleet: FleetOps;

  constructor(options: ResolvedCacheOptions, deps: CacheDeps = {}) {
    this.options = options;
    this.#logger = deps.logger;
    this.podId = options.bus.podId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.metrics = deps.metricsRegistry ?? new Registry();
    const timing = registerCacheMetrics(this.metrics, {
      impl: () => this.registry.store.impl,
      states: () => this.#rt.states,
      l1: () => this.#tiers.l1,
      l2: () => this.#tiers.l2,
      breakerTransitions: () => this.#breakerTransitions,
      bus: () => this.bus,
    });
    this.#rt = new ReadThrough(options, timing);
    this.fleet = new FleetOps({
      rt: this.#rt,
      l2: () => this.#tiers.l2,
      announce: (body) => this.#announce(body, ok(undefined)),
      sampleRate: options.l1TimingSampleRate,
      hotKeep: options.hotKeys.keep,
    });
    this.#rt.onRetract = (namespace, id) => {
      const bus = this.bus;
      if (bus) void bus.publish(this.#event({ event_type: 'invalidate', namespace, keys: [id] }));
    };
    const store = this.#build(options.impl);
    this.registry = new CacheRegistry(store, () => totals(this.#rt.states));
    this.#useTiers(store);
  }

  /** Connects the active store and its bus. Never rejects because Redis is down: it starts degraded. */
  async start(): Promise<void> {
    await this.#startStore(this.registry.store);
    if (this.options.hotKeys.enabled) {
      this.#hotTimer = setInterval(() => void this.fleet.flushHotKeys(), this.options.hotKeys.flushMs);
      this.#hotTimer.unref();
    }
    const l2 = this.#tiers.l2;
    if (l2 && !l2.available) {
      this.#logger?.warn(
        { impl: this.registry.store.impl },
        'cache started without Redis: serving degraded (L1 + loader)',
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#hotTimer);
    if (this.options.hotKeys.enabled) await this.fleet.flushHotKeys();
    await this.#closeStore(this.registry.store);
  }

  /** The active store, for raw-key use through the A1 contract. */
  get store(): CacheStore {
    return this.registry.store;
  }

  /** The active store's bus (absent for null and memory, or when bus.enabled is false). */
  get bus(): EventBus | undefined {
    return this.#buses.get(this.registry.store);
  }

  /**
   * Declares the namespaces this pod serves before its first read of each, so that events naming
   * them (a prewarm above all) can be applied: a key needs the definition's version and generation.
   * A namespace is registered anyway by its first use.
   */
  register<T extends unknown[]>(...namespaces: { [K in keyof T]: Namespace<T[K]> }): this {
    for (const ns of namespaces) this.#rt.state(ns as Namespace<unknown>);
    return this;
  }

  /** Read-through: L1 → L2 → the namespace loader (once per key across the fleet). */
  get<T>(ns: Namespace<T>, id: string): Promise<Result<T | undefined>> {
    return this.#rt.get(ns, id);
  }

  /** Batched read-through: one L2 round trip, one `loadMany` for what is left. Aligned with `ids`. */
  getMany<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<(T | undefined)[]>> {
    return this.#rt.getMany(ns, ids);
  }

  /** Validates and writes L2 then L1, then tells the other pods to drop their copy. */
  async set<T>(ns: Namespace<T>, id: string, value: T): Promise<Result<void>> {
    const r = await this.#rt.set(ns, id, value);
    if (!r.ok) return r;
    return this.#announce({ event_type: 'update', namespace: ns.name, keys: [id] }, r);
  }

  /**
   * Invalidates ids: L1 here, a tombstone in L2 (a fill racing this call cannot write the old value
   * back), then an event to every pod. Resolves once all three are done: an acknowledged invalidation.
   */
  async delete<T>(ns: Namespace<T>, ...ids: string[]): Promise<Result<number>> {
    const r = await this.#rt.delete(ns as Namespace<unknown>, ids);
    if (!r.ok || ids.length === 0) return r;
    return this.#announce({ event_type: 'invalidate', namespace: ns.name, keys: ids }, r);
  }

  /** Invalidates every entry of the namespace carrying any of the tags (tag index: no SCAN). */
  async invalidateTags<T>(ns: Namespace<T>, tags: readonly string[]): Promise<Result<number>> {
    if (tags.length === 0) return ok(0);
    const scoped = tags.map((t) => `${ns.name}:${t}`);
    return this.#invalidateWalk(
      ns,
      () => this.#tiers.l1?.removeTags(scoped) ?? 0,
      (l2) => l2.invalidateTags(scoped),
      { event_type: 'invalidate', namespace: ns.name, tags: [...tags] },
    );
  }

  /**
   * Invalidates the ids of a namespace matching a Redis glob (`*`, `?`, `[…]`), by SCAN (never KEYS)
   * in L2 and in every pod's L1. Patterns cannot leave the namespace: the glob applies to ids only.
   * Millions of keys belong in an invalidate job (workers), not in a request.
   */
  async invalidatePattern<T>(ns: Namespace<T>, pattern: string): Promise<Result<number>> {
    if (!ID_PATTERN.test(pattern)) {
      return err(
        new CacheError('E_CACHE_INVALID_ID', `invalid pattern for ${ns.name}: ${JSON.stringify(pattern)}`),
      );
    }
    const re = globToRegExp(pattern);
    const keyBase = this.#rt.state(ns as Namespace<unknown>).keyBase;
    return this.#invalidateWalk(
      ns,
      () => this.#tiers.l1?.removeWhere(keyBase, (id) => re.test(id)) ?? 0,
      (l2) => l2.invalidateMatching(`${escapeGlob(keyBase)}${pattern}`),
      { event_type: 'invalidate', namespace: ns.name, key_pattern: pattern },
    );
  }

  /**
   * A pattern or tag invalidation: it walks existing keys, so (1) the namespace's invalidation
   * counter moves first, fencing fills of keys the walk cannot see; (2) this pod's L1 is cleared
   * both before and after the walk, since a read here during the walk may fetch an old value;
   * (3) the event goes out once L2 is done.
   */
  async #invalidateWalk<T>(
    ns: Namespace<T>,
    local: () => number,
    walk: (l2: RedisStore) => Promise<Result<number>>,
    event: EventBody,
  ): Promise<Result<number>> {
    const st = this.#rt.state(ns as Namespace<unknown>);
    const clear = () => {
      this.#rt.invalidated();
      this.#rt.dropInflight(st.keyBase);
      return local();
    };
    let removed = clear();
    const l2 = this.#tiers.l2;
    if (l2) {
      const bumped = await l2.bumpInvalidations(ns.name);
      if (!bumped.ok) return bumped;
      const r = await walk(l2);
      removed = Math.max(removed, clear());
      if (!r.ok) return r;
      removed = Math.max(removed, r.value);
    }
    st.invalidations++;
    return this.#announce(event, ok(removed));
  }

  /**
   * Invalidates a whole namespace in O(1): its generation moves on, so every key is new to every pod
   * (old ones expire by their TTL). Resolves the new generation.
   */
  async invalidateNamespace<T>(ns: Namespace<T>): Promise<Result<number>> {
    const st = this.#rt.state(ns as Namespace<unknown>);
    const l2 = this.#tiers.l2;
    let generation: number;
    if (l2) {
      const r = await l2.bumpGeneration(ns.name);
      if (!r.ok) return r;
      generation = r.value;
    } else generation = this.#rt.generation(ns.name) + 1;
    st.invalidations++;
    this.#rt.setGeneration(ns.name, generation);
    return this.#announce(
      { event_type: 'invalidate', namespace: ns.name, key_pattern: '*', generation },
      ok(generation),
    );
  }

  /** Asks every pod to copy these ids from L2 into L1 (critical keys after a warm). */
  async prewarm<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<string>> {
    const bus = this.bus;
    if (!bus)
      return err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'prewarm needs the bus (impl tiered or redis)'));
    const r = await this.#prewarmHere(ns.name, ids);
    if (!r.ok) return r;
    return bus.publish(this.#event({ event_type: 'prewarm', namespace: ns.name, keys: [...ids] }));
  }

  /** Publishes runtime settings (a tuner's decision) to every pod's `onEvent` listeners. */
  async publishConfig(
    namespace: string,
    settings: Record<string, number | string | boolean>,
  ): Promise<Result<string>> {
    const bus = this.bus;
    if (!bus) return err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'config events need the bus'));
    return bus.publish(this.#event({ event_type: 'config', namespace, settings }));
  }

  /** Every event from another pod, after it was applied here (config events are only delivered). */
  onEvent(listener: (event: CacheEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A3: swap the implementation at run time; the previous store (and its bus) is closed. */
  async use(impl: CacheImpl): Promise<void> {
    if (this.#closed) throw new CacheError('E_CACHE_CLOSED');
    if (impl === this.registry.store.impl) return;
    const next = this.#build(impl);
    await this.#startStore(next);
    const previous = this.registry.swap(next);
    this.#useTiers(next);
    this.#logger?.info({ from: previous.impl, to: impl }, 'cache implementation swapped');
    await this.#closeStore(previous);
  }

  status(): CacheStatus {
    return this.registry.status();
  }

  /** Size and state of each tier of the active store (G1), beside the per-namespace counters. */
  tiers(): TierStats {
    const { l1, l2 } = this.#tiers;
    return {
      l1: l1
        ? {
            entries: l1.entries,
            bytes: l1.bytes,
            maxEntries: l1.maxEntries,
            maxBytes: l1.maxBytes,
            evictions: l1.stats.evictions,
          }
        : undefined,
      l2: l2 ? { available: l2.available, breaker: l2.breakerState } : undefined,
    };
  }

  stats(): NamespaceStats[] {
    return this.#rt.states.filter((s): s is NamespaceState => s !== undefined).map(namespaceStats);
  }

  async #startStore(store: CacheStore): Promise<void> {
    await store.start();
    // Without Redis, start degraded at once: the bus connects (and replays) when Redis is back.
    const reachable = this.#l2Of(store)?.available ?? false;
    if (reachable) await this.#loadGenerations();
    await this.#buses.get(store)?.start(reachable ? this.options.l2.connectTimeoutMs : 0);
  }

  #l2Of(store: CacheStore): RedisStore | undefined {
    return store instanceof TieredStore ? store.l2 : store instanceof RedisStore ? store : undefined;
  }

  async #closeStore(store: CacheStore): Promise<void> {
    await this.#buses.get(store)?.close();
    await store.close();
  }

  /** Namespaces invalidated as a whole before this pod started (or while it was cut off). */
  async #loadGenerations(): Promise<void> {
    const l2 = this.#tiers.l2;
    if (!l2) return;
    const r = await l2.generations();
    if (r.ok) for (const [name, g] of r.value) this.#rt.setGeneration(name, g);
  }

  #event(body: EventBody): CacheEventInput {
    return { ...body, timestamp: Date.now(), source_pod: this.podId };
  }

  /** Publishes what was just done here; the change stands even if the event could not go out. */
  async #announce<R>(body: EventBody, done: Result<R>): Promise<Result<R>> {
    const bus = this.bus;
    if (!bus) return done;
    const p = await bus.publish(this.#event(body));
    return p.ok ? done : p;
  }

  async #prewarmHere(name: string, ids: readonly string[]): Promise<Result<number>> {
    const l2 = this.#tiers.l2;
    if (!l2 || !this.#tiers.l1) return ok(0);
    let filled = 0;
    for (const st of this.#rt.statesNamed(name)) {
      const epoch = this.#rt.epoch;
      const keys = ids.map((id) => st.keyBase + id);
      const r = await l2.readMany(keys);
      if (!r.ok) return r;
      r.value.forEach((e, i) => {
        if (e === undefined) return;
        this.#rt.putL1(st, keys[i] as string, ok(e.value), e.size, epoch);
        filled++;
      });
    }
    return ok(filled);
  }

  #useTiers(store: CacheStore): void {
    this.#tiers = {
      l1: store instanceof TieredStore ? store.l1 : store instanceof MemoryStore ? store : undefined,
      l2: this.#l2Of(store),
    };
    this.#rt.useTiers(this.#tiers);
  }

  #build(impl: CacheImpl): CacheStore {
    const o = this.options;
    const memory = () =>
      new MemoryStore({
        maxEntries: o.l1.maxEntries,
        maxBytes: o.l1.maxBytes,
        defaultTtlSeconds: o.l1.defaultTtlSeconds,
      });
    const redis = (): RedisStore => {
      if (o.redis === undefined) {
        throw new CacheError('E_CACHE_CONFIG', `redis: required when impl is "${impl}"`);
      }
      const client = createRedisClient(o.redis, {
        role: 'cache',
        connectTimeoutMs: o.l2.connectTimeoutMs,
        connectionName: `cachefleet:cache:${this.podId}`,
        onError: (error) => this.#logger?.debug({ err: error.message }, 'cache redis connection error'),
      });
      return new RedisStore({
        client,
        prefix: o.prefix,
        defaultTtlSeconds: o.defaultTtlSeconds,
        compressionThreshold: o.l2.compressionThreshold,
        connectTimeoutMs: o.l2.connectTimeoutMs,
        commandTimeoutMs: o.l2.commandTimeoutMs,
        breaker: o.breaker,
        maxPendingDeletes: o.maxPendingDeletes,
        tombstoneTtlMs: o.bus.tombstoneTtlMs,
        onBreakerChange: (from, to) => {
          this.#breakerTransitions[to] = (this.#breakerTransitions[to] ?? 0) + 1;
          this.#logger?.warn({ from, to }, 'cache L2 circuit breaker changed state');
        },
      });
    };
    switch (impl) {
      case 'null':
        return new NullStore();
      case 'memory':
        return memory();
      case 'redis': {
        const l2 = redis();
        return this.#withBus(l2, l2);
      }
      case 'tiered': {
        const l2 = redis();
        return this.#withBus(new TieredStore(memory(), l2, o.l1.defaultTtlSeconds), l2);
      }
    }
  }

  #withBus<S extends CacheStore>(store: S, l2: RedisStore): S {
    const o = this.options;
    if (!o.bus.enabled || o.redis === undefined) return store;
    const sub = createRedisClient(o.redis, {
      role: 'queue',
      connectTimeoutMs: o.l2.connectTimeoutMs,
      connectionName: `cachefleet:bus:${this.podId}`,
    });
    const bus = new EventBus(
      l2.client,
      sub,
      {
        stream: `${o.prefix}__bus`,
        channel: `${o.prefix}__bus`,
        maxLen: o.bus.maxLen,
        podId: this.podId,
        disconnectedTtlMs: o.bus.disconnectedTtlMs,
        ...(this.#logger ? { logger: this.#logger } : {}),
      },
      {
        apply: (event, own) => {
          if (own) return;
          if (event.event_type === 'prewarm') void this.#prewarmHere(event.namespace, event.keys);
          else applyToL1(this.#rt, event);
          for (const listener of this.#listeners) listener(event);
        },
        flush: (reason) => {
          this.#logger?.warn({ reason }, 'bus events were lost: L1 flushed');
          this.#rt.invalidated();
          this.#tiers.l1?.removeAll();
          void this.#loadGenerations();
        },
        disconnected: (cut) => {
          this.#rt.capL1Ttl(cut ? o.bus.disconnectedTtlMs : Number.POSITIVE_INFINITY);
          // Back on the bus (or on it for the first time after a degraded start): catch up on
          // whole-namespace invalidations too.
          if (!cut) void this.#loadGenerations();
        },
      },
    );
    this.#buses.set(store, bus);
    return store;
  }
}

function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses);
}

function namespaceStats(s: NamespaceState): NamespaceStats {
  const l1Misses = s.l2Hits + s.misses;
  return {
    namespace: s.ns.name,
    l1: { hits: s.l1Hits, misses: l1Misses, hitRate: rate(s.l1Hits, l1Misses) },
    l2: { hits: s.l2Hits, misses: s.misses, hitRate: rate(s.l2Hits, s.misses) },
    loads: s.loads,
    combinedHitRate: rate(s.l1Hits + s.l2Hits, s.misses),
    fencedFills: s.fencedFills,
  };
}

/** Validates the options (a bad one throws E_CACHE_CONFIG naming the field) and builds the cache. */
export function createCache(options: CacheOptions, deps?: CacheDeps): Cache {
  return new Cache(resolveCacheOptions(options), deps);
}
