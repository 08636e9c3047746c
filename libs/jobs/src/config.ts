import {
  type Env,
  hostListSchema,
  intSchema,
  issueMessage,
  parseEnv,
  requireRedisUrl,
} from '@cachefleet/config';
import { type ResolvedRedisConnection, redisConnectionSchema } from '@cachefleet/redis';
import { z } from 'zod';
import { JobError } from './errors.js';

/**
 * Where the queues live: the **queue Redis** (DESIGN "two Redis roles": `noeviction`, persistent),
 * single node or Sentinel. One server may serve both roles: in single mode the queue Redis is
 * `QUEUE_REDIS_URL`, else `REDIS_URL` (the system's one Redis), else `CACHE_REDIS_URL`; none set is
 * an error (no address is assumed).
 */
export const QUEUE_ENV_VARS = {
  QUEUE_REDIS_MODE: 'single | sentinel (default single)',
  QUEUE_REDIS_URL:
    'redis:// URL of the queue Redis (default REDIS_URL, else CACHE_REDIS_URL; one of them is required in mode single)',
  QUEUE_REDIS_SENTINELS: 'host:port,host:port of the Sentinels (mode sentinel)',
  QUEUE_REDIS_SENTINEL_NAME: 'master name the Sentinels monitor (mode sentinel)',
  QUEUE_REDIS_USERNAME:
    'ACL user of the queue Redis (mode sentinel, default `default`; put it in the URL otherwise)',
  QUEUE_REDIS_PASSWORD: 'password of the queue Redis (mode sentinel; put it in the URL otherwise)',
  QUEUE_REDIS_SENTINEL_PASSWORD: 'password of the Sentinels themselves (mode sentinel)',
  QUEUE_REDIS_DB:
    'database number on the queue Redis (mode sentinel, default 0; put it in the URL otherwise)',
  QUEUE_PREFIX: 'key prefix of every queue (default cachefleet)',
  QUEUE_WAIT_REPLICAS:
    'an enqueue is acknowledged only once this many replicas have the job (WAIT); default 1 in mode sentinel, 0 in single',
} as const;

export interface QueueConfig {
  readonly redis: ResolvedRedisConnection;
  /** BullMQ key prefix. */
  readonly prefix: string;
  /** Replicas that must confirm an enqueued job (WAIT) before it is acknowledged; 0: none. */
  readonly waitReplicas?: number;
}

export const QUEUE_ENV_SCHEMA = z.object({
  QUEUE_REDIS_MODE: z
    .enum(['single', 'sentinel'])
    .default('single')
    .describe(QUEUE_ENV_VARS.QUEUE_REDIS_MODE),
  QUEUE_REDIS_SENTINELS: hostListSchema.optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_SENTINELS),
  QUEUE_REDIS_SENTINEL_NAME: z.string().min(1).optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_SENTINEL_NAME),
  QUEUE_REDIS_USERNAME: z.string().min(1).optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_USERNAME),
  QUEUE_REDIS_PASSWORD: z.string().optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_PASSWORD),
  QUEUE_REDIS_SENTINEL_PASSWORD: z.string().optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_SENTINEL_PASSWORD),
  QUEUE_REDIS_DB: intSchema.min(0).optional().describe(QUEUE_ENV_VARS.QUEUE_REDIS_DB),
  QUEUE_WAIT_REPLICAS: intSchema.min(0).max(16).optional().describe(QUEUE_ENV_VARS.QUEUE_WAIT_REPLICAS),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:-]{1,64}$/, 'letters, digits, _ : - (at most 64)')
    .default('cachefleet')
    .describe(QUEUE_ENV_VARS.QUEUE_PREFIX),
});

/** Reads the queue settings from an environment object; a bad value throws naming the variable. */
export function loadQueueConfig(env: Env): QueueConfig {
  const e = parseEnv(QUEUE_ENV_SCHEMA, env, configError);
  if (e.QUEUE_REDIS_MODE === 'single') {
    if (e.QUEUE_REDIS_DB !== undefined)
      throw configError(
        'QUEUE_REDIS_DB: only with QUEUE_REDIS_MODE=sentinel (single: put it in QUEUE_REDIS_URL, redis://host:port/2)',
      );
    if (e.QUEUE_REDIS_SENTINEL_PASSWORD !== undefined)
      throw configError('QUEUE_REDIS_SENTINEL_PASSWORD: only with QUEUE_REDIS_MODE=sentinel');
    if (e.QUEUE_REDIS_USERNAME !== undefined)
      throw configError(
        'QUEUE_REDIS_USERNAME: only with QUEUE_REDIS_MODE=sentinel (single: put it in QUEUE_REDIS_URL, redis://user:password@host:port)',
      );
  }
  const redis =
    e.QUEUE_REDIS_MODE === 'single'
      ? { mode: 'single' as const, url: requireRedisUrl(env, 'queue', configError).url }
      : {
          mode: 'sentinel' as const,
          sentinels: required(e.QUEUE_REDIS_SENTINELS, 'QUEUE_REDIS_SENTINELS'),
          name: required(e.QUEUE_REDIS_SENTINEL_NAME, 'QUEUE_REDIS_SENTINEL_NAME'),
          ...(e.QUEUE_REDIS_USERNAME !== undefined ? { username: e.QUEUE_REDIS_USERNAME } : {}),
          ...(e.QUEUE_REDIS_PASSWORD !== undefined ? { password: e.QUEUE_REDIS_PASSWORD } : {}),
          ...(e.QUEUE_REDIS_SENTINEL_PASSWORD !== undefined
            ? { sentinelPassword: e.QUEUE_REDIS_SENTINEL_PASSWORD }
            : {}),
          ...(e.QUEUE_REDIS_DB !== undefined ? { db: e.QUEUE_REDIS_DB } : {}),
        };
  const conn = redisConnectionSchema.safeParse(redis);
  if (!conn.success) {
    const field = e.QUEUE_REDIS_MODE === 'single' ? 'QUEUE_REDIS_URL' : 'QUEUE_REDIS_SENTINELS';
    throw configError(issueMessage(conn.error, { name: () => field, root: field }), conn.error);
  }
  const waitReplicas = e.QUEUE_WAIT_REPLICAS ?? (e.QUEUE_REDIS_MODE === 'sentinel' ? 1 : 0);
  return { redis: conn.data, prefix: e.QUEUE_PREFIX, waitReplicas };
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw configError(`${name}: required when QUEUE_REDIS_MODE=sentinel`);
  return value;
}

function configError(message: string, cause?: z.ZodError): JobError {
  return new JobError('E_JOB_CONFIG', message, { cause });
}
