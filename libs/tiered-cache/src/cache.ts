import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { entryGlob, scopedTag } from '@cachefleet/redis';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { assemble, tiersOf } from './assembly.js';
import type { EventBus } from './bus/event-bus.js';
import type { CacheEvent, CacheEventInput, EventBody } from './bus/events.js';
import {
  type CacheImpl,
  type CacheOptions,
  type ResolvedCacheOptions,
  resolveCacheOptions,
} from './config.js';
import type { RedisStore } from './drivers/redis/store.js';
import type { TuningStore } from './drivers/redis/tuning.js';
import { CacheError } from './errors.js';
import { FleetOps, ID_PATTERN } from './fleet.js';
import { type Acknowledged, type FleetWait, splitWait, waitForFleet } from './fleet-wait.js';
import type { Observer } from './metrics/histogram.js';
import { registerCacheMetrics } from './metrics/prometheus.js';
import { type RedisMetrics, registerRedisMetrics } from './metrics/redis.js';
import type { Namespace } from './namespace.js';
import { CacheRegistry, type CacheStatus } from './registry.js';
import { err, ok, type Result } from './result.js';
import { busHandlers, dropNamespaceL1, loadGenerations, prewarmHere } from './stack/bus-handlers.js';
import { globToRegExp, removeTagged } from './stack/coherence.js';
import type { ReadOptions } from './stack/fail-safe.js';
import type { DeepReadonly } from './stack/freeze.js';
import { ReadThrough } from './stack/read-through.js';
import { totals } from './stack/state.js';
import { type NamespaceStats, namespaceStats, type TierStats, tierStats } from './stats.js';
import {
  type CohortCount,
  type FleetView,
  readFleet,
  TelemetryPublisher,
  takeFences,
  takeSnapshot,
} from './telemetry.js';
import { cacheTracing, traceCalls } from './tracing.js';
import { factorsOfEvent, type NamespaceTuning } from './tuning.js';
import type { CacheStore } from './types.js';

export interface CacheDeps {
  /** Where the cache registers its metrics; a fresh registry by default (`cache.metrics`). */
  readonly metricsRegistry?: Registry;
  /** pino logger for breaker changes, bus gaps and degraded starts; silent by default. */
  readonly logger?: Logger;
  /**
   * Spans for reads, writes and invalidations (docs/tracing.md). Default: on when an OpenTelemetry
   * tracer provider is registered when the cache is built; `false`: never.
   */
  readonly tracing?: boolean;
}

/**
 * The cache an app instance holds: a registry with the active store, the read-through paths over
 * it, and the bus that keeps this pod's L1 coherent with the fleet. Construct with `createCache`,
 * then `await start()`; no I/O happens before that.
 */
/** An invalidation event's body (the ones a fleet-acknowledged invalidation can carry a token on). */
type InvalidateBody = Extract<EventBody, { event_type: 'invalidate' }>;

/** Random keys a scrape sizes for the L2 estimates (the exporter only). */
const SCRAPE_SAMPLES = 200;

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
  #closed = false;
  #hotTimer: NodeJS.Timeout | undefined;
  #telemetry: TelemetryPublisher | undefined;
  #tuneTimer: NodeJS.Timeout | undefined;
  #cohorts: (() => readonly CohortCount[]) | undefined;
  readonly #redisMetrics: RedisMetrics;
  readonly #busLag: Observer;
  /** Primitives of the worker fleet: warm batches, bulk invalidation steps, hot keys. */
  readonly fleet: FleetOps;

  constructor(options: ResolvedCacheOptions, deps: CacheDeps = {}) {
    this.options = options;
    this.#logger = deps.logger;
    this.podId = options.bus.podId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.metrics = deps.metricsRegistry ?? new Registry();
    const { timing, busLag } = registerCacheMetrics(this.metrics, {
      impl: () => this.registry.store.impl,
      states: () => this.#rt.states,
      l1: () => this.#rt.l1,
      l2: () => this.#rt.l2,
      breakerTransitions: () => this.#breakerTransitions,
      bus: () => this.bus,
    });
    this.#busLag = busLag;
    this.#redisMetrics = registerRedisMetrics(this.metrics, {
      l2: () => this.#rt.l2,
      leaseMs: options.telemetry.exporterLeaseMs,
      samples: SCRAPE_SAMPLES,
    });
    const tracing = cacheTracing(deps.tracing);
    // A fill that retracted its own L2 entry (Cluster only) is announced: other pods drop it from L1.
    this.#rt = new ReadThrough(
      options,
      timing,
      (namespace, id) => {
        const bus = this.bus;
        if (bus) void bus.publish(this.#event({ event_type: 'invalidate', namespace, keys: [id] }));
      },
      tracing,
    );
    this.fleet = new FleetOps({
      rt: this.#rt,
      l2: () => this.#rt.l2,
      announce: (body) => this.#announce(body, ok(undefined)),
      sampleRate: options.l1TimingSampleRate,
      hotKeep: options.hotKeys.keep,
    });
    // A tuner's decision (docs/tuning.md): applied live, for new writes.
    this.#listeners.add((event) => {
      if (event.event_type !== 'config') return;
      const f = factorsOfEvent(event.settings);
      if (f !== undefined) this.#applyFactors(event.namespace, f);
    });
    const store = this.#build(options.impl);
    this.registry = new CacheRegistry(store, () => totals(this.#rt.states));
    this.#rt.useTiers(tiersOf(store));
    if (tracing !== undefined) traceCalls(this, tracing);
  }

  /** Connects the active store and its bus. Never rejects because Redis is down: it starts degraded. */
  async start(): Promise<void> {
    await this.#startStore(this.registry.store);
    if (this.options.hotKeys.enabled) {
      this.#hotTimer = setInterval(() => void this.fleet.flushHotKeys(), this.options.hotKeys.flushMs);
      this.#hotTimer.unref();
    }
    const l2 = this.#rt.l2;
    const t = this.options.telemetry;
    if (l2) {
      // The settings in force (stored, not only broadcast): read at start and every telemetry
      // interval, so a pod that started later or missed an event converges within one interval.
      await this.refreshTuning();
      let refreshing = false;
      this.#tuneTimer = setInterval(() => {
        if (refreshing) return;
        refreshing = true;
        void l2.tuning
          .settingsInBackground()
          .then((settings) => settings !== undefined && this.#applyTuning(settings))
          .finally(() => {
            refreshing = false;
          });
      }, t.intervalSeconds * 1000);
      this.#tuneTimer.unref();
    }
    if (l2 && t.enabled) {
      const startedAt = Date.now();
      this.#telemetry = new TelemetryPublisher({
        pod: this.podId,
        intervalSeconds: t.intervalSeconds,
        l2,
        logger: this.#logger,
        afterPublish: () => this.#takeFences(),
        snapshot: () =>
          takeSnapshot({
            pod: this.podId,
            role: t.role,
            startedAt,
            intervalMs: t.intervalSeconds * 1000,
            impl: this.status().implName,
            states: this.#rt.states,
            tiers: this.tiers(),
            l2,
            bus: this.bus,
            cohorts: this.#cohorts?.(),
          }),
      });
      await this.#telemetry.start();
    }
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
    clearInterval(this.#tuneTimer);
    await this.#telemetry?.stop();
    await this.#redisMetrics.release();
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

  /**
   * Read-through: L1 → L2 → the namespace loader (once per key across the fleet). `options`
   * override the namespace's grace and loader timeouts for this call; a value served past its TTL
   * has `stale` set (docs/design-read-path.md).
   */
  get<T>(ns: Namespace<T>, id: string, options?: ReadOptions): Promise<Result<DeepReadonly<T> | undefined>> {
    return this.#rt.get(ns, id, options) as Promise<Result<DeepReadonly<T> | undefined>>;
  }

  /** Batched read-through: one L2 round trip, one `loadMany` for what is left. Aligned with `ids`. */
  getMany<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<(DeepReadonly<T> | undefined)[]>> {
    return this.#rt.getMany(ns, ids) as Promise<Result<(DeepReadonly<T> | undefined)[]>>;
  }

  /**
   * Validates and writes L2 then L1, then tells the other pods to drop their copy. When Redis cannot
   * take the write, the call reports the fault; the key's invalidation is kept and, once Redis
   * answers, written and announced all the same (no pod keeps the value this write replaced).
   */
  async set<T>(ns: Namespace<T>, id: string, value: T): Promise<Result<void>> {
    const r = await this.#rt.set(ns, id, value);
    if (!r.ok) {
      if (isL2Fault(r.error)) void this.#announceAfterReplay(ns, [id]);
      return r;
    }
    return this.#announce({ event_type: 'update', namespace: ns.name, keys: [id], version: ns.version }, r);
  }

  /**
   * Invalidates ids: L1 here, a tombstone in L2 (a fill racing this call cannot write the old value
   * back), then an event to every pod. Resolves once all three are done: an acknowledged invalidation.
   *
   * When Redis cannot take the tombstones (a dropped connection, an open breaker), they are kept in
   * this process (up to maxPendingDeletes) together with the event, and both go out once Redis
   * answers: tombstones first, then the event. The call waits up to bus.announceWaitMs for that and
   * then resolves ok (0: how many live values were replaced is not known); past it, it reports the
   * fault while the invalidation still waits in this process.
   */
  delete<T>(ns: Namespace<T>, ...ids: string[]): Promise<Result<number>>;
  /**
   * The same, resolving only once every live pod has applied it to its L1, or after `timeoutMs`
   * with the pods that did not answer in `fleet.missing` (fenced: they drop the namespace's L1 when
   * they come back). docs/design-fleet-ack.md.
   */
  delete<T>(
    ns: Namespace<T>,
    ...idsThenWait: [...ids: string[], wait: FleetWait]
  ): Promise<Result<Acknowledged<number>>>;
  delete<T>(
    ns: Namespace<T>,
    ...args: (string | FleetWait)[]
  ): Promise<Result<number> | Result<Acknowledged<number>>> {
    const { ids, wait } = splitWait(args);
    if (wait === undefined) return this.#delete(ns, ids, undefined);
    return this.#fleetWait(ns, wait, (ack) => this.#delete(ns, ids, ack), ids.length === 0);
  }

  /** Resolves once every live pod applied `run`'s invalidation (its event carries the token `ack`). */
  #fleetWait<T, R>(
    ns: Namespace<T>,
    wait: unknown,
    run: (ack: string | undefined) => Promise<Result<R>>,
    nothing = false,
  ): Promise<Result<Acknowledged<R>>> {
    return waitForFleet(
      {
        bus: this.bus,
        l2: this.#rt.l2,
        podId: this.podId,
        telemetryEnabled: this.options.telemetry.enabled,
        defaultTimeoutMs: this.options.bus.fleetWaitMs,
        logger: this.#logger,
      },
      ns.name,
      wait,
      run,
      nothing,
    );
  }

  /** The fences other pods left this one: each namespace named is dropped from L1 (docs/design-fleet-ack.md). */
  async #takeFences(): Promise<void> {
    const l2 = this.#rt.l2;
    if (l2 === undefined || this.#rt.l1 === undefined) return;
    const r = await takeFences(l2, this.podId);
    if (!r.ok) return;
    for (const name of r.value) {
      const removed = dropNamespaceL1(this.#rt, name);
      const stats = this.bus?.stats;
      if (stats !== undefined) stats.fenced++;
      this.#logger?.warn(
        { namespace: name, removed },
        'this pod missed acknowledging an invalidation in time: its L1 of the namespace was dropped',
      );
    }
  }

  async #delete<T>(ns: Namespace<T>, ids: string[], ack: string | undefined): Promise<Result<number>> {
    if (ids.length === 0) return this.#rt.delete(ns as Namespace<unknown>, ids);
    const body = withAck(
      { event_type: 'invalidate', namespace: ns.name, keys: ids, version: ns.version },
      ack,
    );
    // Where the store can, the tombstones' script publishes the event too: one round trip, not two.
    const inline = ids.length <= INLINE_MAX_IDS ? this.bus?.inline(this.#event(body)) : undefined;
    const r = await this.#rt.delete(ns as Namespace<unknown>, ids, inline);
    if (r.ok) return inline?.id !== undefined ? r : this.#announce(body, r);
    if (!isL2Fault(r.error)) return r;
    const d = await this.#awaitDelivery(this.#announceAfterReplay(ns, ids, ack));
    // Past the wait: the fault the caller can act on is "kept, announced once Redis answers", not
    // whichever command error the first attempt happened to meet (a dying socket or a refusal).
    return d.ok ? ok(0) : err(d.error);
  }

  /**
   * Ids whose tombstones Redis could not take: their invalidation event waits until the store has
   * replayed them (sent earlier, another pod would drop its copy and read the old value back from
   * L2), then goes through the bus's outbox. Resolves once published (at once without a bus).
   */
  async #announceAfterReplay<T>(
    ns: Namespace<T>,
    ids: readonly string[],
    ack?: string,
  ): Promise<Result<unknown>> {
    const l2 = this.#rt.l2;
    if (l2 === undefined) return ok(undefined);
    const keyBase = this.#rt.state(ns as Namespace<unknown>).keyBase;
    await l2.fence.whenWritten(ids.map((id) => keyBase + id));
    const bus = this.bus;
    if (bus === undefined) return ok(undefined);
    return bus.deliver(
      this.#event(
        withAck({ event_type: 'invalidate', namespace: ns.name, keys: [...ids], version: ns.version }, ack),
      ),
    );
  }

  /** Invalidates every entry of the namespace carrying any of the tags (tag index: no SCAN). */
  invalidateTags<T>(ns: Namespace<T>, tags: readonly string[]): Promise<Result<number>>;
  /** The same, acknowledged by every live pod (see `delete`). */
  invalidateTags<T>(
    ns: Namespace<T>,
    tags: readonly string[],
    wait: FleetWait,
  ): Promise<Result<Acknowledged<number>>>;
  invalidateTags<T>(
    ns: Namespace<T>,
    tags: readonly string[],
    wait?: FleetWait,
  ): Promise<Result<number> | Result<Acknowledged<number>>> {
    if (wait === undefined) return this.#invalidateTags(ns, tags, undefined);
    return this.#fleetWait(ns, wait, (ack) => this.#invalidateTags(ns, tags, ack), tags.length === 0);
  }

  async #invalidateTags<T>(
    ns: Namespace<T>,
    tags: readonly string[],
    ack: string | undefined,
  ): Promise<Result<number>> {
    if (tags.length === 0) return ok(0);
    const scoped = tags.map((t) => scopedTag(ns.name, t));
    return this.#invalidateWalk(
      ns,
      () => removeTagged(this.#rt, ns.name, tags),
      (l2) => l2.fence.invalidateTags(scoped),
      withAck({ event_type: 'invalidate', namespace: ns.name, tags: [...tags] }, ack),
    );
  }

  /**
   * Invalidates the ids of a namespace matching a Redis glob (`*`, `?`, `[…]`), by SCAN (never KEYS)
   * in L2 and in every pod's L1. Patterns cannot leave the namespace: the glob applies to ids only.
   * Millions of keys belong in an invalidate job (workers), not in a request.
   */
  invalidatePattern<T>(ns: Namespace<T>, pattern: string): Promise<Result<number>>;
  /** The same, acknowledged by every live pod (see `delete`). */
  invalidatePattern<T>(
    ns: Namespace<T>,
    pattern: string,
    wait: FleetWait,
  ): Promise<Result<Acknowledged<number>>>;
  invalidatePattern<T>(
    ns: Namespace<T>,
    pattern: string,
    wait?: FleetWait,
  ): Promise<Result<number> | Result<Acknowledged<number>>> {
    if (wait === undefined) return this.#invalidatePattern(ns, pattern, undefined);
    return this.#fleetWait(ns, wait, (ack) => this.#invalidatePattern(ns, pattern, ack));
  }

  async #invalidatePattern<T>(
    ns: Namespace<T>,
    pattern: string,
    ack: string | undefined,
  ): Promise<Result<number>> {
    if (!ID_PATTERN.test(pattern)) {
      return err(
        new CacheError('E_CACHE_INVALID_ID', `invalid pattern for ${ns.name}: ${JSON.stringify(pattern)}`),
      );
    }
    const re = globToRegExp(pattern);
    const keyBase = this.#rt.state(ns as Namespace<unknown>).keyBase;
    return this.#invalidateWalk(
      ns,
      () => this.#rt.l1?.removeWhere(keyBase, (id) => re.test(id)) ?? 0,
      (l2) => l2.fence.invalidateMatching(entryGlob(keyBase, pattern)),
      withAck({ event_type: 'invalidate', namespace: ns.name, key_pattern: pattern }, ack),
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
    event: InvalidateBody,
  ): Promise<Result<number>> {
    const st = this.#rt.state(ns as Namespace<unknown>);
    const clear = () => {
      this.#rt.invalidated();
      this.#rt.dropInflight(st.keyBase);
      return local();
    };
    let removed = clear();
    const l2 = this.#rt.l2;
    if (l2) {
      const bumped = await l2.fence.bumpInvalidations(ns.name);
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
  invalidateNamespace<T>(ns: Namespace<T>): Promise<Result<number>>;
  /** The same, acknowledged by every live pod (see `delete`). */
  invalidateNamespace<T>(ns: Namespace<T>, wait: FleetWait): Promise<Result<Acknowledged<number>>>;
  invalidateNamespace<T>(
    ns: Namespace<T>,
    wait?: FleetWait,
  ): Promise<Result<number> | Result<Acknowledged<number>>> {
    if (wait === undefined) return this.#invalidateNamespace(ns, undefined);
    return this.#fleetWait(ns, wait, (ack) => this.#invalidateNamespace(ns, ack));
  }

  async #invalidateNamespace<T>(ns: Namespace<T>, ack: string | undefined): Promise<Result<number>> {
    const st = this.#rt.state(ns as Namespace<unknown>);
    const l2 = this.#rt.l2;
    let generation: number;
    if (l2) {
      const r = await l2.fence.bumpGeneration(ns.name);
      if (!r.ok) return r;
      generation = r.value;
    } else generation = this.#rt.generation(ns.name) + 1;
    st.invalidations++;
    this.#rt.setGeneration(ns.name, generation);
    return this.#announce(
      withAck({ event_type: 'invalidate', namespace: ns.name, key_pattern: '*', generation }, ack),
      ok(generation),
    );
  }

  /** Asks every pod to copy these ids from L2 into L1 (critical keys after a warm). */
  async prewarm<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<string>> {
    const bus = this.bus;
    if (!bus)
      return err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'prewarm needs the bus (impl tiered or redis)'));
    const r = await prewarmHere(this.#rt, ns.name, ids);
    if (!r.ok) return r;
    return bus.publish(this.#event({ event_type: 'prewarm', namespace: ns.name, keys: [...ids] }));
  }

  /**
   * Adds the rollout cohorts' request and error counts (an API pod's) to every telemetry snapshot
   * from now on; the tuner's rollout guard reads them (docs/tuning.md).
   */
  reportCohorts(source: () => readonly CohortCount[]): void {
    this.#cohorts = source;
  }

  /** The tuner's keys in the cache Redis (settings, pins, audit, state); needs L2. */
  get tuning(): Result<TuningStore> {
    const l2 = this.#rt.l2;
    return l2
      ? ok(l2.tuning)
      : err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'tuning needs Redis (impl redis or tiered)'));
  }

  /**
   * Reads the settings in force from the cache Redis and applies them here (a namespace absent
   * from them goes back to its definition's TTLs). Also what a pod does at start.
   */
  async refreshTuning(): Promise<Result<ReadonlyMap<string, NamespaceTuning>>> {
    const t = this.tuning;
    if (!t.ok) return t;
    const r = await t.value.settings();
    if (r.ok) this.#applyTuning(r.value);
    return r;
  }

  /** The settings in force everywhere here; a namespace absent from them goes back to factors 1. */
  #applyTuning(settings: ReadonlyMap<string, NamespaceTuning>): void {
    const names = new Set<string>(settings.keys());
    for (const st of this.#rt.states) if (st) names.add(st.ns.name);
    for (const name of names) {
      const s = settings.get(name);
      this.#applyFactors(name, { l1TtlFactor: s?.l1TtlFactor ?? 1, l2TtlFactor: s?.l2TtlFactor ?? 1 });
    }
  }

  /** Applies a tuner's decision here and tells every pod (a `config` event on the bus). */
  async applyTuning(namespace: string, tuning: NamespaceTuning): Promise<Result<string>> {
    const settings = { l1TtlFactor: tuning.l1TtlFactor, l2TtlFactor: tuning.l2TtlFactor };
    this.#applyFactors(namespace, settings);
    return this.publishConfig(namespace, settings);
  }

  #applyFactors(namespace: string, f: { l1TtlFactor?: number; l2TtlFactor?: number }): void {
    const st = this.#rt.statesNamed(namespace)[0];
    this.#rt.tune(namespace, f.l1TtlFactor ?? st?.l1TtlFactor ?? 1, f.l2TtlFactor ?? st?.l2TtlFactor ?? 1);
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
    this.#rt.useTiers(tiersOf(next));
    this.#logger?.info({ from: previous.impl, to: impl }, 'cache implementation swapped');
    await this.#closeStore(previous);
  }

  status(): CacheStatus {
    return this.registry.status();
  }

  /** Size and state of each tier of the active store (G1), beside the per-namespace counters. */
  tiers(): TierStats {
    return tierStats(this.#rt);
  }

  stats(): NamespaceStats[] {
    return namespaceStats(this.#rt.states);
  }

  /**
   * The whole fleet as its processes' snapshots describe it, with Redis's INFO per node and each
   * namespace's keys and bytes estimated from `samples` random keys (0: no sample). Needs L2.
   */
  async fleetView(samples = 200): Promise<Result<FleetView>> {
    const l2 = this.#rt.l2;
    if (l2 === undefined)
      return err(
        new CacheError('E_CACHE_L2_UNAVAILABLE', 'the fleet view needs Redis (impl redis or tiered)'),
      );
    l2.noteMasters();
    return readFleet(l2, samples);
  }

  async #startStore(store: CacheStore): Promise<void> {
    await store.start();
    // Without Redis, start degraded at once: the bus connects (and replays) when Redis is back.
    const reachable = tiersOf(store).l2?.available ?? false;
    if (reachable) await loadGenerations(this.#rt);
    await this.#buses.get(store)?.start(reachable ? this.options.l2.connectTimeoutMs : 0);
  }

  async #closeStore(store: CacheStore): Promise<void> {
    await this.#buses.get(store)?.close();
    await store.close();
  }

  #event(body: EventBody): CacheEventInput {
    return { ...body, timestamp: Date.now(), source_pod: this.podId };
  }

  /**
   * Publishes what was just done here; the change stands even if the event could not go out at
   * once: the bus keeps it and sends it when Redis answers. Waits for that up to announceWaitMs.
   */
  async #announce<R>(body: EventBody, done: Result<R>): Promise<Result<R>> {
    const bus = this.bus;
    if (!bus) return done;
    const p = await this.#awaitDelivery(bus.deliver(this.#event(body)));
    return p.ok ? done : p;
  }

  /** An announcement's outcome, or after bus.announceWaitMs a fault (the announcement still goes out). */
  async #awaitDelivery(delivered: Promise<Result<unknown>>): Promise<Result<unknown>> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Result<unknown>>((resolve) => {
      timer = setTimeout(
        () =>
          resolve(
            err(
              new CacheError(
                'E_CACHE_L2_UNAVAILABLE',
                'Redis did not take the invalidation in time: it is kept and announced once Redis answers',
              ),
            ),
          ),
        this.options.bus.announceWaitMs,
      );
    });
    try {
      return await Promise.race([delivered, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  #build(impl: CacheImpl): CacheStore {
    const { store, bus } = assemble(impl, {
      options: this.options,
      podId: this.podId,
      logger: this.#logger,
      busLag: this.#busLag,
      onBreakerChange: (from, to) => {
        this.#breakerTransitions[to] = (this.#breakerTransitions[to] ?? 0) + 1;
        this.#logger?.warn({ from, to }, 'cache L2 circuit breaker changed state');
      },
      handlers: busHandlers({
        rt: this.#rt,
        disconnectedTtlMs: this.options.bus.disconnectedTtlMs,
        listeners: this.#listeners,
        logger: this.#logger,
        reconnected: () => void this.#takeFences(),
      }),
    });
    if (bus) this.#buses.set(store, bus);
    return store;
  }
}

/**
 * A `delete` of up to this many ids publishes its event in its tombstones' script: one script call
 * writes them all, so more would hold Redis longer than the round trip it saves.
 */
const INLINE_MAX_IDS = 100;

/** An invalidation's event, carrying the token of a fleet-acknowledged invalidation when there is one. */
function withAck(body: InvalidateBody, ack: string | undefined): InvalidateBody {
  return ack === undefined ? body : { ...body, ack };
}

/** A fault of Redis (not of the input): what could not be done there is kept and replayed. */
function isL2Fault(error: CacheError): boolean {
  return error.code === 'E_CACHE_L2_FAILED' || error.code === 'E_CACHE_L2_UNAVAILABLE';
}

/** Validates the options (a bad one throws E_CACHE_CONFIG naming the field) and builds the cache. */
export function createCache(options: CacheOptions, deps?: CacheDeps): Cache {
  return new Cache(resolveCacheOptions(options), deps);
}
