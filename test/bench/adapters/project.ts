import { itemDefinition } from '../data.js';
import type { AdapterSpec } from '../types.js';

/** Results carry store faults as values; a benchmark must not count a fault as a read. */
function unwrapResult(resolved: unknown): unknown {
  if (typeof resolved !== 'object' || resolved === null || !('ok' in resolved)) {
    throw new Error('cache.get did not resolve to a Result');
  }
  if (resolved.ok === true && 'value' in resolved) return resolved.value;
  throw 'error' in resolved ? resolved.error : new Error('cache.get failed without an error');
}

/**
 * The library is imported inside setup(), not at the top: a library that does not build yet
 * must turn the project rows into error rows while the floors and peers still run.
 */
export const project: AdapterSpec = {
  name: 'cachefleet',
  role: 'project',
  tiers: ['tiered', 'l2-only'],
  note: 'cachefleet tiered-cache: impl "tiered" (L1 + L2) or "redis" for l2-hit; get(ns, id) with the namespace loader; schema checked on write/load; values stay under l2.compressionThreshold (2048), so no deflate',
  async setup({ port, tier, prefix, load }) {
    const { createCache, defineNamespace } = await import('@cachefleet/tiered-cache');
    const items = defineNamespace(itemDefinition(load));
    const cache = createCache({
      impl: tier === 'tiered' ? 'tiered' : 'redis',
      redis: { mode: 'single', url: `redis://127.0.0.1:${port}` },
      prefix,
      l1: { maxEntries: 100_000 },
    });
    await cache.start();
    const status = await cache.store.health();
    if (!status.ok) {
      await cache.close();
      throw new Error(`cache did not reach Redis: ${status.detail ?? 'unhealthy'}`);
    }
    return {
      get: (key) => cache.get(items, key),
      unwrap: unwrapResult,
      async set(key, value) {
        const r = await cache.set(items, key, value);
        if (!r.ok) throw r.error;
      },
      close: () => cache.close(),
    };
  },
};
