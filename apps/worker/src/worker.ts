import { createServer, type Server, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { CaptureReader, installCapture, loadCaptureConfig } from '@cachefleet/capture';
import { boolishSchema, formatError, redisChoices } from '@cachefleet/config';
import {
  type Definitions,
  type DefinitionsModule,
  definitionsModule,
  FleetRuntime,
  guardSystemId,
  installSchedules,
  isJobError,
  JOBS,
  JobClient,
  keepSchedules,
  loadBackupConfig,
  loadQueueConfig,
  loadQueueMetricsLeaseMs,
  loadScheduleCheckMs,
  loadSchedules,
  loadTuneConfig,
  registerProcessMetrics,
  registerQueueMetrics,
} from '@cachefleet/jobs';
import { cacheKeys, createRedisClient, type RedisClient } from '@cachefleet/redis';
import { type Cache, createCache, loadCacheConfig } from '@cachefleet/tiered-cache';
import pg from 'pg';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { WorkerConfig } from './config.js';
import { WorkerError } from './errors.js';

export interface RunningWorker {
  readonly port: number;
  readonly cache: Cache;
  readonly runtime: FleetRuntime;
  /** The change-capture reader, when this process serves `capture`. */
  readonly capture: CaptureReader | undefined;
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
  options: { readonly onWrongSystem?: () => void } = {},
): Promise<RunningWorker> {
  // Checked before the definitions connect: never a default address for the capture role.
  if (config.capture && !env.DATABASE_URL)
    throw new WorkerError('E_WORKER_CONFIG', 'DATABASE_URL: required by the capture role');
  const backups = loadBackupConfig(env);
  const tune = loadTuneConfig(env);
  // Both Redis settings are read before anything connects: none set (REDIS_URL or the role's own
  // variable) is a config error naming them, never a default address.
  const cacheConfig = loadCacheConfig({
    ...env,
    CACHE_IMPL: env.CACHE_IMPL ?? 'redis',
    CACHE_HOT_KEYS_ENABLED: env.CACHE_HOT_KEYS_ENABLED ?? 'false',
  });
  const queueConfig = loadQueueConfig(env);
  // The system id is compared before the database or anything else is touched.
  const checked = await guardSystemId({
    env,
    queue: queueConfig,
    cache: cacheConfig,
    logger,
    onWrongSystem: options.onWrongSystem,
  });
  const leaseMs = loadQueueMetricsLeaseMs(env);
  const definitions = await loadDefinitions(config.definitions, env);
  const metrics = new Registry();
  registerProcessMetrics(metrics);
  const cache = createCache(
    { ...cacheConfig, telemetry: { ...cacheConfig.telemetry, role: 'worker' } },
    { metricsRegistry: metrics, logger },
  );
  cache.register(...definitions.namespaces);
  await cache.start();
  const jobs = new JobClient(queueConfig, { namespaces: definitions.namespaces });
  // Every queue's counts, by whichever API pod or worker holds the lease (not one copy per process).
  const queueMetrics = registerQueueMetrics(metrics, jobs, { leaseMs });
  const runtime = new FleetRuntime(
    { cache, jobs, definitions, logger, metrics, backups, tune },
    {
      queues: config.queues,
      lockDurationMs: config.lockDurationMs,
      stalledIntervalMs: config.stalledIntervalMs,
      shutdownMs: config.shutdownMs,
    },
  );
  if (config.queues.length > 0) runtime.start();
  const capture = config.capture
    ? await startCapture(env, cache, jobs, definitions, metrics, logger)
    : undefined;
  // A worker installs only the schedules of the queues it serves: an invalidate-only worker
  // scheduling warms would enqueue work nobody it knows of runs.
  // It adds and removes schedulers on those queues only, and keeps them there.
  const served = [...new Set(config.queues.map((q) => q.queue))];
  const schedules = loadSchedules(env)?.filter((s) => served.includes(JOBS[s.name].queue));
  if (schedules !== undefined) await installSchedules(jobs, schedules, served);
  // Put back by this running process if the queue Redis loses them (it came back empty).
  const keeper =
    schedules === undefined
      ? undefined
      : keepSchedules(jobs, schedules, {
          queues: served,
          checkMs: loadScheduleCheckMs(env),
          onInstalled: () => logger.warn('the queue Redis had lost the schedules: installed them again'),
          onError: (error) => logger.warn({ err: formatError(error) }, 'schedule check failed'),
        });
  const server = await listen(config, runtime, cache, jobs, metrics, capture !== undefined);
  const port = (server.address() as AddressInfo).port;
  logger.info(
    {
      port,
      queues: config.queues,
      capture: config.capture,
      schedules: schedules?.map((s) => `${s.id} ${s.pattern ?? `every ${s.every} ms`}`) ?? 'disabled here',
      namespaces: definitions.namespaces.map((n) => n.name),
      // Which Redis each role uses and from which variable: never a silent default address.
      redis: redisChoices(env),
      systemId: checked?.id ?? null,
    },
    'worker ready',
  );
  let closing: Promise<void> | undefined;
  return {
    port,
    cache,
    runtime,
    capture: capture?.reader,
    close: () => {
      closing ??= (async () => {
        keeper?.close();
        await capture?.close();
        await runtime.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await queueMetrics.release();
        await jobs.close();
        await cache.close();
        await definitions.close();
      })();
      return closing;
    },
  };
}

/**
 * The capture role: a reader over DATABASE_URL (required: never a default address) with its own
 * client of the cache Redis for the lease. CAPTURE_INSTALL=true installs the outbox and triggers
 * first (`npm start` does, on its embedded database). Large tag fan-outs (CAPTURE_JOB_AT) go to the
 * invalidate queue through this process's job client, for whichever worker serves `invalidate`.
 */
async function startCapture(
  env: NodeJS.ProcessEnv,
  cache: Cache,
  jobs: JobClient,
  definitions: Definitions,
  metrics: Registry,
  logger: Logger,
): Promise<{ reader: CaptureReader; close(): Promise<void> }> {
  const databaseUrl = env.DATABASE_URL ?? '';
  const captureConfig = loadCaptureConfig(env);
  const install = boolishSchema.safeParse(env.CAPTURE_INSTALL || 'false');
  if (!install.success) throw new WorkerError('E_WORKER_CONFIG', 'CAPTURE_INSTALL: expected true or false');
  if (install.data) {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
    try {
      await client.connect();
      const { tables } = await installCapture(client, definitions.namespaces, captureConfig);
      logger.info({ schema: captureConfig.schema, tables }, 'change capture installed');
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  const conn = cache.options.redis;
  if (conn === undefined) throw new WorkerError('E_WORKER_CONFIG', 'the capture role needs the cache Redis');
  const redis: RedisClient = createRedisClient(conn, {
    role: 'cache',
    connectionName: 'cachefleet-capture',
    commandTimeoutMs: 2_000,
    onError: () => {},
  });
  redis.on('error', () => {});
  await redis.connect().catch((error: unknown) => {
    // Redis down at start: the client keeps reconnecting and the reader waits for the lease.
    logger.warn({ err: formatError(error) }, 'capture: the cache Redis is not reachable yet');
  });
  const reader = new CaptureReader({
    cache,
    redis,
    keys: cacheKeys(cache.options.prefix),
    databaseUrl,
    namespaces: definitions.namespaces,
    config: captureConfig,
    logger,
    metrics,
    holder: cache.podId,
    enqueue: async (job) => (await jobs.enqueue('invalidate', job)).id,
  });
  reader.start();
  return {
    reader,
    close: async () => {
      await reader.close();
      redis.disconnect();
    },
  };
}

function listen(
  config: WorkerConfig,
  runtime: FleetRuntime,
  cache: Cache,
  jobs: JobClient,
  metrics: Registry,
  capture: boolean,
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
        // A capture-only process runs no BullMQ worker: it is ready once its cache is.
        const bound = config.readyRedisDownMs;
        const queueDownMs = Math.round(jobs.downMs);
        const cacheDownMs = cache.tiers().l2?.downMs ?? 0;
        const connected = bound === 0 || (queueDownMs < bound && cacheDownMs < bound);
        const queuesReady = config.queues.length === 0 ? capture : runtime.ready;
        const ready = queuesReady && cache.registry.store.impl !== 'null' && connected;
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
