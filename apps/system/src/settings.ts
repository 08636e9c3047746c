import { boolishSchema, intSchema, portSchema } from '@cachefleet/config';
import { z } from 'zod';

/**
 * `npm start`'s own settings (start.ts, rotate-token.ts). The children it starts read theirs (API,
 * worker, cache, queue) from the same environment; those it sets for them are defaults only.
 */
export const SYSTEM_ENV_SCHEMA = z.object({
  REDIS_URL: z
    .string()
    .regex(/^redis:\/\/(\[[^\]]+\]|[^:/]+):\d+\/?$/, 'redis://host:port')
    .default('redis://127.0.0.1:6379')
    .describe(
      'the Redis of the system; npm start starts a private redis-server there when nothing answers (unused when both roles are on Sentinel)',
    ),
  API_PORT: portSchema.default(3000).describe('port of the API pod npm start runs'),
  WORKER_HTTP_PORT: portSchema.default(9465).describe('health/metrics port of the worker npm start runs'),
  CACHEFLEET_DATA_DIR: z
    .string()
    .min(1)
    .default('.data')
    .describe(
      'data folder (relative to the repository): system id, admin token, PGlite, backups, private Redis; one npm start per folder',
    ),
  ADMIN_TOKEN: z
    .string()
    .min(16, 'at least 16 characters')
    .optional()
    .describe(
      'admin token of the API pod; unset: the one kept in <data>/admin-token (made at the first start)',
    ),
  PGLITE_DIR: z.string().min(1).optional().describe('embedded database folder (default <data>/pglite)'),
  PGLITE_PORT: portSchema
    .default(0)
    .describe(
      'port the embedded database is shared on with the worker; 0 = a free one, kept across restarts',
    ),
  BACKUP_DIR: z.string().min(1).optional().describe("the worker's backup folder (default <data>/backups)"),
  WORKER_QUEUES: z
    .string()
    .min(1)
    .optional()
    .describe("the worker's queues (default every queue plus the capture role)"),
  CAPTURE_INSTALL: boolishSchema
    .default(true)
    .describe('the worker installs the change-capture outbox and triggers at start'),
  WORKER_SHUTDOWN_MS: intSchema
    .min(100)
    .max(3_600_000)
    .default(30_000)
    .describe("the worker's shutdown deadline; npm start waits 5 s more before it kills the worker, ms"),
});
