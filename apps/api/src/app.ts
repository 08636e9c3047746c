import { randomUUID } from 'node:crypto';
import type { Catalogue, Db } from '@cachefleet/catalogue';
import type { JobClient } from '@cachefleet/jobs';
import { type Cache, FastHistogram } from '@cachefleet/tiered-cache';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { adminRoutes } from './admin.js';
import { adminGuard, dashboardGuard } from './auth.js';
import type { RequestLogs } from './config.js';
import { registerDashboard } from './dashboard.js';
import { DEFAULT_SKIP_PREFIXES, edgeCaching } from './edge.js';
import { registerFleetPage } from './fleet-page.js';
import { installErrorHandler } from './http-errors.js';
import { loginRoutes } from './login.js';
import { boundBy3 } from './metrics.js';
import { productRoutes } from './products.js';
import { lazyRequestLogger, requestLogger } from './request-log.js';
import type { Rollout, RolloutMetrics } from './rollout.js';
import { routeOf, trackRoutes } from './route-info.js';
import { traceRoutes } from './tracing.js';

/** Largest body a route takes unless it says otherwise. */
const BODY_LIMIT = 16 * 1024;

export interface AppDeps {
  readonly cache: Cache;
  readonly jobs: JobClient;
  readonly catalogue: Catalogue;
  readonly db: Db;
  readonly metrics: Registry;
  readonly rollout: Pick<Rollout, 'enabled'> & RolloutMetrics;
  readonly adminToken: string;
  readonly production: boolean;
  readonly edgeMaxAgeSeconds: number;
  readonly logger: Logger;
  /** API_REQUEST_LOGS; default: a line for each 5xx. */
  readonly requestLogs?: RequestLogs;
  /** API_READY_REDIS_DOWN_MS: `/readyz` is 503 once the queue connection is down this long (0: never). */
  readonly readyRedisDownMs?: number;
  /** API_ENQUEUE_WAIT_MS: an enqueue keeps trying this long while the queue Redis is away (0: 503 at once). */
  readonly enqueueWaitMs?: number;
}

/**
 * The API pod: the catalogue read through the cache, the admin surface, the queue dashboard,
 * health and metrics. Built without listening, so tests drive it with `inject` or a real port.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance's type the default one.
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Request ids: the caller's x-request-id when it sends one, so logs join up across services.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    // Bodies are small (a patch, a prewarm): 16 KiB unless a route says more (an invalidation
    // may list many ids; the dashboard edits job data). Fastify's default is 1 MiB.
    bodyLimit: BODY_LIMIT,
    // Fastify's two lines per request would cost more than a cached read: ours follow
    // API_REQUEST_LOGS (request-log.ts), and every 500 logs its cause (http-errors.ts).
    logController: new LogController({ disableRequestLogging: true }),
    // req.log binds the request id, but its pino child is made only when something logs.
    childLoggerFactory: lazyRequestLogger,
  });
  trackRoutes(app);
  // Before any hook or route: the plugin wraps the routes defined after it.
  await traceRoutes(app);
  installErrorHandler(app);
  const logRequest = requestLogger(deps.requestLogs ?? { mode: 'errors', sampleEvery: 100 });
  const guard = adminGuard(deps.adminToken);
  // Bucket counts are plain numbers bumped per request and turned into samples at scrape time:
  // prom-client's own `observe` hashes the label set on every call.
  const duration = new FastHistogram(
    'cachefleet_http_request_duration_seconds',
    'HTTP requests by route, method and status',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  ).registerOn(deps.metrics);
  // Per-request hooks are callback-style and the histogram's series are bound once per
  // (route, method, status): the load test showed the pod's own per-request work costing more than
  // the cache read itself.
  const timerOf = boundBy3((route: string, method: string, status: number) =>
    duration.series({ route, method, status: String(status) }),
  );
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    timerOf(routeOf(req).url, req.method, reply.statusCode).observe(reply.elapsedTime / 1000);
    logRequest?.(req, reply);
    done();
  });
  // Operational and admin routes are never edge-cached (they change every second or are per caller).
  edgeCaching(app, {
    registry: deps.metrics,
    maxAgeSeconds: deps.edgeMaxAgeSeconds,
    skipPrefixes: [
      ...DEFAULT_SKIP_PREFIXES,
      '/metrics',
      '/healthz',
      '/readyz',
      '/admin',
      '/internal',
      '/jobs',
      '/cache',
    ],
  });

  app.get('/healthz', async () => ({ ok: true }));
  const readyDownMs = deps.readyRedisDownMs ?? 30_000;
  app.get('/readyz', async (_req, reply) => {
    const status = deps.cache.status();
    let database = true;
    try {
      await deps.db.query('SELECT 1');
    } catch {
      database = false;
    }
    // The cache degrades rather than fails (invariant 1): it never makes the pod unready. The queue
    // connection does once it has been down past the bound: every job route fails meanwhile.
    const queueDownMs = Math.round(deps.jobs.downMs);
    const queue = readyDownMs === 0 || queueDownMs < readyDownMs;
    const ready = database && queue;
    return reply.code(ready ? 200 : 503).send({ ready, database, queue, queueDownMs, cache: status });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
  // The dashboard is a browser page: a login form (or link) sets a session cookie for it alone.
  loginRoutes(app, deps.adminToken);

  productRoutes(app, {
    cache: deps.cache,
    catalogue: deps.catalogue,
    db: deps.db,
    rollout: deps.rollout,
    guard,
  });
  adminRoutes(app, {
    cache: deps.cache,
    jobs: deps.jobs,
    production: deps.production,
    guard,
    enqueueWaitMs: deps.enqueueWaitMs ?? 35_000,
  });
  const pages = dashboardGuard(deps.adminToken);
  await registerDashboard(app, deps.jobs, pages);
  registerFleetPage(app, { cache: deps.cache, jobs: deps.jobs, guard: pages });
  return app;
}
