import { OK_UNDEFINED, ok, type Result } from '../result.js';
import type { CacheStore, StoreHealth } from '../types.js';

const OK_FALSE: Result<boolean> = Object.freeze({ ok: true, value: false });
const OK_ZERO: Result<number> = Object.freeze({ ok: true, value: 0 });

/**
 * Caches nothing (REQUIREMENTS A2). Every read misses, so the read-through layer calls the loader
 * and counts the demand: run it first to see what a real cache would save.
 */
export class NullStore implements CacheStore {
  readonly impl = 'null' as const;

  async get(): Promise<Result<unknown>> {
    return OK_UNDEFINED;
  }
  async getMany(keys: readonly string[]): Promise<Result<unknown[]>> {
    return ok(new Array<unknown>(keys.length).fill(undefined));
  }
  async set(): Promise<Result<void>> {
    return OK_UNDEFINED;
  }
  async del(): Promise<Result<boolean>> {
    return OK_FALSE;
  }
  async delMany(): Promise<Result<number>> {
    return OK_ZERO;
  }
  async invalidateTags(): Promise<Result<number>> {
    return OK_ZERO;
  }
  async clear(): Promise<Result<number>> {
    return OK_ZERO;
  }
  async health(): Promise<StoreHealth> {
    return { ok: true, impl: 'null' };
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}
