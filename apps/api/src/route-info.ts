import type {
  FastifyContextConfig,
  FastifyInstance,
  FastifyRequest,
  onRequestHookHandler,
  RouteOptions,
} from 'fastify';

/** What the pod's hooks need to know of the route a request matched, found once per request. */
export interface RouteInfo {
  /** The route's pattern (`/products/:id`), or `unmatched` (the 404 handler). */
  readonly url: string;
  readonly matched: boolean;
  /** The route's static `config` (e.g. `edgeCache`); empty when unmatched. */
  readonly config: Readonly<FastifyContextConfig>;
}

const ROUTE = 'cachefleetRoute';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request's `RouteInfo` once a hook asked for it (`routeOf`); null before. */
    [ROUTE]: RouteInfo | null;
  }
}

const UNMATCHED: RouteInfo = Object.freeze({ url: 'unmatched', matched: false, config: Object.freeze({}) });
/** By the route's own config object (one per route and method, kept by Fastify for its lifetime). */
const infos = new WeakMap<object, RouteInfo>();

/** Call on the root instance before the routes whose hooks use `routeOf` (again: no effect). */
export function trackRoutes(app: FastifyInstance): void {
  if (app.hasRequestDecorator(ROUTE)) return;
  // A field every request has from its constructor on: setting it keeps the object's shape.
  app.decorateRequest(ROUTE, null);
  // Each route's first own onRequest hook tells the request its route: no lookup at all. (A request
  // answered by an app or scope hook before the route's own hooks ran finds it in `routeOf`.)
  app.addHook('onRoute', (route: RouteOptions) => {
    const info: RouteInfo = Object.freeze({ url: route.url, matched: true, config: route.config ?? {} });
    const mark: onRequestHookHandler = (req, _reply, done) => {
      req[ROUTE] = info;
      done();
    };
    const own = route.onRequest;
    route.onRequest = own === undefined ? [mark] : [mark, ...(Array.isArray(own) ? own : [own])];
  });
}

/**
 * The route of `req`. Fastify's `req.routeOptions` builds a new object of 13 fields on every read;
 * the pod's hooks (route metrics, edge caching, request log) read it once per request through this.
 */
export function routeOf(req: FastifyRequest): RouteInfo {
  const known = req[ROUTE];
  if (known !== null && known !== undefined) return known;
  const options = req.routeOptions;
  let info = UNMATCHED;
  if (options.url !== undefined) {
    const config = options.config;
    const seen = infos.get(config);
    if (seen !== undefined) info = seen;
    else {
      info = Object.freeze({ url: options.url, matched: true, config });
      infos.set(config, info);
    }
  }
  req[ROUTE] = info;
  return info;
}
