import { issueMessage } from '@cachefleet/config';
import { type Cache, CacheError, type Namespace } from '@cachefleet/tiered-cache';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RouteHandlerMethod,
  RouteOptions,
} from 'fastify';
import { z } from 'zod';
import { etagOf, ifNoneMatchMatches } from './etag.js';
import { type CachedResponse, cachedResponseSchema, producing } from './response.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false` keeps one route of a `cachefleetRoutes` scope out of the cache. */
    cachefleet?: boolean;
  }
}

export interface CachefleetRoutesOptions {
  readonly cache: Cache;
  /** Where the responses live: a namespace made by `responseNamespace`. */
  readonly namespace: Namespace<CachedResponse>;
  /**
   * The entry a request reads and fills, e.g. `(req) => req.params.id`. `undefined`, or an id the
   * namespace's id schema refuses, serves that request uncached.
   */
  readonly key: (req: FastifyRequest) => string | undefined;
  /** The tags of the entry a request stores (for `cache.invalidateTags`), from the request and the body. */
  readonly tags?: (req: FastifyRequest, body: unknown) => readonly string[];
}

const optionsSchema = z.object({
  cache: z.custom<Cache>(
    (v) => typeof v === 'object' && v !== null && 'get' in v && 'invalidateTags' in v,
    'expected a Cache (createCache)',
  ),
  namespace: z.custom<Namespace<CachedResponse>>(
    (v) => typeof v === 'object' && v !== null && 'schema' in v && v.schema === cachedResponseSchema,
    'expected a namespace made by responseNamespace()',
  ),
  key: z.custom<CachefleetRoutesOptions['key']>((v) => typeof v === 'function', 'expected a function'),
  tags: z
    .custom<NonNullable<CachefleetRoutesOptions['tags']>>(
      (v) => typeof v === 'function',
      'expected a function',
    )
    .optional(),
});

/** What the handler did for the request that ran it (the other requests of a miss wait on its entry). */
type Outcome =
  | { readonly kind: 'stored' }
  | { readonly kind: 'sent' }
  | { readonly kind: 'uncached'; readonly payload: unknown }
  | { readonly kind: 'threw'; readonly error: unknown };

/**
 * Caches the GET (and HEAD) routes of the scope it is registered in through a namespace of the
 * tiered cache: L1, then L2, then the route's handler — once per key in the pod, and once in the
 * fleet when the namespace has the load lock — with the bus dropping every pod's copy on an
 * invalidation. Only 200s a handler returns (not sends) are stored, with their ETag: a request
 * whose `If-None-Match` matches gets a 304 without the body being hashed again.
 *
 * ```ts
 * const pages = responseNamespace({ name: 'category-page', ttl: { l1: 30, l2: 300 } });
 * await app.register(async (scope) => {
 *   await scope.register(cachefleetRoutes, { cache, namespace: pages, key: (req) => req.params.id });
 *   scope.get('/categories/:id/summary', async (req) => summaryOf(req.params.id));
 * });
 * ```
 * Register it before the routes, in the scope that holds them (it does not encapsulate itself).
 * Bad options throw E_CACHE_CONFIG. The route's response serializer (schema.response) is applied
 * before storing. Responses are shared by key: include the user in the key of a personal route.
 */
export async function cachefleetRoutes(
  app: FastifyInstance,
  options: CachefleetRoutesOptions,
): Promise<void> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success)
    throw new CacheError(
      'E_CACHE_CONFIG',
      `cachefleetRoutes: ${issueMessage(parsed.error, { root: 'options' })}`,
      {
        cause: parsed.error,
      },
    );
  const { cache, namespace, key, tags } = parsed.data;
  let cachedUrl: string | undefined;
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (route.config?.cachefleet === false) return;
    if (!methods.every((m) => m === 'GET' || m === 'HEAD')) return;
    // Its key names the entry: two routes under one registration would answer each other's.
    if (cachedUrl !== undefined && cachedUrl !== route.url)
      throw new CacheError(
        'E_CACHE_CONFIG',
        `cachefleetRoutes: ${route.url} would share the entries of ${cachedUrl} (namespace ${namespace.name}): register the plugin once per route, in the route's own scope, or mark it config: { cachefleet: false }`,
      );
    cachedUrl = route.url;
    route.handler = cachedHandler(route.handler, { cache, namespace, key, tags });
  });
}
// Its hooks go to the scope it is registered in (fastify-plugin's `skip-override`), not a child.
Object.assign(cachefleetRoutes, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'cachefleet-routes',
});

function cachedHandler(handler: RouteHandlerMethod, options: CachefleetRoutesOptions): RouteHandlerMethod {
  const { cache, namespace, key, tags } = options;
  return async function cached(this: FastifyInstance, req: FastifyRequest, reply: FastifyReply) {
    const id = key(req);
    if (id === undefined || !namespace.isValidId(id)) return handler.call(this, req, reply);
    let outcome: Outcome | undefined;
    const produce = async (): Promise<CachedResponse | undefined> => {
      let payload: unknown;
      try {
        payload = await handler.call(this, req, reply);
      } catch (error) {
        outcome = { kind: 'threw', error };
        throw error;
      }
      if (reply.sent || payload === reply) {
        outcome = { kind: 'sent' };
        return undefined;
      }
      const stored =
        reply.statusCode === 200 ? toStored(reply, payload, tags?.(req, payload) ?? []) : undefined;
      if (stored === undefined) {
        outcome = { kind: 'uncached', payload };
        return undefined;
      }
      outcome = { kind: 'stored' };
      return stored;
    };
    const r = await producing.run({ ns: namespace.name, produce }, () => cache.get(namespace, id));
    if (outcome?.kind === 'sent') return reply;
    if (outcome?.kind === 'uncached') return outcome.payload;
    if (!r.ok) {
      if (outcome?.kind === 'threw') throw outcome.error;
      // A cache fault, or another request's handler failed for this key: this one runs its own.
      return handler.call(this, req, reply);
    }
    const entry = r.value;
    // Not a cacheable 200 for the request that ran the handler: this one runs its own.
    if (entry === undefined) return handler.call(this, req, reply);
    reply.header('etag', entry.etag);
    reply.header(
      'cache-status',
      outcome?.kind === 'stored' ? 'cachefleet; fwd=miss; stored' : 'cachefleet; hit',
    );
    if (r.stale) {
      reply.header('age', String(r.stale.ageSeconds));
      reply.header('warning', '110 - "Response is Stale"');
    }
    if (ifNoneMatchMatches(req.headers['if-none-match'], entry.etag)) return reply.code(304).send();
    return reply.code(200).type(entry.type).send(entry.body);
  };
}

/** The response to store for a handler's return value, if it is one a cache can keep. */
function toStored(
  reply: FastifyReply,
  payload: unknown,
  tags: readonly string[],
): CachedResponse | undefined {
  if (payload === undefined || payload === null || Buffer.isBuffer(payload)) return undefined;
  if (typeof payload === 'object' && typeof (payload as { pipe?: unknown }).pipe === 'function')
    return undefined;
  const declared = reply.getHeader('content-type');
  const body: unknown = typeof payload === 'string' ? payload : reply.serialize(payload);
  if (typeof body !== 'string') return undefined;
  const type =
    typeof declared === 'string'
      ? declared
      : typeof payload === 'string'
        ? 'text/plain; charset=utf-8'
        : 'application/json; charset=utf-8';
  return { type, body, etag: etagOf(body), tags: [...tags] };
}
