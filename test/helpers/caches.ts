import { type Cache, type CacheOptions, createCache } from '@cachefleet/tiered-cache';

/**
 * Opens tiered caches on one Redis and closes them all at the end of a file:
 * `const caches = cachesOn(server.url); afterAll(() => caches.closeAll());`.
 */
export interface CachePool {
  /** A started cache under `prefix` (keys `prefix + namespace…`), L1 and L2, the bus on. */
  open(prefix: string, extra?: Partial<CacheOptions>): Promise<Cache>;
  /** A cache not started yet (for tests of start-up and of a Redis that is down). */
  create(prefix: string, extra?: Partial<CacheOptions>): Cache;
  /** Closes `cache` with the others at the end (for caches made another way). */
  track<C extends Cache>(cache: C): C;
  closeAll(): Promise<void>;
}

export function cachesOn(url: string): CachePool {
  const caches: Cache[] = [];
  const create = (prefix: string, extra: Partial<CacheOptions> = {}): Cache => {
    const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url }, prefix, ...extra });
    caches.push(cache);
    return cache;
  };
  return {
    create,
    track(cache) {
      caches.push(cache);
      return cache;
    },
    async open(prefix, extra = {}) {
      const cache = create(prefix, extra);
      await cache.start();
      return cache;
    },
    async closeAll() {
      await Promise.all(caches.splice(0).map((c) => c.close()));
    },
  };
}
