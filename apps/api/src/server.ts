import type { AddressInfo } from 'node:net';
import { createCatalogue, loadCatalogueEnv, readOptionsOf } from '@cachefleet/catalogue';
import { formatError, redisChoices } from '@cachefleet/config';
import {
  guardSystemId,
  JobClient,
  loadQueueConfig,
  loadQueueMetricsLeaseMs,
  loadSystemId,
  type QueueMetrics,
  registerProcessMetrics,
  registerQueueMetrics,
} from '@cachefleet/jobs';
import { createCache, loadCacheConfig } from '@cachefleet/tiered-cache';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { buildApp } from './app.js';
import { CohortCounts } from './cohorts.js';
import { type ApiConfig, loadApiConfig } from './config.js';
import { DASHBOARD_PATH } from './dashboard.js';
import { openDatabase } from './db.js';
import { createRollout, rolloutMetrics, rolloutOptionsFromEnv } from './rollout.js';
import { followRolloutStages } from './rollout-live.js';

/** Time in-flight requests get to finish at shutdown, ms. */
const CLOSE_GRACE_MS = 3_000;

export interface RunningApi {
  readonly url: string;
  readonly config: ApiConfig;
  /** DATABASE_URL for workers: the same rows (the embedded database is served on loopback). */
  readonly databaseUrl: string;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

/** Starts one API pod from the environment; see README "The API pod" for every setting. */
export async function startApi(
  env: NodeJS.ProcessEnv,
  logger: Logger,
  options: { readonly onWrongSystem?: () => void } = {},
): Promise<RunningApi> {
  const config = loadApiConfig(env);
  const catalogueEnv = loadCatalogueEnv(env);
  const schema = catalogueEnv.CATALOGUE_SCHEMA;
  // Every setting read before anything connects: a Redis not named (REDIS_URL or the role's own
  // variable) is a config error here, never a default address.
  const cacheConfig = loadCacheConfig(env);
  const queueConfig = loadQueueConfig(env);
  loadSystemId(env);
  const leaseMs = loadQueueMetricsLeaseMs(env);
  const metrics = new Registry();
  registerProcessMetrics(metrics);
  const cache = createCache(
    { ...cacheConfig, telemetry: { ...cacheConfig.telemetry, role: 'api' } },
    { metricsRegistry: metrics, logger },
  );
  // Whatever was opened is closed again if a later step fails (a port in use, a database down).
  const opened: (() => Promise<void>)[] = [];
  const undo = async () => {
    for (const close of opened.reverse()) await close().catch(() => undefined);
  };
  let database: Awaited<ReturnType<typeof openDatabase>>;
  let jobs: JobClient;
  let queueMetrics: QueueMetrics;
  let app: FastifyInstance;
  let systemId: string | undefined;
  let unfollow: () => void = () => undefined;
  try {
    // The system id is compared before the database or the port opens.
    const checked = await guardSystemId({
      env,
      queue: queueConfig,
      cache: cacheConfig,
      logger,
      onWrongSystem: options.onWrongSystem,
    });
    systemId = checked?.id;
    database = await openDatabase(config, schema, logger);
    opened.push(() => database.close());
    const catalogue = createCatalogue({ db: database.db, schema, read: readOptionsOf(catalogueEnv) });
    cache.register(...catalogue.namespaces);
    opened.push(() => cache.close());
    await cache.start();
    // Given the namespaces, it refuses a payload naming another or an id its schema refuses.
    const queueClient = new JobClient(queueConfig, { namespaces: catalogue.namespaces });
    jobs = queueClient;
    opened.push(() => queueClient.close());
    queueMetrics = registerQueueMetrics(metrics, jobs, { leaseMs });
    const plan = createRollout(rolloutOptionsFromEnv(env));
    const cohorts = rolloutMetrics(metrics);
    // Per cohort in this pod's telemetry snapshot too: the tuner's rollout guard reads them.
    const counts = new CohortCounts();
    cache.reportCohorts(() => counts.snapshot());
    unfollow = await followRolloutStages(cache, plan, logger);
    const rollout = {
      enabled: (namespace: string, userId?: string) => plan.enabled(namespace, userId),
      observe: (namespace: string, cohort: 'cache' | 'control') => {
        cohorts.observe(namespace, cohort);
        counts.request(namespace, cohort);
      },
      failed: (namespace: string, cohort: 'cache' | 'control') => {
        cohorts.failed(namespace, cohort);
        counts.error(namespace, cohort);
      },
    };
    const built = await buildApp({
      cache,
      jobs,
      catalogue,
      db: database.db,
      metrics,
      rollout,
      adminToken: config.adminToken,
      production: config.production,
      edgeMaxAgeSeconds: config.edgeMaxAgeSeconds,
      requestLogs: config.requestLogs,
      readyRedisDownMs: config.readyRedisDownMs,
      enqueueWaitMs: config.enqueueWaitMs,
      logger,
    });
    app = built;
    opened.push(() => built.close());
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await undo();
    throw error;
  }
  const { port } = app.server.address() as AddressInfo;
  const url = `http://${config.host}:${port}`;
  if (config.criticalWarm) {
    // C5: the critical warm runs when the API starts (deduplicated across pods starting together).
    jobs.enqueue('warm', { type: 'critical' }).then(
      (r) => logger.info({ jobId: r.id, deduplicated: r.deduplicated }, 'critical warm enqueued'),
      (error: unknown) => logger.warn({ err: formatError(error) }, 'critical warm could not be enqueued'),
    );
  }
  logger.info(
    {
      url,
      dashboard: `${url}${DASHBOARD_PATH}`,
      metrics: `${url}/metrics`,
      databaseUrl: database.url,
      embeddedDatabase: database.embedded,
      // Which Redis each role uses and from which variable: never a silent default address.
      redis: redisChoices(env),
      ...(config.generatedToken ? { adminToken: config.adminToken } : {}),
      systemId: systemId ?? null,
    },
    'api ready',
  );
  let closing: Promise<void> | undefined;
  return {
    url,
    config,
    databaseUrl: database.url,
    app,
    close: () => {
      closing ??= (async () => {
        // Stop accepting; requests in flight get CLOSE_GRACE_MS to finish, then every socket still
        // open is closed (clients that keep idle sockets would otherwise hold the pod up).
        const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
        await app.close();
        clearTimeout(force);
        unfollow();
        await queueMetrics.release();
        await jobs.close();
        await cache.close();
        await database.close();
      })();
      return closing;
    },
  };
}
