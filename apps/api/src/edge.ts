import { issueMessage } from '@cachefleet/config';
import { etagOf, ifNoneMatchMatches } from '@cachefleet/fastify';
import { FastCounter } from '@cachefleet/tiered-cache';
import { ApiError } from './errors.js';
import { boundBy, boundBy2 } from './metrics.js';
import { type RouteInfo, routeOf, trackRoutes } from './route-info.js';

export { ifNoneMatchMatches };

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { z } from 'zod';

/**
 * Edge caching of HTTP responses (REQUIREMENTS B1, B2; guide: docs/edge-caching.md).
 *
 * GET/HEAD 200 responses of routes that are not personalised get a strong ETag (sha1 of the body),
 * `Cache-Control: public, max-age=<n>, must-revalidate` and `Vary: Authorization`, and a request whose
 * `If-None-Match` matches gets a 304 with an empty body. Shared caches (nginx, Varnish) in front then
 * serve and revalidate these responses on our behalf.
 */

/**
 * How a route stands towards the edge, set statically in its options:
 * `app.get('/api/catalogue', { config: { edgeCache: 'public' } }, handler)`.
 * - `'public'`: cacheable even when the request carries `Authorization` (the body does not depend on
 *   who asks; the route may still require a token to be reached).
 * - `'personalised'`: never cached, like a path on the skip list.
 * Routes without the field are cacheable for anonymous requests only.
 */
type EdgeCachePolicy = 'public' | 'personalised';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** See `EdgeCachePolicy` in apps/api/src/edge.ts. */
    edgeCache?: EdgeCachePolicy;
  }
}

/** Paths whose responses depend on the user; a prefix also covers longer names (`/api/user` → `/api/users`). */
export const DEFAULT_SKIP_PREFIXES: readonly string[] = ['/api/user', '/api/profile', '/api/notifications'];

interface EdgeOptions {
  /** Where the three counters are registered. Required: no process-global default registry. */
  readonly registry: Registry;
  /** `max-age` of `Cache-Control`, seconds, integer 0..31536000. Default 60. */
  readonly maxAgeSeconds?: number;
  /**
   * Path prefixes never cached, matched with `startsWith` against both the request path and the
   * route pattern. Replaces the default (`DEFAULT_SKIP_PREFIXES`); spread it to extend.
   */
  readonly skipPrefixes?: readonly string[];
}

const optionsSchema = z.object({
  registry: z.custom<Registry>(
    (v) => typeof v === 'object' && v !== null && 'registerMetric' in v && 'getSingleMetric' in v,
    'expected a prom-client Registry',
  ),
  maxAgeSeconds: z.number().int().min(0).max(31_536_000).default(60),
  skipPrefixes: z
    .array(z.string().regex(/^\/\S*$/, 'a prefix starts with / and has no white space'))
    .readonly()
    .default(DEFAULT_SKIP_PREFIXES),
});

/** Replies a handler marked personalised at run time (e.g. the body depends on a cookie it read). */
const personalised = new WeakSet<FastifyReply>();

/**
 * Marks this reply as personalised: it gets no ETag and no public Cache-Control, whatever its route.
 * Call it from a handler (or any hook before `onSend`) when the body depends on who asks.
 */
export function markPersonalised(reply: FastifyReply): void {
  personalised.add(reply);
}

/**
 * Registers the edge-caching hooks on `app`. Call it on the root instance, before the routes it must
 * cover are registered (hooks apply to routes and child plugins registered after them), and after
 * plugins that set cookies in their own `onSend` hook (e.g. @fastify/cookie), so that their
 * `Set-Cookie` is already there when this hook looks for it. Bad options throw E_API_EDGE_OPTIONS.
 */
export function edgeCaching(app: FastifyInstance, options: EdgeOptions): void {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const message = `edgeCaching: ${issueMessage(parsed.error, { root: 'options' })}`;
    throw new ApiError('E_API_EDGE_OPTIONS', message, { cause: parsed.error });
  }
  const { registry, maxAgeSeconds, skipPrefixes } = parsed.data;
  const cacheControl = `public, max-age=${maxAgeSeconds}, must-revalidate`;
  // Plain numbers per route and method, read by prom-client at scrape time (FastCounter).
  const requests = new FastCounter({
    name: 'cachefleet_edge_candidate_requests_total',
    help: 'GET/HEAD requests to routes the edge middleware may cache (not on the skip list, not personalised)',
    labelNames: ['route', 'method'],
    registry,
  });
  const candidates = new FastCounter({
    name: 'cachefleet_edge_cacheable_responses_total',
    help: 'Responses that got an ETag and public Cache-Control (200s and 304s)',
    labelNames: ['route', 'method'],
    registry,
  });
  const matches = new FastCounter({
    name: 'cachefleet_edge_etag_matches_total',
    help: 'Requests answered 304 Not Modified because If-None-Match matched the ETag',
    labelNames: ['route'],
    registry,
  });

  // Series bound once per route and method; the route's own verdicts worked out once per route.
  const requestsOf = boundBy2((route: string, method: string) => requests.series({ route, method }));
  const candidatesOf = boundBy2((route: string, method: string) => candidates.series({ route, method }));
  const matchesOf = boundBy((route: string) => matches.series({ route }));
  // Per route, once: skipped by its pattern, never, or only for some paths (`pathMayBeSkipped`).
  // Both the pattern and the path count: the pattern catches `/api/%75ser/1` (routed, decoded, to
  // `/api/user/:id`), the path catches wildcard routes (`/api/*`) that serve skipped paths.
  const verdictOf = boundBy((route: RouteInfo): 'skip' | 'path' | 'keep' => {
    if (skipPrefixes.some((prefix) => route.url.startsWith(prefix))) return 'skip';
    return pathMayBeSkipped(route.url, skipPrefixes) ? 'path' : 'keep';
  });
  const skipped = (request: FastifyRequest, route: RouteInfo): boolean => {
    const verdict = verdictOf(route);
    if (verdict !== 'path') return verdict === 'skip';
    const url = request.url;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    for (const prefix of skipPrefixes) if (path.startsWith(prefix)) return true;
    return false;
  };

  // The reply field `sendJson` leaves its body and ETag in, for this hook.
  if (!app.hasReplyDecorator(JSON_BODY)) app.decorateReply(JSON_BODY, null);
  trackRoutes(app);

  app.addHook('onSend', (request, reply, payload, done) => {
    const method = request.method;
    // Unmatched requests (404 handler) have no route pattern: nothing to cache, nothing to label.
    if (method !== 'GET' && method !== 'HEAD') return done(null, payload);
    const route = routeOf(request);
    if (!route.matched) return done(null, payload);
    const config = route.config;
    if (config.edgeCache === 'personalised' || skipped(request, route)) return done(null, payload);
    requestsOf(route.url, method).inc();

    if (reply.statusCode !== 200 || personalised.has(reply)) return done(null, payload);
    // RFC 9111 §3.5: a shared cache may reuse a response to an authorised request when it says
    // `public` or `must-revalidate` — ours says both, so only routes declared public may carry them.
    if (request.headers.authorization !== undefined && config.edgeCache !== 'public') {
      return done(null, payload);
    }
    if (reply.hasHeader('set-cookie')) return done(null, payload);
    const existing = headerText(reply.getHeader('cache-control'));
    if (existing !== undefined && /(?:^|[\s,])(?:private|no-store)\b/i.test(existing)) {
      return done(null, payload);
    }
    // Streams are skipped: hashing would mean buffering the whole body.
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return done(null, payload);

    // A handler that knows its version (e.g. from a row's version) may set its own ETag; a body sent
    // by `sendJson` has its ETag already (computed once per cached value, not per request).
    const etag = headerText(reply.getHeader('etag')) ?? knownEtag(reply, payload) ?? etagOf(payload);
    reply.header('etag', etag);
    if (existing === undefined) reply.header('cache-control', cacheControl);
    const vary = reply.getHeader('vary');
    reply.header('vary', vary === undefined ? 'Authorization' : withAuthorization(headerText(vary)));
    candidatesOf(route.url, method).inc();

    const ifNoneMatch = request.headers['if-none-match'];
    if (ifNoneMatch === undefined || !ifNoneMatchMatches(ifNoneMatch, etag)) return done(null, payload);
    matchesOf(route.url).inc();
    reply.code(304);
    // 304 carries the validators and caching headers of the 200 (RFC 9110 §15.4.5), no body.
    reply.removeHeader('content-type');
    reply.removeHeader('content-length');
    // HEAD keeps its payload: Fastify's own HEAD hook (after this one) measures it for Content-Length
    // (equal to the 200's, as RFC 9110 §8.6 allows on a 304) and throws on null. Node sends no body
    // for a 304 or a HEAD either way. A GET 304 gets no Content-Length: a stale `0` could overwrite
    // the length an edge cache stored with the 200.
    return done(null, method === 'HEAD' ? payload : null);
  });
}

/**
 * Whether a path routed to `pattern` may start with one of `prefixes` when the pattern itself does
 * not. A path that starts with a prefix free of `%` and `//` still starts with it once decoded and
 * its slashes merged, and a routed path starts with the pattern's static part (up to its first
 * parameter or wildcard): so prefix and static part are one the other's start. When the static part
 * starts with the prefix, the pattern check has caught it; what is left is a prefix that runs past
 * the static part (`/api/user` on `/api/*` or `/api/:section`). Any other route's path never needs a
 * look, which saves a loop over the prefixes on every request of the hot routes.
 */
export function pathMayBeSkipped(pattern: string, prefixes: readonly string[]): boolean {
  if (prefixes.some((p) => p.includes('%') || p.includes('//'))) return true;
  const dynamic = pattern.search(/[:*]/);
  const fixed = dynamic === -1 ? pattern : pattern.slice(0, dynamic);
  return prefixes.some((p) => p.length > fixed.length && p.startsWith(fixed));
}

/** A JSON body and its strong ETag, made once per value (`sendJson`). */
interface JsonBody {
  readonly json: string;
  readonly etag: string;
}

const JSON_BODY = 'cachefleetJsonBody';

declare module 'fastify' {
  interface FastifyReply {
    /** The body `sendJson` sent, with its ETag, for the edge-caching hook; null otherwise. */
    [JSON_BODY]: JsonBody | null;
  }
}

/** By value: the cache hands out the same frozen object for an entry until it is replaced. */
const jsonBodies = new WeakMap<object, JsonBody>();

/**
 * Sends `value` as JSON. A frozen object (what an `immutable` cache namespace hands out, the same
 * object on every L1 hit) is serialised and hashed once: its JSON and strong ETag are kept with it
 * (`WeakMap`, gone with the value), and the edge-caching hook takes the ETag from there instead of
 * hashing the body on every request. Other values are sent as Fastify would.
 */
export function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  if (typeof value !== 'object' || value === null || !Object.isFrozen(value)) return reply.send(value);
  let body = jsonBodies.get(value);
  if (body === undefined) {
    const json = JSON.stringify(value);
    body = { json, etag: etagOf(json) };
    jsonBodies.set(value, body);
  }
  reply[JSON_BODY] = body;
  return reply.type('application/json; charset=utf-8').send(body.json);
}

/** The ETag `sendJson` knew for this body; none if a later hook changed the payload. */
function knownEtag(reply: FastifyReply, payload: string | Buffer): string | undefined {
  const body = reply[JSON_BODY];
  return body !== null && body !== undefined && payload === body.json ? body.etag : undefined;
}

function headerText(value: string | number | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function withAuthorization(vary: string | undefined): string {
  if (vary === undefined || vary.trim() === '') return 'Authorization';
  const fields = vary.split(',').map((f) => f.trim().toLowerCase());
  if (fields.includes('authorization') || fields.includes('*')) return vary;
  return `${vary}, Authorization`;
}
