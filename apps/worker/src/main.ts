import { formatError } from '@cachefleet/config';
import { loadTracingConfig, startTracing } from '@cachefleet/telemetry';
import { pino } from 'pino';
import { loadWorkerConfig } from './config.js';
import { startWorker } from './worker.js';

/** `node --import tsx apps/worker/src/main.ts --queues warm:2,invalidate:4` */
const logger = pino({ name: 'cachefleet-worker', level: process.env.LOG_LEVEL ?? 'info' });

async function main(): Promise<void> {
  const config = loadWorkerConfig(process.env, process.argv.slice(2));
  // Before anything is built: the queues, workers and cache look once for a tracer provider.
  const tracing = startTracing(loadTracingConfig(process.env, 'cachefleet-worker'));
  // A Redis that answered only after the start and holds another system's id: stop at once (logged).
  const worker = await startWorker(config, process.env, logger, { onWrongSystem: () => process.exit(1) });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, deadlineMs: config.shutdownMs }, 'shutting down');
    worker.close().then(
      async () => {
        logger.info('worker stopped');
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
}

main().catch((error: unknown) => {
  logger.fatal({ err: formatError(error) }, 'worker failed to start');
  process.exit(1);
});
