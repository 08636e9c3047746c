import { OK_UNDEFINED, ok, type Result } from '../result.js';
import type { CacheStore, SetOptions, StoreHealth } from '../types.js';
import type { MemoryStore } from './memory.js';
import type { RedisStore } from './redis/store.js';

/**
 * The A1 contract over L1 + L2 for raw keys. Reads fill L1 from L2; writes go to both; a
 * Redis fault degrades to L1 (the result is still ok when L1 could serve it).
 */
export class TieredStore implements CacheStore {
  readonly impl = 'tiered' as const;
  readonly l1: MemoryStore;
  readonly l2: RedisStore;
  readonly #l1TtlMs: number;

  constructor(l1: MemoryStore, l2: RedisStore, l1DefaultTtlSeconds: number) {
    this.l1 = l1;
    this.l2 = l2;
    this.#l1TtlMs = l1DefaultTtlSeconds * 1000;
  }

  async get(key: string): Promise<Result<unknown>> {
    const hit = this.l1.peek(key);
    if (hit !== undefined) return hit;
    const r = await this.l2.read(key);
    if (!r.ok) return r;
    if (r.value === undefined) return OK_UNDEFINED;
    const entry = ok(r.value.value);
    this.l1.put(key, entry, this.#l1TtlMs, r.value.size);
    return entry;
  }

  async getMany(keys: readonly string[]): Promise<Result<unknown[]>> {
    const out: unknown[] = new Array(keys.length);
    const missing: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const hit = this.l1.peek(keys[i] as string);
      if (hit !== undefined) out[i] = hit.value;
      else missing.push(i);
    }
    if (missing.length === 0) return ok(out);
    const r = await this.l2.readMany(missing.map((i) => keys[i] as string));
    if (!r.ok) return r;
    missing.forEach((i, j) => {
      const e = r.value[j];
      if (e === undefined) return;
      out[i] = e.value;
      this.l1.put(keys[i] as string, ok(e.value), this.#l1TtlMs, e.size);
    });
    return ok(out);
  }

  async set(key: string, value: unknown, ttlSeconds?: number, options?: SetOptions): Promise<Result<void>> {
    const l1TtlSeconds =
      options?.l1TtlSeconds ?? Math.min(ttlSeconds ?? Number.POSITIVE_INFINITY, this.#l1TtlMs / 1000);
    await this.l1.set(key, value, l1TtlSeconds, options?.tags ? { tags: options.tags } : undefined);
    return this.l2.set(key, value, ttlSeconds, options);
  }

  async del(key: string): Promise<Result<boolean>> {
    const inL1 = this.l1.remove(key);
    const r = await this.l2.del(key);
    return r.ok ? ok(r.value || inL1) : r;
  }

  async delMany(keys: readonly string[]): Promise<Result<number>> {
    for (const k of keys) this.l1.remove(k);
    return this.l2.delMany(keys);
  }

  async invalidateTags(tags: readonly string[]): Promise<Result<number>> {
    const inL1 = this.l1.removeTags(tags);
    const r = await this.l2.invalidateTags(tags);
    return r.ok ? ok(Math.max(r.value, inL1)) : r;
  }

  async clear(): Promise<Result<number>> {
    await this.l1.clear();
    return this.l2.clear();
  }

  async health(): Promise<StoreHealth> {
    const h = await this.l2.health();
    return { ...h, impl: 'tiered' };
  }

  async start(): Promise<void> {
    await this.l2.start();
  }

  async close(): Promise<void> {
    await this.l1.close();
    await this.l2.close();
  }
}
