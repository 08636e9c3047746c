import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatError } from '@cachefleet/config';
import {
  type Definitions,
  type DefinitionsModule,
  definitionsModule,
  FleetRuntime,
  installSchedules,
  isJobError,
  JOBS,
  JobClient,
  keepSchedules,
  loadBackupConfig,
  loadQueueConfig,
  loadScheduleCheckMs,
  loadSchedules,
} from '@cachefleet/jobs';
import { type Cache, createCache, loadCacheConfig } from '@cachefleet/tiered-cache';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { WorkerConfig } from './config.js';
import { WorkerError } from './errors.js';

export interface RunningWorker {
  readonly port: number;
  readonly cache: Cache;
  readonly runtime: FleetRuntime;
  /** Graceful: hand back or finish jobs, then close every connection. */
  close(): Promise<void>;
}

/** Loads the namespace definitions the same way API pods do: one module, one function. */
export async function loadDefinitions(specifier: string, env: NodeJS.ProcessEnv): Promise<Definitions> {
  let module: DefinitionsModule;
  try {
    module = definitionsModule(await import(specifier), specifier);
  } catch (error) {
    if (!isJobError(error)) throw error;
    throw new WorkerError('E_WORKER_CONFIG', error.message, { cause: error });
  }
  return module.createDefinitions(env);
}

/**
 * Starts one worker process's services: the cache (L2 only by default: workers warm and walk
 * Redis, they serve no reads), the BullMQ workers of the configured queues, the schedules, and
 * the health/metrics server.
 */
export async function startWorker(
  config: WorkerConfig,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<RunningWorker> {
  const backups = loadBackupConfig(env);
  const definitions = await loadDefinitions(config.definitions, env);
  const metrics = new Registry();
  const cache = createCache(
    loadCacheConfig({
      ...env,
      CACHE_IMPL: env.CACHE_IMPL ?? 'redis',
      CACHE_REDIS_URL: env.CACHE_REDIS_URL ?? 'redis://127.0.0.1:6379',
      CACHE_HOT_KEYS_ENABLED: env.CACHE_HOT_KEYS_ENABLED ?? 'false',
    }),
    { metricsRegistry: metrics, logger },
  );
  cache.register(...definitions.namespaces);
  await cache.start();
  const jobs = new JobClient(loadQueueConfig(env), { namespaces: definitions.namespaces });
  const runtime = new FleetRuntime(
    { cache, jobs, definitions, logger, metrics, backups },
    {
      queues: config.queues,
      lockDurationMs: config.lockDurationMs,
      stalledIntervalMs: config.stalledIntervalMs,
      shutdownMs: config.shutdownMs,
    },
  );
  runtime.start();
  // A worker installs only the schedules of the queues it serves: an invalidate-only worker
  // scheduling warms would enqueue work nobody it knows of runs.
  const served = new Set(config.queues.map((q) => q.queue));
  const schedules = loadSchedules(env)?.filter((s) => served.has(JOBS[s.name].queue));
  if (schedules !== undefined) await installSchedules(jobs, schedules);
  // Put back by this running process if the queue Redis loses them (it came back empty).
  const keeper =
    schedules === undefined
      ? undefined
      : keepSchedules(jobs, schedules, {
          checkMs: loadScheduleCheckMs(env),
          onInstalled: () => logger.warn('the queue Redis had lost the schedules: installed them again'),
          onError: (error) => logger.warn({ err: formatError(error) }, 'schedule check failed'),
        });
  const server = await listen(config, runtime, cache, jobs, metrics);
  const port = (server.address() as AddressInfo).port;
  logger.info(
    {
      port,
      queues: config.queues,
      schedules: schedules?.map((s) => `${s.id} ${s.pattern ?? `every ${s.every} ms`}`) ?? 'disabled here',
      namespaces: definitions.namespaces.map((n) => n.name),
    },
    'worker ready',
  );
  let closing: Promise<void> | undefined;
  return {
    port,
    cache,
    runtime,
    close: () => {
      closing ??= (async () => {
        keeper?.close();
        await runtime.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await jobs.close();
        await cache.close();
        await definitions.close();
      })();
      return closing;
    },
  };
}

function listen(
  config: WorkerConfig,
  runtime: FleetRuntime,
  cache: Cache,
  jobs: JobClient,
  metrics: Registry,
): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    switch (req.url) {
      case '/healthz':
        return send(200, JSON.stringify({ ok: true }));
      case '/readyz': {
        // Both Redis roles are needed here: jobs come from the queue Redis and write to the cache's.
        const bound = config.readyRedisDownMs;
        const queueDownMs = Math.round(jobs.downMs);
        const cacheDownMs = cache.tiers().l2?.downMs ?? 0;
        const connected = bound === 0 || (queueDownMs < bound && cacheDownMs < bound);
        const ready = runtime.ready && cache.registry.store.impl !== 'null' && connected;
        return send(
          ready ? 200 : 503,
          JSON.stringify({ ready, queueDownMs, cacheDownMs, cache: cache.status() }),
        );
      }
      case '/metrics':
        metrics.metrics().then(
          (body) => send(200, body, metrics.contentType),
          (error: Error) => send(500, JSON.stringify({ error: error.message })),
        );
        return;
      default:
        return send(404, JSON.stringify({ error: 'not found', routes: ['/healthz', '/readyz', '/metrics'] }));
    }
  });
  server.on('clientError', answerClientError);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve(server));
  });
}

/**
 * A request Node could not parse gets a JSON error like every other answer of this server (Node's
 * default is a bare status line with an empty body: 431 for over-long headers, 400 otherwise).
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) return; // the peer went away (ECONNRESET): nobody to answer
  const status =
    error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const reason = STATUS_CODES[status] ?? 'Bad Request';
  const body = JSON.stringify({
    error: reason.toLowerCase().replace(/\W+/g, '_'),
    message: `the request could not be read: ${reason.toLowerCase()}`,
  });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
