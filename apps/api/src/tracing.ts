import { tracerProviderRegistered } from '@cachefleet/tiered-cache';
import type { FastifyInstance } from 'fastify';

/** Scraped every few seconds: a span each would bury the requests worth reading. */
const UNTRACED = new Set(['/metrics', '/healthz', '/readyz']);

/**
 * A span per request (`GET /products/:id`) and one for its handler, by `@fastify/otel`, so the cache
 * and the queue calls a route makes nest under it; a `traceparent` header continues the caller's
 * trace. Registered before any route, and only when a tracer provider is registered: off, the
 * plugin is not even loaded and no hook is added. Hook spans are left out (one span per hook per
 * request would cost more than the L1 read the route serves).
 */
export async function traceRoutes(app: FastifyInstance): Promise<void> {
  if (!tracerProviderRegistered()) return;
  const { default: FastifyOtelInstrumentation } = await import('@fastify/otel');
  const otel = new FastifyOtelInstrumentation({
    instrumentHooks: false,
    ignorePaths: (route) => UNTRACED.has(route.url),
    requestHook: (span, request) =>
      span.updateName(`${request.method} ${request.routeOptions.url ?? 'unmatched'}`),
  });
  await app.register(otel.plugin());
}
