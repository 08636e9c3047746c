export { etagOf, ifNoneMatchMatches } from './etag.js';
export { type CachefleetRoutesOptions, cachefleetRoutes } from './plugin.js';
export {
  type CachedResponse,
  cachedResponseSchema,
  type ResponseNamespaceOptions,
  responseNamespace,
} from './response.js';
