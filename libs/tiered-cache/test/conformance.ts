import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CacheStore } from '../src/index.js';

interface ConformanceTarget {
  readonly store: CacheStore;
  /** Writes a key outside the store's prefix; `clear()` must leave it alone. */
  readonly plantForeignKey?: () => Promise<() => Promise<boolean>>;
  readonly close: () => Promise<void>;
}

/**
 * The A1 contract, run against every store (null, memory, redis in each mode, tiered): the same
 * calls must mean the same thing everywhere. `caches: false` is the NullCache: it answers every
 * call successfully and keeps nothing.
 */
export function describeStoreConformance(
  name: string,
  make: () => Promise<ConformanceTarget>,
  caps: { readonly caches: boolean } = { caches: true },
): void {
  describe(`store conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let store: CacheStore;
    let n = 0;
    const key = () => `conf:${process.pid}:${++n}`;

    beforeAll(async () => {
      target = await make();
      store = target.store;
      await store.start();
    });
    afterAll(async () => {
      await target?.close();
    });

    it('a miss is ok with an undefined value', async () => {
      expect(await store.get(key())).toEqual({ ok: true, value: undefined });
    });

    it('returns what was set, including nested JSON', async () => {
      const k = key();
      const value = { a: 1, b: ['x', { c: true }], d: null, s: 'é€😀' };
      expect((await store.set(k, value, 60)).ok).toBe(true);
      expect(await store.get(k)).toEqual({ ok: true, value: caps.caches ? value : undefined });
    });

    it('keeps large values intact (compressed in Redis above the threshold)', async () => {
      const k = key();
      const value = { blob: 'lorem ipsum '.repeat(5000), n: [...Array(500).keys()] };
      await store.set(k, value, 60);
      expect(await store.get(k)).toEqual({ ok: true, value: caps.caches ? value : undefined });
    });

    it('expires an entry after its TTL', async () => {
      const k = key();
      await store.set(k, 'short', 0.15);
      await new Promise((r) => setTimeout(r, 400));
      expect(await store.get(k)).toEqual({ ok: true, value: undefined });
    });

    it('getMany returns values aligned with the keys, undefined for misses', async () => {
      const [a, b, c] = [key(), key(), key()];
      await store.set(a, 1, 60);
      await store.set(c, 3, 60);
      expect(await store.getMany([a, b, c])).toEqual({
        ok: true,
        value: caps.caches ? [1, undefined, 3] : [undefined, undefined, undefined],
      });
      expect(await store.getMany([])).toEqual({ ok: true, value: [] });
    });

    it('del reports whether it removed something; delMany counts', async () => {
      const [a, b] = [key(), key()];
      await store.set(a, 'x', 60);
      await store.set(b, 'y', 60);
      expect(await store.del(a)).toEqual({ ok: true, value: caps.caches });
      expect(await store.get(a)).toEqual({ ok: true, value: undefined });
      expect(await store.del(a)).toEqual({ ok: true, value: false });
      expect(await store.delMany([a, b, key()])).toEqual({ ok: true, value: caps.caches ? 1 : 0 });
      expect(await store.get(b)).toEqual({ ok: true, value: undefined });
    });

    it('invalidateTags removes the tagged entries and only them', async () => {
      const [a, b, c] = [key(), key(), key()];
      const tag = `tag-${n}`;
      await store.set(a, 'a', 60, { tags: [tag, 'other'] });
      await store.set(b, 'b', 60, { tags: [tag] });
      await store.set(c, 'c', 60, { tags: ['other'] });
      const r = await store.invalidateTags([tag]);
      expect(r).toEqual({ ok: true, value: caps.caches ? 2 : 0 });
      expect(await store.get(a)).toEqual({ ok: true, value: undefined });
      expect(await store.get(b)).toEqual({ ok: true, value: undefined });
      expect(await store.get(c)).toEqual({ ok: true, value: caps.caches ? 'c' : undefined });
    });

    it('clear removes everything under its prefix and nothing else', async () => {
      const check = await target.plantForeignKey?.();
      await store.set(key(), 1, 60);
      await store.set(key(), 2, 60);
      const r = await store.clear();
      expect(r.ok).toBe(true);
      if (caps.caches && r.ok) expect(r.value).toBeGreaterThanOrEqual(2);
      if (check) expect(await check()).toBe(true);
    });

    it('reports health', async () => {
      const h = await store.health();
      expect(h.ok).toBe(true);
      expect(h.impl).toBe(store.impl);
    });
  });
}
