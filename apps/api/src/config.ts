import { randomBytes } from 'node:crypto';
import { boolishSchema, type Env, intSchema, parseEnv, portSchema } from '@cachefleet/config';
import { z } from 'zod';
import { ApiError } from './errors.js';

/** Settings of the API pod (cache, queue and catalogue settings are read by their packages). */
export const API_ENV_VARS = {
  API_HOST: 'address to listen on (default 127.0.0.1)',
  API_PORT: 'port to listen on; 0 picks a free one (default 3000)',
  ADMIN_TOKEN: 'bearer token of the admin routes and the dashboard (required unless API_DEV_MODE)',
  API_DEV_MODE: 'true: without ADMIN_TOKEN a random token is made and logged (default false)',
  NODE_ENV: 'production hides GET /internal/cache (A7)',
  DATABASE_URL: 'PostgreSQL of the catalogue; unset: an embedded PGlite database (seeded)',
  PGLITE_DIR: 'data folder of the embedded PGlite database (default .data/pglite; memory:// for none)',
  PGLITE_PORT: 'loopback port on which the embedded database is shared with workers; 0 = free (default 0)',
  SEED_COUNT: 'products seeded into an empty embedded database (default 100000)',
  API_CRITICAL_WARM: 'enqueue a critical warm when the API starts (default true)',
  EDGE_MAX_AGE_SECONDS: 'max-age of the public Cache-Control on cacheable GET routes (default 60)',
  API_REQUEST_LOGS:
    'one log line per request: off, errors (5xx only), sampled (5xx and one in API_REQUEST_LOG_SAMPLE) or all (default errors)',
  API_REQUEST_LOG_SAMPLE: 'API_REQUEST_LOGS=sampled logs one request in this many (default 100)',
  API_READY_REDIS_DOWN_MS:
    'GET /readyz answers 503 once the queue Redis connection has been down this long; 0 = never (default 30000)',
  API_ENQUEUE_WAIT_MS:
    "how long POST /cache/invalidate and /cache/prewarm keep trying while the queue Redis is down or failing over before they answer 503; keep it above your Sentinels' down-after-milliseconds plus the failover (the deploy tree: 30 s + a few); 0 = 503 at once (default 35000)",
  LOG_LEVEL: 'pino level (default info)',
} as const;

const REQUEST_LOG_MODES = ['off', 'errors', 'sampled', 'all'] as const;
export type RequestLogMode = (typeof REQUEST_LOG_MODES)[number];

export interface RequestLogs {
  readonly mode: RequestLogMode;
  /** `sampled`: one request in this many (5xx always). */
  readonly sampleEvery: number;
}

export interface ApiConfig {
  readonly host: string;
  readonly port: number;
  readonly adminToken: string;
  /** The token was generated (dev mode): print it. */
  readonly generatedToken: boolean;
  readonly production: boolean;
  readonly databaseUrl: string | undefined;
  readonly pgliteDir: string;
  readonly pglitePort: number;
  readonly seedCount: number;
  readonly criticalWarm: boolean;
  readonly edgeMaxAgeSeconds: number;
  readonly requestLogs: RequestLogs;
  /** `/readyz` turns 503 once the queue connection has been down this long (0: never), ms. */
  readonly readyRedisDownMs: number;
  /** An enqueue keeps trying this long while the queue Redis is down or failing over (0: 503 at once), ms. */
  readonly enqueueWaitMs: number;
}

const boolish = boolishSchema;
export const API_ENV_SCHEMA = z.object({
  API_HOST: z.string().min(1).default('127.0.0.1').describe(API_ENV_VARS.API_HOST),
  API_PORT: portSchema.default(3000).describe(API_ENV_VARS.API_PORT),
  ADMIN_TOKEN: z.string().min(16, 'at least 16 characters').optional().describe(API_ENV_VARS.ADMIN_TOKEN),
  API_DEV_MODE: boolish.default(false).describe(API_ENV_VARS.API_DEV_MODE),
  NODE_ENV: z.string().optional().describe(API_ENV_VARS.NODE_ENV),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'a postgres:// URL')
    .optional()
    .describe(API_ENV_VARS.DATABASE_URL),
  PGLITE_DIR: z.string().min(1).default('.data/pglite').describe(API_ENV_VARS.PGLITE_DIR),
  PGLITE_PORT: portSchema.default(0).describe(API_ENV_VARS.PGLITE_PORT),
  SEED_COUNT: intSchema.min(0).max(10_000_000).default(100_000).describe(API_ENV_VARS.SEED_COUNT),
  API_CRITICAL_WARM: boolish.default(true).describe(API_ENV_VARS.API_CRITICAL_WARM),
  EDGE_MAX_AGE_SECONDS: intSchema
    .min(0)
    .max(31_536_000)
    .default(60)
    .describe(API_ENV_VARS.EDGE_MAX_AGE_SECONDS),
  API_REQUEST_LOGS: z.enum(REQUEST_LOG_MODES).default('errors').describe(API_ENV_VARS.API_REQUEST_LOGS),
  API_REQUEST_LOG_SAMPLE: intSchema
    .min(1)
    .max(1_000_000)
    .default(100)
    .describe(API_ENV_VARS.API_REQUEST_LOG_SAMPLE),
  API_READY_REDIS_DOWN_MS: intSchema
    .min(0)
    .max(3_600_000)
    .default(30_000)
    .describe(API_ENV_VARS.API_READY_REDIS_DOWN_MS),
  API_ENQUEUE_WAIT_MS: intSchema
    .min(0)
    .max(600_000)
    .default(35_000)
    .describe(API_ENV_VARS.API_ENQUEUE_WAIT_MS),
  // main.ts makes its logger before the settings are read; checked here so a typo is named.
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe(API_ENV_VARS.LOG_LEVEL),
});

/** Reads and checks the settings; a bad one throws naming the variable. No token → refuse, unless dev. */
export function loadApiConfig(env: Env): ApiConfig {
  const e = parseEnv(
    API_ENV_SCHEMA,
    env,
    (message, cause) => new ApiError('E_API_CONFIG', message, { cause }),
  );
  if (e.ADMIN_TOKEN === undefined && !e.API_DEV_MODE) {
    throw new ApiError(
      'E_API_CONFIG',
      'ADMIN_TOKEN: required (admin routes and the dashboard need a bearer token); set API_DEV_MODE=true to generate one for development',
    );
  }
  return {
    host: e.API_HOST,
    port: e.API_PORT,
    adminToken: e.ADMIN_TOKEN ?? randomBytes(18).toString('base64url'),
    generatedToken: e.ADMIN_TOKEN === undefined,
    production: e.NODE_ENV === 'production',
    databaseUrl: e.DATABASE_URL,
    pgliteDir: e.PGLITE_DIR,
    pglitePort: e.PGLITE_PORT,
    seedCount: e.SEED_COUNT,
    criticalWarm: e.API_CRITICAL_WARM,
    edgeMaxAgeSeconds: e.EDGE_MAX_AGE_SECONDS,
    requestLogs: { mode: e.API_REQUEST_LOGS, sampleEvery: e.API_REQUEST_LOG_SAMPLE },
    readyRedisDownMs: e.API_READY_REDIS_DOWN_MS,
    enqueueWaitMs: e.API_ENQUEUE_WAIT_MS,
  };
}
