import type { Result } from './result.js';

export type CacheImplName = 'null' | 'memory' | 'redis' | 'tiered';

export interface SetOptions {
  /** Tags indexed with this entry, for `invalidateTags`. */
  readonly tags?: readonly string[];
  /** Tiered store only: L1 TTL when it differs from the L2 one, seconds. */
  readonly l1TtlSeconds?: number;
}

export interface StoreHealth {
  readonly ok: boolean;
  readonly impl: CacheImplName;
  /** L2 round trip of a PING, ms; absent without an L2. */
  readonly latencyMs?: number;
  readonly breaker?: 'closed' | 'open' | 'half-open';
  readonly detail?: string;
}

/**
 * The one contract every store honours (REQUIREMENTS A1): null, memory (L1), redis (L2) and the
 * tiered stack. Keys are the caller's; the redis store adds its prefix. A store fault is an
 * `{ ok: false }` result, never a rejection. A miss is `{ ok: true, value: undefined }`.
 */
export interface CacheStore {
  readonly impl: CacheImplName;
  get(key: string): Promise<Result<unknown>>;
  getMany(keys: readonly string[]): Promise<Result<unknown[]>>;
  /** `ttlSeconds` defaults to the store's default TTL. */
  set(key: string, value: unknown, ttlSeconds?: number, options?: SetOptions): Promise<Result<void>>;
  /** Resolves `true` if an entry was removed from at least one tier. */
  del(key: string): Promise<Result<boolean>>;
  delMany(keys: readonly string[]): Promise<Result<number>>;
  /** Removes every entry indexed under any of the tags; resolves the number of entries removed. */
  invalidateTags(tags: readonly string[]): Promise<Result<number>>;
  /** Removes everything under this store's prefix (SCAN + UNLINK, never FLUSHDB). */
  clear(): Promise<Result<number>>;
  health(): Promise<StoreHealth>;
  /** Connects; never rejects for an unreachable Redis (the store serves degraded and recovers). */
  start(): Promise<void>;
  close(): Promise<void>;
}
