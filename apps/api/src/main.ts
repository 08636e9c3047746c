import { formatError } from '@cachefleet/config';
import { loadTracingConfig, startTracing, type Tracing } from '@cachefleet/telemetry';
import { pino } from 'pino';
import { startApi } from './server.js';

/** `node --import tsx apps/api/src/main.ts` — one API pod. */
const logger = pino({ name: 'cachefleet-api', level: process.env.LOG_LEVEL ?? 'info' });

// Before anything is built: the cache, the queues and the routes look once for a tracer provider.
let tracing: Tracing | undefined;
try {
  tracing = startTracing(loadTracingConfig(process.env, 'cachefleet-api'));
} catch (error) {
  logger.fatal({ err: formatError(error) }, 'api failed to start');
  process.exit(1);
}

// A Redis that answered only after the start and holds another system's id: stop at once (logged).
startApi(process.env, logger, { onWrongSystem: () => process.exit(1) }).then(
  (api) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      api.close().then(
        // The last spans are sent (or dropped after the exporter's timeout) before the exit.
        async () => {
          await tracing?.shutdown().catch(() => undefined);
          process.exit(0);
        },
        (error: Error) => {
          logger.error({ err: formatError(error) }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  },
  (error: Error) => {
    logger.fatal({ err: formatError(error) }, 'api failed to start');
    process.exit(1);
  },
);
