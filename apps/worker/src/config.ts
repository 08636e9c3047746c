import { type Env, intSchema, parseEnv, portSchema } from '@cachefleet/config';
import {
  DEFAULT_DEFINITIONS,
  DEFAULT_QUEUE_LIST,
  parseQueueList,
  type QueueConcurrency,
} from '@cachefleet/jobs';
import { z } from 'zod';
import { WorkerError } from './errors.js';

/** Settings of the worker process (the cache and queue settings are read by their packages). */
export const WORKER_ENV_VARS = {
  WORKER_QUEUES: `queues this process serves with their concurrency (default every queue: ${DEFAULT_QUEUE_LIST}); \`capture\` in the list adds the change-capture reader role (needs DATABASE_URL)`,
  WORKER_HTTP_HOST: 'address of the health/metrics server (default 127.0.0.1)',
  WORKER_HTTP_PORT: 'port of the health/metrics server; 0 picks a free one (default 9465)',
  WORKER_SHUTDOWN_MS: 'SIGTERM: time to finish or hand back running jobs (default 30000)',
  WORKER_LOCK_MS:
    "job lock, renewed every half of it; a killed worker's jobs are taken over within WORKER_LOCK_MS + WORKER_STALLED_MS (default 30000)",
  WORKER_STALLED_MS:
    "how often expired locks are looked for; less than WORKER_LOCK_MS (default 5000: a killed worker's jobs move on within 35 s)",
  WORKER_READY_REDIS_DOWN_MS:
    'GET /readyz answers 503 once the queue or the cache Redis connection has been down this long; 0 = never (default 30000)',
  WORKER_DEFINITIONS: 'module exporting createDefinitions(env) (default @cachefleet/catalogue)',
  LOG_LEVEL: 'pino level (default info)',
} as const;

export interface WorkerConfig {
  readonly queues: readonly QueueConcurrency[];
  /** `capture` was in the list: this process also runs the change-capture reader (one active fleet-wide). */
  readonly capture: boolean;
  readonly host: string;
  readonly port: number;
  readonly shutdownMs: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  /** `/readyz` turns 503 once a Redis connection has been down this long (0: never), ms. */
  readonly readyRedisDownMs: number;
  readonly definitions: string;
  readonly logLevel: string;
}

const ms = intSchema.min(100).max(3_600_000);
export const WORKER_ENV_SCHEMA = z.object({
  WORKER_QUEUES: z.string().default(DEFAULT_QUEUE_LIST).describe(WORKER_ENV_VARS.WORKER_QUEUES),
  WORKER_HTTP_HOST: z.string().min(1).default('127.0.0.1').describe(WORKER_ENV_VARS.WORKER_HTTP_HOST),
  WORKER_HTTP_PORT: portSchema.default(9465).describe(WORKER_ENV_VARS.WORKER_HTTP_PORT),
  WORKER_SHUTDOWN_MS: ms.default(30_000).describe(WORKER_ENV_VARS.WORKER_SHUTDOWN_MS),
  WORKER_LOCK_MS: ms.default(30_000).describe(WORKER_ENV_VARS.WORKER_LOCK_MS),
  // BullMQ moves a job whose lock expired at a stalled check, and only one an earlier check saw
  // active: takeover within lock + interval when the interval is below the lock (a killed worker's
  // job waited 61 s with both at 30 s). A check is one Lua call per queue and process, returning
  // at once unless it is the fleet's turn; then it reads the active list.
  WORKER_STALLED_MS: ms.default(5_000).describe(WORKER_ENV_VARS.WORKER_STALLED_MS),
  WORKER_READY_REDIS_DOWN_MS: intSchema
    .min(0)
    .max(3_600_000)
    .default(30_000)
    .describe(WORKER_ENV_VARS.WORKER_READY_REDIS_DOWN_MS),
  WORKER_DEFINITIONS: z
    .string()
    .min(1)
    .default(DEFAULT_DEFINITIONS)
    .describe(WORKER_ENV_VARS.WORKER_DEFINITIONS),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe(WORKER_ENV_VARS.LOG_LEVEL),
});

/** `--queues warm:2` on the command line wins over WORKER_QUEUES. Errors name the variable or flag. */
export function loadWorkerConfig(env: Env, argv: readonly string[]): WorkerConfig {
  const at = argv.indexOf('--queues');
  const flag = at >= 0 ? argv[at + 1] : undefined;
  if (at >= 0 && flag === undefined)
    throw configError('--queues: expected a list such as warm:2,invalidate:4');
  const e = parseEnv(
    WORKER_ENV_SCHEMA,
    flag !== undefined ? { ...env, WORKER_QUEUES: flag } : env,
    configError,
  );
  if (e.WORKER_STALLED_MS >= e.WORKER_LOCK_MS)
    throw configError(
      `WORKER_STALLED_MS: must be less than WORKER_LOCK_MS (${e.WORKER_STALLED_MS} >= ${e.WORKER_LOCK_MS}): a killed worker's jobs move on within lock + interval only then`,
    );
  // `capture` is a role, not a BullMQ queue: taken out of the list before the queues are parsed.
  const parts = e.WORKER_QUEUES.split(',').map((s) => s.trim());
  const capture = parts.includes('capture');
  const rest = parts.filter((s) => s !== 'capture').join(',');
  let queues: QueueConcurrency[] = [];
  try {
    if (!capture || rest.replace(/,/g, '') !== '') queues = parseQueueList(rest);
  } catch (error) {
    // The queue list's own error (E_JOB_CONFIG) is the cause; this one names where the list came from.
    const why = error instanceof Error ? error.message : String(error);
    const message = `${flag !== undefined ? '--queues' : 'WORKER_QUEUES'}: ${why}`;
    throw configError(message, error);
  }
  return {
    queues,
    capture,
    host: e.WORKER_HTTP_HOST,
    port: e.WORKER_HTTP_PORT,
    shutdownMs: e.WORKER_SHUTDOWN_MS,
    lockDurationMs: e.WORKER_LOCK_MS,
    stalledIntervalMs: e.WORKER_STALLED_MS,
    readyRedisDownMs: e.WORKER_READY_REDIS_DOWN_MS,
    definitions: e.WORKER_DEFINITIONS,
    logLevel: e.LOG_LEVEL,
  };
}

function configError(message: string, cause?: unknown): WorkerError {
  return new WorkerError('E_WORKER_CONFIG', message, { cause });
}
