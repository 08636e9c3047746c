import {
  boolishSchema,
  type Env,
  hostListSchema,
  intSchema,
  issueMessage,
  parseEnv,
  requireRedisUrl,
} from '@cachefleet/config';
import { type RedisConnection, redisConnectionSchema } from '@cachefleet/redis';
import { z } from 'zod';
import { CacheError } from './errors.js';

export const CACHE_IMPLS = ['null', 'memory', 'redis', 'tiered'] as const;
export type CacheImpl = (typeof CACHE_IMPLS)[number];

/** Every option with its default; resolved once by `createCache`, never per call. */
export const cacheOptionsSchema = z.object({
  /** Which store serves reads: `null` counts demand only, `memory` is L1 only, `redis` is L2 only. */
  impl: z.enum(CACHE_IMPLS).default('tiered'),
  /** Required for `redis` and `tiered`. */
  redis: redisConnectionSchema.optional(),
  /** Prepended to every Redis key this cache writes; SCAN-based clearing never leaves it. */
  prefix: z.string().max(64).default('cf:'),
  /** Used by the raw `store.set` when no TTL is given, seconds. */
  defaultTtlSeconds: z.number().positive().default(1800),
  l1: z
    .object({
      maxEntries: z.number().int().positive().default(10_000),
      /** L1 TTL for raw `store.set` calls; namespaces bring their own, seconds. */
      defaultTtlSeconds: z.number().positive().default(300),
      /** Upper bound on the JSON size of L1 entries, bytes. */
      maxBytes: z
        .number()
        .int()
        .positive()
        .default(64 * 1024 * 1024),
    })
    .prefault({}),
  l2: z
    .object({
      /** Values whose JSON is at least this long are deflated; 0 turns compression off. */
      compressionThreshold: z.number().int().min(0).default(2048),
      /** A command that takes longer fails (and counts toward the breaker). */
      commandTimeoutMs: z.number().int().positive().default(500),
      /** How long `start()` waits for the first connection before serving degraded. */
      connectTimeoutMs: z.number().int().positive().default(2000),
    })
    .prefault({}),
  breaker: z
    .object({
      /** Consecutive L2 failures that open the breaker. */
      failureThreshold: z.number().int().positive().default(5),
      /** How long an open breaker refuses L2 calls before one probe is let through, ms. */
      cooldownMs: z.number().int().positive().default(1000),
    })
    .prefault({}),
  lock: z
    .object({
      /** Lifetime of the fleet-wide load lock; must exceed the slowest loader call, ms. */
      ttlMs: z.number().int().positive().default(10_000),
      /** How long a waiter polls L2 for the lock holder's value before it loads itself, ms. */
      maxWaitMs: z.number().int().positive().default(5_000),
      /** First back-off between polls; doubles with ±50% jitter up to 200 ms. */
      retryMs: z.number().int().positive().default(10),
    })
    .prefault({}),
  bus: z
    .object({
      /** Pods tell each other about invalidations (needs Redis: impl redis or tiered). */
      enabled: z.boolean().default(true),
      /** This pod's name in events; default `<hostname>-<pid>-<random>`. */
      podId: z.string().min(1).max(128).optional(),
      /** Events kept in the stream for pods that reconnect (XADD MAXLEN ~). */
      maxLen: z.number().int().min(100).default(100_000),
      /** While a pod cannot hear the bus, its L1 keeps nothing longer than this, ms. */
      disconnectedTtlMs: z.number().int().positive().default(5_000),
      /** Life of an invalidation tombstone in L2; a fill that takes longer is not cached, ms. */
      tombstoneTtlMs: z.number().int().positive().default(60_000),
      /**
       * How long a write or an invalidation waits for its event to go out when Redis cannot take
       * it at once (a dropped connection, a failover), ms. Past that the call reports the fault;
       * the event is still kept and published (after its tombstones) once Redis answers. 0: never wait.
       */
      announceWaitMs: z.number().int().min(0).default(1_000),
      /**
       * How long a fleet-acknowledged invalidation (`{ wait: 'fleet' }`) waits for every live pod
       * by default, ms (docs/design-fleet-ack.md). A call may pass its own `timeoutMs`.
       */
      fleetWaitMs: z.number().int().min(1).max(60_000).default(2_000),
    })
    .prefault({}),
  /**
   * Hot-key sampling for the hot warm: pods count the reads already sampled for the L1 timing
   * (1 in l1TimingSampleRate) per id, and add them to a sorted set per namespace in L2.
   */
  hotKeys: z
    .object({
      enabled: z.boolean().default(true),
      /** How often the counts are flushed to Redis, ms. */
      flushMs: z.number().int().min(100).default(5_000),
      /** Ids kept per namespace's sorted set (the rest is trimmed at each flush). */
      keep: z.number().int().min(1).default(10_000),
    })
    .prefault({}),
  /**
   * The fleet's telemetry (docs/telemetry.md): a snapshot of this process's counters written to
   * the cache Redis every `intervalSeconds` (node-cron), kept for three intervals.
   */
  telemetry: z
    .object({
      enabled: z.boolean().default(true),
      /** A divisor of 60, so that ticks are evenly spaced. */
      intervalSeconds: z
        .number()
        .int()
        .min(1)
        .max(60)
        .refine((n) => 60 % n === 0, 'must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)')
        .default(5),
      /** How long a scrape makes this process the one exporter of the Redis gauges, ms. */
      exporterLeaseMs: z.number().int().min(1_000).max(3_600_000).default(60_000),
      /** What this process is in the fleet view: `api`, `worker`, … */
      role: z
        .string()
        .regex(/^[a-z][a-z0-9-]{0,31}$/)
        .default('app'),
    })
    .prefault({}),
  /** Keys of failed L2 deletes kept for replay once Redis is back. */
  maxPendingDeletes: z.number().int().min(0).default(10_000),
  /** Record one L1 lookup duration in this many (a power of two). */
  l1TimingSampleRate: z
    .number()
    .int()
    .positive()
    .refine((n) => (n & (n - 1)) === 0, 'must be a power of two')
    .default(64),
});
export type CacheOptions = z.input<typeof cacheOptionsSchema>;
export type ResolvedCacheOptions = z.output<typeof cacheOptionsSchema>;

export function resolveCacheOptions(options: CacheOptions): ResolvedCacheOptions {
  const parsed = cacheOptionsSchema.safeParse(options);
  if (!parsed.success) throw configError(issueMessage(parsed.error), parsed.error);
  const resolved = parsed.data;
  if ((resolved.impl === 'redis' || resolved.impl === 'tiered') && resolved.redis === undefined) {
    throw configError(`redis: required when impl is "${resolved.impl}"`);
  }
  return resolved;
}

/** The environment variables `loadCacheConfig` reads, each mapped to its option path. */
export const ENV_VARS = {
  FEATURE_CACHE: 'master switch: false forces impl=null (default true)',
  CACHE_IMPL: 'impl',
  CACHE_REDIS_MODE: 'redis.mode',
  CACHE_REDIS_URL: 'redis.url',
  REDIS_URL: "redis.url when CACHE_REDIS_URL is unset (the system's one Redis)",
  CACHE_REDIS_SENTINELS: 'redis.sentinels (host:port,host:port)',
  CACHE_REDIS_SENTINEL_NAME: 'redis.name',
  CACHE_REDIS_USERNAME: 'redis.username',
  CACHE_REDIS_PASSWORD: 'redis.password',
  CACHE_REDIS_SENTINEL_PASSWORD: 'redis.sentinelPassword',
  CACHE_REDIS_DB: 'redis.db',
  CACHE_REDIS_CLUSTER_NODES: 'redis.nodes (host:port,host:port)',
  CACHE_KEY_PREFIX: 'prefix',
  CACHE_DEFAULT_TTL: 'defaultTtlSeconds',
  CACHE_L1_MAX_ENTRIES: 'l1.maxEntries',
  CACHE_L1_MAX_BYTES: 'l1.maxBytes',
  CACHE_COMPRESSION_THRESHOLD: 'l2.compressionThreshold',
  CACHE_REDIS_COMMAND_TIMEOUT_MS: 'l2.commandTimeoutMs',
  CACHE_BREAKER_THRESHOLD: 'breaker.failureThreshold',
  CACHE_BREAKER_COOLDOWN_MS: 'breaker.cooldownMs',
  CACHE_LOCK_TTL_MS: 'lock.ttlMs',
  CACHE_LOCK_MAX_WAIT_MS: 'lock.maxWaitMs',
  CACHE_BUS_ENABLED: 'bus.enabled',
  CACHE_POD_ID: 'bus.podId',
  CACHE_BUS_MAXLEN: 'bus.maxLen',
  CACHE_DISCONNECTED_TTL_MS: 'bus.disconnectedTtlMs',
  CACHE_TOMBSTONE_TTL_MS: 'bus.tombstoneTtlMs',
  CACHE_BUS_ANNOUNCE_WAIT_MS: 'bus.announceWaitMs',
  CACHE_BUS_FLEET_WAIT_MS: 'bus.fleetWaitMs',
  CACHE_HOT_KEYS_ENABLED: 'hotKeys.enabled',
  CACHE_HOT_KEYS_FLUSH_MS: 'hotKeys.flushMs',
  CACHE_HOT_KEYS_KEEP: 'hotKeys.keep',
  CACHE_TELEMETRY_ENABLED: 'telemetry.enabled',
  CACHE_TELEMETRY_INTERVAL_S: 'telemetry.intervalSeconds',
  CACHE_METRICS_LEASE_MS: 'telemetry.exporterLeaseMs',
} as const;
type EnvVar = keyof typeof ENV_VARS;

const boolish = boolishSchema;
const intish = intSchema;
const hostList = hostListSchema;

export const CACHE_ENV_SCHEMA = z.object({
  FEATURE_CACHE: boolish
    .default(true)
    .describe(
      'master switch: false forces CACHE_IMPL=null (every read goes to the source of truth; demand still counted)',
    ),
  CACHE_IMPL: z
    .enum(CACHE_IMPLS)
    .optional()
    .describe(
      'which store serves reads: null counts demand only, memory is L1 only, redis is L2 only, tiered is L1 then L2 (default tiered; a worker defaults to redis)',
    ),
  CACHE_REDIS_MODE: z
    .enum(['single', 'sentinel', 'cluster'])
    .default('single')
    .describe('how the cache Redis is reached: single (CACHE_REDIS_URL / REDIS_URL), sentinel or cluster'),
  CACHE_REDIS_SENTINELS: hostList
    .optional()
    .describe('the Sentinels of the cache Redis (CACHE_REDIS_MODE=sentinel)'),
  CACHE_REDIS_SENTINEL_NAME: z
    .string()
    .optional()
    .describe('master name the Sentinels monitor (CACHE_REDIS_MODE=sentinel)'),
  CACHE_REDIS_USERNAME: z
    .string()
    .min(1)
    .optional()
    .describe(
      'ACL user of the cache Redis (sentinel and cluster; default `default`; in single mode put it in the URL)',
    ),
  CACHE_REDIS_PASSWORD: z
    .string()
    .optional()
    .describe('password of the cache Redis (sentinel and cluster; in single mode put it in the URL)'),
  CACHE_REDIS_SENTINEL_PASSWORD: z
    .string()
    .optional()
    .describe('password of the Sentinels themselves (CACHE_REDIS_MODE=sentinel only)'),
  CACHE_REDIS_DB: intish
    .min(0)
    .optional()
    .describe(
      'database number on the cache Redis (CACHE_REDIS_MODE=sentinel only; single: in the URL; a Cluster has db 0 only)',
    ),
  CACHE_REDIS_CLUSTER_NODES: hostList
    .optional()
    .describe('seed nodes of the cache Redis Cluster (CACHE_REDIS_MODE=cluster)'),
  CACHE_KEY_PREFIX: z
    .string()
    .optional()
    .describe('prepended to every Redis key the cache writes; SCAN-based clearing never leaves it'),
  CACHE_DEFAULT_TTL: intish
    .optional()
    .describe('L2 TTL of raw store.set calls without a TTL, seconds; namespaces bring their own'),
  CACHE_L1_MAX_ENTRIES: intish.optional().describe('entries the L1 LRU of each process keeps'),
  CACHE_L1_MAX_BYTES: intish
    .optional()
    .describe('upper bound on the JSON size of L1 entries, bytes (64 MiB by default)'),
  CACHE_COMPRESSION_THRESHOLD: intish
    .optional()
    .describe('values whose JSON is at least this long are deflated in L2, bytes; 0 turns compression off'),
  CACHE_REDIS_COMMAND_TIMEOUT_MS: intish
    .optional()
    .describe('an L2 command that takes longer fails and counts toward the breaker, ms'),
  CACHE_BREAKER_THRESHOLD: intish.optional().describe('consecutive L2 failures that open the breaker'),
  CACHE_BREAKER_COOLDOWN_MS: intish
    .optional()
    .describe('how long an open breaker refuses L2 calls before one probe is let through, ms'),
  CACHE_LOCK_TTL_MS: intish
    .optional()
    .describe('lifetime of the fleet-wide load lock; must exceed the slowest loader call, ms'),
  CACHE_LOCK_MAX_WAIT_MS: intish
    .optional()
    .describe(
      "how long a waiter polls L2 for the lock holder's value before it loads itself, ms (at most half the namespace's hard time-out when it has one)",
    ),
  CACHE_BUS_ENABLED: boolish
    .optional()
    .describe('pods tell each other about invalidations over the bus (needs Redis: impl redis or tiered)'),
  CACHE_POD_ID: z
    .string()
    .optional()
    .describe("this process's name in bus events (default <hostname>-<pid>-<random>)"),
  CACHE_BUS_MAXLEN: intish
    .optional()
    .describe('bus events kept in the stream for pods that reconnect, XADD MAXLEN ~'),
  CACHE_DISCONNECTED_TTL_MS: intish
    .optional()
    .describe('while a pod cannot hear the bus, its L1 keeps nothing longer than this, ms'),
  CACHE_TOMBSTONE_TTL_MS: intish
    .optional()
    .describe('life of an invalidation tombstone in L2; a fill that takes longer is not cached, ms'),
  CACHE_BUS_ANNOUNCE_WAIT_MS: intish
    .optional()
    .describe(
      'how long a write or an invalidation waits for its event to go out when Redis cannot take it at once, ms; 0 = never wait',
    ),
  CACHE_BUS_FLEET_WAIT_MS: intish
    .optional()
    .describe(
      "how long an invalidation with { wait: 'fleet' } waits for every live pod's acknowledgement by default, ms (1-60000)",
    ),
  CACHE_HOT_KEYS_ENABLED: boolish
    .optional()
    .describe('hot-key sampling for the hot warm (default true; a worker defaults to false)'),
  CACHE_TELEMETRY_ENABLED: boolish
    .optional()
    .describe('the fleet telemetry snapshot written to the cache Redis'),
  CACHE_TELEMETRY_INTERVAL_S: intish
    .optional()
    .describe('how often the telemetry snapshot is written, seconds; a divisor of 60'),
  CACHE_METRICS_LEASE_MS: intish
    .optional()
    .describe('how long a scrape makes this process the one exporter of the Redis gauges, ms'),
  CACHE_HOT_KEYS_FLUSH_MS: intish
    .optional()
    .describe('how often the hot-key counts are flushed to Redis, ms'),
  CACHE_HOT_KEYS_KEEP: intish.optional().describe("ids kept per namespace's hot-key sorted set"),
});

/**
 * Reads the A4 switches from an environment object (pass `process.env`; the library never reads
 * it by itself) and validates them. A bad value throws E_CACHE_CONFIG naming the variable.
 */
export function loadCacheConfig(env: Env): ResolvedCacheOptions {
  const e = parseEnv(CACHE_ENV_SCHEMA, env, configError);
  const impl = e.FEATURE_CACHE ? (e.CACHE_IMPL ?? 'tiered') : 'null';
  const needsRedis = impl === 'redis' || impl === 'tiered';
  const redis = needsRedis ? redisFromEnv(e, env) : undefined;
  const options: CacheOptions = {
    impl,
    ...(redis ? { redis } : {}),
    ...(e.CACHE_KEY_PREFIX !== undefined ? { prefix: e.CACHE_KEY_PREFIX } : {}),
    ...(e.CACHE_DEFAULT_TTL !== undefined ? { defaultTtlSeconds: e.CACHE_DEFAULT_TTL } : {}),
    l1: {
      ...(e.CACHE_L1_MAX_ENTRIES !== undefined ? { maxEntries: e.CACHE_L1_MAX_ENTRIES } : {}),
      ...(e.CACHE_L1_MAX_BYTES !== undefined ? { maxBytes: e.CACHE_L1_MAX_BYTES } : {}),
    },
    l2: {
      ...(e.CACHE_COMPRESSION_THRESHOLD !== undefined
        ? { compressionThreshold: e.CACHE_COMPRESSION_THRESHOLD }
        : {}),
      ...(e.CACHE_REDIS_COMMAND_TIMEOUT_MS !== undefined
        ? { commandTimeoutMs: e.CACHE_REDIS_COMMAND_TIMEOUT_MS }
        : {}),
    },
    breaker: {
      ...(e.CACHE_BREAKER_THRESHOLD !== undefined ? { failureThreshold: e.CACHE_BREAKER_THRESHOLD } : {}),
      ...(e.CACHE_BREAKER_COOLDOWN_MS !== undefined ? { cooldownMs: e.CACHE_BREAKER_COOLDOWN_MS } : {}),
    },
    lock: {
      ...(e.CACHE_LOCK_TTL_MS !== undefined ? { ttlMs: e.CACHE_LOCK_TTL_MS } : {}),
      ...(e.CACHE_LOCK_MAX_WAIT_MS !== undefined ? { maxWaitMs: e.CACHE_LOCK_MAX_WAIT_MS } : {}),
    },
    bus: {
      ...(e.CACHE_BUS_ENABLED !== undefined ? { enabled: e.CACHE_BUS_ENABLED } : {}),
      ...(e.CACHE_POD_ID !== undefined ? { podId: e.CACHE_POD_ID } : {}),
      ...(e.CACHE_BUS_MAXLEN !== undefined ? { maxLen: e.CACHE_BUS_MAXLEN } : {}),
      ...(e.CACHE_DISCONNECTED_TTL_MS !== undefined
        ? { disconnectedTtlMs: e.CACHE_DISCONNECTED_TTL_MS }
        : {}),
      ...(e.CACHE_TOMBSTONE_TTL_MS !== undefined ? { tombstoneTtlMs: e.CACHE_TOMBSTONE_TTL_MS } : {}),
      ...(e.CACHE_BUS_ANNOUNCE_WAIT_MS !== undefined ? { announceWaitMs: e.CACHE_BUS_ANNOUNCE_WAIT_MS } : {}),
      ...(e.CACHE_BUS_FLEET_WAIT_MS !== undefined ? { fleetWaitMs: e.CACHE_BUS_FLEET_WAIT_MS } : {}),
    },
    hotKeys: {
      ...(e.CACHE_HOT_KEYS_ENABLED !== undefined ? { enabled: e.CACHE_HOT_KEYS_ENABLED } : {}),
      ...(e.CACHE_HOT_KEYS_FLUSH_MS !== undefined ? { flushMs: e.CACHE_HOT_KEYS_FLUSH_MS } : {}),
      ...(e.CACHE_HOT_KEYS_KEEP !== undefined ? { keep: e.CACHE_HOT_KEYS_KEEP } : {}),
    },
    telemetry: {
      ...(e.CACHE_TELEMETRY_ENABLED !== undefined ? { enabled: e.CACHE_TELEMETRY_ENABLED } : {}),
      ...(e.CACHE_TELEMETRY_INTERVAL_S !== undefined
        ? { intervalSeconds: e.CACHE_TELEMETRY_INTERVAL_S }
        : {}),
      // Read but never passed on before docs/configuration.md listed it: the setting did nothing.
      ...(e.CACHE_METRICS_LEASE_MS !== undefined ? { exporterLeaseMs: e.CACHE_METRICS_LEASE_MS } : {}),
    },
  };
  const resolved = cacheOptionsSchema.safeParse(options);
  if (!resolved.success) {
    const message = issueMessage(resolved.error, { name: (path) => optionPathToEnv(path.join('.')) });
    throw configError(message, resolved.error);
  }
  return resolved.data;
}

function redisFromEnv(e: z.output<typeof CACHE_ENV_SCHEMA>, env: Env): RedisConnection {
  const missing = (name: EnvVar, why: string) => configError(`${name}: required ${why}`);
  if (e.CACHE_REDIS_MODE !== 'sentinel') {
    if (e.CACHE_REDIS_DB !== undefined)
      throw configError(
        'CACHE_REDIS_DB: only with CACHE_REDIS_MODE=sentinel (single: put it in CACHE_REDIS_URL, redis://host:port/2; a Cluster has db 0 only)',
      );
    if (e.CACHE_REDIS_SENTINEL_PASSWORD !== undefined)
      throw configError('CACHE_REDIS_SENTINEL_PASSWORD: only with CACHE_REDIS_MODE=sentinel');
  }
  if (e.CACHE_REDIS_MODE === 'single' && e.CACHE_REDIS_USERNAME !== undefined)
    throw configError(
      'CACHE_REDIS_USERNAME: only with CACHE_REDIS_MODE=sentinel or cluster (single: put it in CACHE_REDIS_URL, redis://user:password@host:port)',
    );
  const username = e.CACHE_REDIS_USERNAME !== undefined ? { username: e.CACHE_REDIS_USERNAME } : {};
  switch (e.CACHE_REDIS_MODE) {
    case 'single':
      // CACHE_REDIS_URL, else REDIS_URL (the system's one Redis); none set: an error, no address assumed.
      return { mode: 'single', url: requireRedisUrl(env, 'cache', configError).url };
    case 'sentinel':
      if (e.CACHE_REDIS_SENTINELS === undefined)
        throw missing('CACHE_REDIS_SENTINELS', 'when CACHE_REDIS_MODE=sentinel');
      if (e.CACHE_REDIS_SENTINEL_NAME === undefined)
        throw missing('CACHE_REDIS_SENTINEL_NAME', 'when CACHE_REDIS_MODE=sentinel');
      return {
        mode: 'sentinel',
        sentinels: e.CACHE_REDIS_SENTINELS,
        name: e.CACHE_REDIS_SENTINEL_NAME,
        ...username,
        ...(e.CACHE_REDIS_PASSWORD !== undefined ? { password: e.CACHE_REDIS_PASSWORD } : {}),
        ...(e.CACHE_REDIS_SENTINEL_PASSWORD !== undefined
          ? { sentinelPassword: e.CACHE_REDIS_SENTINEL_PASSWORD }
          : {}),
        ...(e.CACHE_REDIS_DB !== undefined ? { db: e.CACHE_REDIS_DB } : {}),
      };
    case 'cluster':
      if (e.CACHE_REDIS_CLUSTER_NODES === undefined)
        throw missing('CACHE_REDIS_CLUSTER_NODES', 'when CACHE_REDIS_MODE=cluster');
      return {
        mode: 'cluster',
        nodes: e.CACHE_REDIS_CLUSTER_NODES,
        ...username,
        ...(e.CACHE_REDIS_PASSWORD !== undefined ? { password: e.CACHE_REDIS_PASSWORD } : {}),
      };
  }
}

function optionPathToEnv(path: string): string {
  const hit = Object.entries(ENV_VARS).find(([, p]) => p === path || p.startsWith(`${path} `));
  return hit ? hit[0] : path;
}

function configError(message: string, cause?: z.ZodError): CacheError {
  return new CacheError('E_CACHE_CONFIG', message, { cause });
}
