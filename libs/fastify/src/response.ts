import { AsyncLocalStorage } from 'node:async_hooks';
import {
  CacheError,
  defineNamespace,
  type Namespace,
  type NamespaceDefinition,
} from '@cachefleet/tiered-cache';
import { z } from 'zod';

/** A route's 200 response as the cache keeps it: the serialized body, its type and its ETag. */
export const cachedResponseSchema = z.strictObject({
  type: z.string().min(1).max(256),
  body: z.string(),
  /** Strong ETag of `body` (`"<sha1 base64url>"`), computed once when the response is stored. */
  etag: z.string().regex(/^"[A-Za-z0-9_-]{27}"$/),
  /**
   * Its tags, kept in the entry so that every pod — also one that read it from Redis — knows them
   * when an invalidation by tag arrives.
   */
  tags: z.array(z.string().min(1).max(256)).max(64),
});
export type CachedResponse = z.output<typeof cachedResponseSchema>;

/**
 * How the route's handler ran for the request that loads an entry: the response to store, or
 * nothing when it is not a cacheable 200 (the handler sent its own reply, another status, no body).
 */
export type Produce = () => Promise<CachedResponse | undefined>;

/** The request whose handler fills an entry, per async context (the cache calls `load` in it). */
export const producing = new AsyncLocalStorage<{ readonly ns: string; readonly produce: Produce }>();

/** What a response namespace takes from a definition: everything but what the route supplies. */
export type ResponseNamespaceOptions = Omit<
  NamespaceDefinition<CachedResponse>,
  'schema' | 'load' | 'loadMany' | 'ids' | 'migrations' | 'tags' | 'sources' | 'version'
> & { readonly version?: number };

/**
 * A namespace whose entries are route responses (`cachefleetRoutes`). Its loader is the route's
 * handler, run for the request that missed: it loads only through a route, so a warm or a
 * migration of it is refused (E_CACHE_LOADER_FAILED naming the namespace); invalidation (ids,
 * tags, patterns, the whole namespace) works as for any namespace.
 */
export function responseNamespace(options: ResponseNamespaceOptions): Namespace<CachedResponse> {
  return defineNamespace<CachedResponse>({
    ...options,
    version: options.version ?? 1,
    schema: cachedResponseSchema,
    tags: (entry: CachedResponse) => entry.tags,
    load: async (_id) => {
      const frame = producing.getStore();
      if (frame === undefined || frame.ns !== options.name)
        throw new CacheError(
          'E_CACHE_LOADER_FAILED',
          `namespace ${options.name} holds route responses: it is filled by its route only, not warmed or migrated`,
        );
      return frame.produce();
    },
  });
}
