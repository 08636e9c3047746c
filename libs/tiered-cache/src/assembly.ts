import { cacheKeys, createRedisClient } from '@cachefleet/redis';
import type { Logger } from 'pino';
import { type BusHandlers, EventBus } from './bus/event-bus.js';
import type { CacheImpl, ResolvedCacheOptions } from './config.js';
import type { BreakerState } from './drivers/breaker.js';
import { MemoryStore } from './drivers/memory.js';
import { NullStore } from './drivers/null.js';
import { INVALIDATE_PUBLISH } from './drivers/redis/scripts.js';
import { RedisStore } from './drivers/redis/store.js';
import { TieredStore } from './drivers/tiered.js';
import { CacheError } from './errors.js';
import type { Observer } from './metrics/histogram.js';
import type { Tiers } from './stack/read-through.js';
import type { CacheStore } from './types.js';

interface AssemblyDeps {
  readonly options: ResolvedCacheOptions;
  readonly podId: string;
  readonly logger: Logger | undefined;
  /** Every breaker change of the L2 store built (metrics count them). */
  readonly onBreakerChange: (from: BreakerState, to: BreakerState) => void;
  /** What the bus does with events; the bus is built with redis and tiered stores. */
  readonly handlers: BusHandlers;
  /** Where the bus records each event's age when applied (cachefleet_cache_bus_lag_seconds). */
  readonly busLag?: Observer;
}

interface Assembled {
  readonly store: CacheStore;
  readonly bus: EventBus | undefined;
}

/** Builds the store of an implementation and, over its Redis, the bus. No I/O: `start()` connects. */
export function assemble(impl: CacheImpl, deps: AssemblyDeps): Assembled {
  const o = deps.options;
  const memory = () =>
    new MemoryStore({
      maxEntries: o.l1.maxEntries,
      maxBytes: o.l1.maxBytes,
      defaultTtlSeconds: o.l1.defaultTtlSeconds,
    });
  switch (impl) {
    case 'null':
      return { store: new NullStore(), bus: undefined };
    case 'memory':
      return { store: memory(), bus: undefined };
    case 'redis': {
      const l2 = redisStore(impl, deps);
      return { store: l2, bus: bus(l2, deps, false) };
    }
    case 'tiered': {
      const l2 = redisStore(impl, deps);
      return { store: new TieredStore(memory(), l2, o.l1.defaultTtlSeconds), bus: bus(l2, deps, true) };
    }
  }
}

/** The tiers the read-through layer works on, for a store `assemble` built. */
export function tiersOf(store: CacheStore): Tiers {
  return {
    l1: store instanceof TieredStore ? store.l1 : store instanceof MemoryStore ? store : undefined,
    l2: store instanceof TieredStore ? store.l2 : store instanceof RedisStore ? store : undefined,
  };
}

function redisStore(impl: CacheImpl, deps: AssemblyDeps): RedisStore {
  const o = deps.options;
  if (o.redis === undefined) {
    throw new CacheError('E_CACHE_CONFIG', `redis: required when impl is "${impl}"`);
  }
  const client = createRedisClient(o.redis, {
    role: 'cache',
    connectTimeoutMs: o.l2.connectTimeoutMs,
    connectionName: `cachefleet:cache:${deps.podId}`,
    // A delete's tombstones and event (one script): every pod's delivery waits on it. Auto-pipelined
    // it waited for setImmediate behind ~40 µs of Pipeline building (cold, in the publisher's profile).
    sendAtOnce: [INVALIDATE_PUBLISH],
    onError: (error) => deps.logger?.debug({ err: error.message }, 'cache redis connection error'),
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
    onBreakerChange: deps.onBreakerChange,
  });
}

/** Publishes through the store's client; listens on a connection of its own (a subscriber can do nothing else). */
function bus(l2: RedisStore, deps: AssemblyDeps, withL1: boolean): EventBus | undefined {
  const o = deps.options;
  if (!o.bus.enabled || o.redis === undefined) return undefined;
  const sub = createRedisClient(o.redis, {
    role: 'queue',
    connectTimeoutMs: o.l2.connectTimeoutMs,
    connectionName: `cachefleet:bus:${deps.podId}`,
  });
  const keys = cacheKeys(o.prefix);
  return new EventBus(
    l2.client,
    sub,
    {
      stream: keys.bus,
      channel: keys.busChannel,
      maxLen: o.bus.maxLen,
      podId: deps.podId,
      disconnectedTtlMs: o.bus.disconnectedTtlMs,
      // Only a pod with an L1 has anything to drop, so only it acknowledges (and is waited for).
      acks: { key: (token) => keys.ack(token), channel: (pod) => keys.ackChannel(pod), send: withL1 },
      ...(deps.logger ? { logger: deps.logger } : {}),
      ...(deps.busLag ? { lag: deps.busLag } : {}),
    },
    deps.handlers,
  );
}
