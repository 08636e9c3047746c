import { type Env, parseEnv, redisChoices } from '@cachefleet/config';
import {
  cacheKeys,
  createRedisClient,
  type RedisClient,
  type ResolvedRedisConnection,
} from '@cachefleet/redis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { JobError } from './errors.js';

/**
 * A system id keeps a process off another cachefleet system's Redis (a CLI line, a worker or a pod
 * started with the wrong REDIS_URL). `CACHEFLEET_SYSTEM_ID` names the system (`npm start` makes one
 * and keeps it in its data folder); the first process that has one stores it in each Redis it uses
 * (SET NX of one key under the prefix), and every process compares it at start:
 *
 * - configured, and the Redis holds the same id or none (then it is stored): go on;
 * - configured, and the Redis holds another: E_JOB_SYSTEM_ID naming both ids and the variables;
 * - not configured: the process adopts the id the Redis holds (and says so), or runs without one
 *   when none is stored; with two Redis, both must hold the same id (or none).
 */
export const SYSTEM_ID_ENV_VARS = {
  CACHEFLEET_SYSTEM_ID:
    'the id of this cachefleet system (letters, digits, _ -; npm start makes one): stored in each Redis at the first start, and a process refuses a Redis that holds another; unset: the stored one is adopted',
} as const;

export const systemIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - (at most 64)');

export const SYSTEM_ID_ENV_SCHEMA = z.object({
  CACHEFLEET_SYSTEM_ID: systemIdSchema.optional().describe(SYSTEM_ID_ENV_VARS.CACHEFLEET_SYSTEM_ID),
});

/** CACHEFLEET_SYSTEM_ID, validated (E_JOB_CONFIG naming it); undefined when unset or empty. */
export function loadSystemId(env: Env): string | undefined {
  return parseEnv(
    SYSTEM_ID_ENV_SCHEMA,
    env,
    (message, cause) => new JobError('E_JOB_CONFIG', message, { cause }),
  ).CACHEFLEET_SYSTEM_ID;
}

/** The key of the id in the queue Redis (`<QUEUE_PREFIX>:__system`; the cache's is `cacheKeys().system`). */
export function queueSystemIdKey(prefix: string): string {
  return `${prefix}:__system`;
}

/** One Redis to compare: its client, the key under its prefix, and how to name it in a message. */
export interface SystemIdTarget {
  readonly client: RedisClient;
  readonly key: string;
  /** `queue Redis redis://h:p (from REDIS_URL)` */
  readonly what: string;
}

export interface SystemIdCheck {
  /** The system's id, or undefined when none is configured and none is stored. */
  readonly id: string | undefined;
  /** configured: CACHEFLEET_SYSTEM_ID (stored where it was missing); adopted: read from a Redis. */
  readonly how: 'configured' | 'adopted' | 'none';
  /** The Redis that held no id and were given the configured one. */
  readonly stored: readonly string[];
}

/**
 * Compares (and, with a configured id, stores) the system id in each target, in order; the first
 * target's id is adopted when none is configured. A mismatch throws E_JOB_SYSTEM_ID.
 */
export async function checkSystemId(
  targets: readonly SystemIdTarget[],
  configured: string | undefined,
): Promise<SystemIdCheck> {
  let id = configured;
  let adoptedFrom: string | undefined;
  const stored: string[] = [];
  for (const target of targets) {
    if (id !== undefined && configured !== undefined) {
      const set = await target.client.set(target.key, id, 'NX');
      if (set === 'OK') {
        stored.push(target.what);
        continue;
      }
    }
    const held = await target.client.get(target.key);
    if (held === null) continue;
    if (id === undefined) {
      id = held;
      adoptedFrom = target.what;
      continue;
    }
    if (held !== id)
      throw mismatch(target.what, held, id, configured !== undefined ? undefined : adoptedFrom);
  }
  return { id, how: configured !== undefined ? 'configured' : id !== undefined ? 'adopted' : 'none', stored };
}

function mismatch(what: string, held: string, id: string, adoptedFrom: string | undefined): JobError {
  const ours =
    adoptedFrom === undefined
      ? `this process's CACHEFLEET_SYSTEM_ID is ${id}`
      : `the ${adoptedFrom} holds ${id}`;
  return new JobError(
    'E_JOB_SYSTEM_ID',
    `the ${what} holds the data of cachefleet system ${held}, but ${ours}: point REDIS_URL ` +
      "(or QUEUE_REDIS_URL / CACHE_REDIS_URL) at this system's Redis, or set CACHEFLEET_SYSTEM_ID=" +
      `${held} to join that system`,
  );
}

/** One Redis the guard opens a short-lived connection to: a role's connection and key prefix. */
export interface GuardedRedis {
  readonly redis: ResolvedRedisConnection;
  readonly prefix: string;
}

export interface SystemGuardOptions {
  readonly env: Env;
  /** The queue Redis (e.g. the process's loadQueueConfig). */
  readonly queue: GuardedRedis;
  /** The cache Redis (e.g. its loadCacheConfig; none for a cache without Redis). */
  readonly cache?: { readonly redis?: ResolvedRedisConnection; readonly prefix: string };
  readonly logger: Logger;
  /** How long the start waits for the Redis to answer before it goes on and checks later. */
  readonly waitMs?: number;
  /** A mismatch found after the start went on (a Redis that answered late): stop the process. */
  readonly onWrongSystem?: (error: JobError) => void;
}

/**
 * The start-up check of an API pod or a worker: compares the system id in the queue Redis and the
 * cache Redis (see `checkSystemId`), through connections of its own, and logs the outcome. A
 * mismatch rejects. A Redis that does not answer within `waitMs` does not hold the start (pods
 * serve from the database while Redis is down): the check goes on, and a mismatch found then is
 * logged and handed to `onWrongSystem`.
 */
export async function guardSystemId(options: SystemGuardOptions): Promise<SystemIdCheck | undefined> {
  const configured = loadSystemId(options.env);
  const { queue, cache, logger } = options;
  const choices = redisChoices(options.env);
  const open = (conn: ResolvedRedisConnection, key: string, what: string): SystemIdTarget => {
    // The queue role's rules: commands wait for the connection instead of failing at once.
    const client = createRedisClient(conn, { role: 'queue', connectionName: 'cachefleet:system-id' });
    client.on('error', () => {});
    return { client, key, what };
  };
  const targets = [
    open(queue.redis, queueSystemIdKey(queue.prefix), `queue Redis ${choices.queue}`),
    ...(cache?.redis !== undefined
      ? [open(cache.redis, cacheKeys(cache.prefix).system, `cache Redis ${choices.cache}`)]
      : []),
  ];
  const check = checkSystemId(targets, configured).finally(() => {
    for (const t of targets) t.client.disconnect();
  });
  const report = (result: SystemIdCheck) => {
    if (result.how === 'none')
      logger.warn('no system id: CACHEFLEET_SYSTEM_ID is unset and no Redis holds one (nothing is compared)');
    else
      logger.info(
        { systemId: result.id, how: result.how, storedIn: result.stored },
        result.how === 'adopted'
          ? 'system id adopted from the Redis (CACHEFLEET_SYSTEM_ID unset)'
          : 'system id checked',
      );
    return result;
  };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), options.waitMs ?? 10_000);
  });
  const first = await Promise.race([check, late]).finally(() => clearTimeout(timer));
  if (first !== 'late') return report(first);
  logger.warn('system id not checked yet: the Redis did not answer; it is checked once it does');
  check.then(report, (error: unknown) => {
    if (!(error instanceof JobError) || error.code !== 'E_JOB_SYSTEM_ID') {
      logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'system id check failed');
      return;
    }
    logger.fatal({ err: `${error.code}: ${error.message}` }, 'wrong system');
    options.onWrongSystem?.(error);
  });
  return undefined;
}
