import { LRUCache } from 'lru-cache';
import { OK_UNDEFINED, type Ok, ok, type Result } from '../result.js';
import type { CacheStore, SetOptions, StoreHealth } from '../types.js';

export interface MemoryStoreOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly defaultTtlSeconds: number;
  /** Injectable clock for TTL tests; `performance` by default. */
  readonly clock?: { now(): number };
}

interface L1Stats {
  evictions: number;
}

/**
 * L1: an in-process lru-cache. Entries are stored as frozen `Ok` results so that a hit returns
 * the stored object itself and allocates nothing on the hottest path.
 */
export class MemoryStore implements CacheStore {
  readonly impl = 'memory' as const;
  readonly stats: L1Stats = { evictions: 0 };
  readonly #lru: LRUCache<string, Ok<unknown>>;
  readonly #defaultTtlMs: number;
  /** tag → keys and key → tags, kept only for entries written with tags; pruned on dispose. */
  readonly #tags = new Map<string, Set<string>>();
  readonly #keyTags = new Map<string, readonly string[]>();

  constructor(options: MemoryStoreOptions) {
    this.#defaultTtlMs = options.defaultTtlSeconds * 1000;
    this.#lru = new LRUCache<string, Ok<unknown>>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      // Entries written without a size (from loaders that did not serialise) count as 1 KB.
      sizeCalculation: () => 1024,
      ttl: this.#defaultTtlMs,
      ttlAutopurge: false,
      ...(options.clock ? { perf: options.clock } : {}),
      dispose: (_value, key, reason) => {
        if (reason === 'evict') this.stats.evictions++;
        if (this.#keyTags.size > 0) this.#unindex(key);
      },
    });
  }

  /** Synchronous L1 read for the read-through fast path: the stored `Ok`, or undefined. */
  peek(key: string): Ok<unknown> | undefined {
    return this.#lru.get(key);
  }

  /** Synchronous write; `size` is the entry's JSON length when known. */
  put(key: string, entry: Ok<unknown>, ttlMs: number, size?: number, tags?: readonly string[]): void {
    this.#lru.set(key, entry, size !== undefined ? { ttl: ttlMs, size: Math.max(1, size) } : { ttl: ttlMs });
    if (tags !== undefined) this.#index(key, tags);
  }

  remove(key: string): boolean {
    return this.#lru.delete(key);
  }

  /** Drops the keys under `keyPrefix` whose remainder (the id) satisfies `match`. */
  removeWhere(keyPrefix: string, match: (id: string) => boolean): number {
    let n = 0;
    for (const key of this.#lru.keys()) {
      if (key.startsWith(keyPrefix) && match(key.slice(keyPrefix.length)) && this.#lru.delete(key)) n++;
    }
    return n;
  }

  /** Whether the entry at `key` was stored with tags. */
  hasTags(key: string): boolean {
    return (this.#keyTags.get(key)?.length ?? 0) > 0;
  }

  /** Drops everything (events were lost: nothing in L1 can be trusted). */
  removeAll(): number {
    const n = this.#lru.size;
    this.#lru.clear();
    this.#tags.clear();
    this.#keyTags.clear();
    return n;
  }

  /** Drops every key that starts with `keyPrefix` (a namespace); returns how many. */
  removeByPrefix(keyPrefix: string): number {
    let n = 0;
    for (const key of this.#lru.keys()) {
      if (key.startsWith(keyPrefix) && this.#lru.delete(key)) n++;
    }
    return n;
  }

  removeTags(tags: readonly string[]): number {
    let n = 0;
    for (const tag of tags) {
      const keys = this.#tags.get(tag);
      if (!keys) continue;
      this.#tags.delete(tag);
      for (const key of keys) if (this.#lru.delete(key)) n++;
    }
    return n;
  }

  get entries(): number {
    return this.#lru.size;
  }
  get bytes(): number {
    return this.#lru.calculatedSize;
  }
  get maxEntries(): number {
    return this.#lru.max;
  }
  get maxBytes(): number {
    return this.#lru.maxSize;
  }

  async get(key: string): Promise<Result<unknown>> {
    return this.#lru.get(key) ?? OK_UNDEFINED;
  }
  async getMany(keys: readonly string[]): Promise<Result<unknown[]>> {
    return ok(keys.map((k) => this.#lru.get(k)?.value));
  }
  async set(key: string, value: unknown, ttlSeconds?: number, options?: SetOptions): Promise<Result<void>> {
    const ttlMs = (options?.l1TtlSeconds ?? ttlSeconds ?? this.#defaultTtlMs / 1000) * 1000;
    this.put(key, ok(value), ttlMs, undefined, options?.tags);
    return OK_UNDEFINED;
  }
  async del(key: string): Promise<Result<boolean>> {
    return ok(this.remove(key));
  }
  async delMany(keys: readonly string[]): Promise<Result<number>> {
    let n = 0;
    for (const k of keys) if (this.remove(k)) n++;
    return ok(n);
  }
  async invalidateTags(tags: readonly string[]): Promise<Result<number>> {
    return ok(this.removeTags(tags));
  }
  async clear(): Promise<Result<number>> {
    const n = this.#lru.size;
    this.#lru.clear();
    this.#tags.clear();
    this.#keyTags.clear();
    return ok(n);
  }
  async health(): Promise<StoreHealth> {
    return { ok: true, impl: 'memory' };
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {
    this.#lru.clear();
    this.#tags.clear();
  }

  #index(key: string, tags: readonly string[]): void {
    this.#keyTags.set(key, tags);
    for (const tag of tags) {
      let keys = this.#tags.get(tag);
      if (!keys) {
        keys = new Set();
        this.#tags.set(tag, keys);
      }
      keys.add(key);
    }
  }

  #unindex(key: string): void {
    const tags = this.#keyTags.get(key);
    if (!tags) return;
    this.#keyTags.delete(key);
    for (const tag of tags) {
      const keys = this.#tags.get(tag);
      keys?.delete(key);
      if (keys?.size === 0) this.#tags.delete(tag);
    }
  }
}
