import { parseQueueList, type QueueConcurrency } from '@cachefleet/jobs';
import { pickEnv } from '@cachefleet/tiered-cache';
import { z } from 'zod';

/** Settings of the worker process (the cache and queue settings are read by their packages). */
export const WORKER_ENV_VARS = {
  WORKER_QUEUES: 'queues this process serves with their concurrency, e.g. warm:2,invalidate:4 (default both)',
  WORKER_HTTP_HOST: 'address of the health/metrics server (default 127.0.0.1)',
  WORKER_HTTP_PORT: 'port of the health/metrics server; 0 picks a free one (default 9465)',
  WORKER_SHUTDOWN_MS: 'SIGTERM: time to finish or hand back running jobs (default 30000)',
  WORKER_LOCK_MS: 'job lock; a killed worker loses its jobs after this long (default 30000)',
  WORKER_STALLED_MS: 'how often expired locks are looked for (default 30000)',
  WORKER_DEFINITIONS: 'module exporting createDefinitions(env) (default @cachefleet/catalogue)',
  LOG_LEVEL: 'pino level (default info)',
} as const;

export interface WorkerConfig {
  readonly queues: readonly QueueConcurrency[];
  readonly host: string;
  readonly port: number;
  readonly shutdownMs: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  readonly definitions: string;
  readonly logLevel: string;
}

const ms = z.coerce.number().int().min(100).max(3_600_000);
const envSchema = z.object({
  WORKER_QUEUES: z.string().default('warm:2,invalidate:4'),
  WORKER_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  WORKER_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  WORKER_SHUTDOWN_MS: ms.default(30_000),
  WORKER_LOCK_MS: ms.default(30_000),
  WORKER_STALLED_MS: ms.default(30_000),
  WORKER_DEFINITIONS: z.string().min(1).default('@cachefleet/catalogue'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** `--queues warm:2` on the command line wins over WORKER_QUEUES. Errors name the variable. */
export function loadWorkerConfig(
  env: Readonly<Record<string, string | undefined>>,
  argv: readonly string[],
): WorkerConfig {
  const present = pickEnv(env, Object.keys(WORKER_ENV_VARS));
  const at = argv.indexOf('--queues');
  if (at >= 0) {
    const value = argv[at + 1];
    if (value === undefined) throw new Error('--queues: expected a list such as warm:2,invalidate:4');
    present.WORKER_QUEUES = value;
  }
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const e = parsed.data;
  let queues: QueueConcurrency[];
  try {
    queues = parseQueueList(e.WORKER_QUEUES);
  } catch (error) {
    throw new Error(`${at >= 0 ? '--queues' : 'WORKER_QUEUES'}: ${(error as Error).message}`);
  }
  return {
    queues,
    host: e.WORKER_HTTP_HOST,
    port: e.WORKER_HTTP_PORT,
    shutdownMs: e.WORKER_SHUTDOWN_MS,
    lockDurationMs: e.WORKER_LOCK_MS,
    stalledIntervalMs: e.WORKER_STALLED_MS,
    definitions: e.WORKER_DEFINITIONS,
    logLevel: e.LOG_LEVEL,
  };
}
