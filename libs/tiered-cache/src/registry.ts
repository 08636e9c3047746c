import type { Totals } from './stack/state.js';
import type { CacheImplName, CacheStore } from './types.js';

/** The A3 / A7 status object. */
export interface CacheStatus {
  readonly enabled: boolean;
  readonly implName: CacheImplName;
  /** When the active implementation was registered (ISO 8601). */
  readonly registeredAt: string;
  readonly hits: number;
  readonly misses: number;
  readonly errors: number;
  /** hits / (hits + misses) since registration; 0 before the first read. */
  readonly hitRate: number;
}

/**
 * Holds the active store of one app instance and swaps it at run time (NullCache → tiered and
 * back). Counts shown by `status()` are those since the current store was registered.
 */
export class CacheRegistry {
  #store: CacheStore;
  #registeredAt: Date;
  #baseline: Totals;
  readonly #totals: () => Totals;

  constructor(store: CacheStore, totals: () => Totals, clock: () => Date = () => new Date()) {
    this.#store = store;
    this.#totals = totals;
    this.#clock = clock;
    this.#registeredAt = clock();
    this.#baseline = totals();
  }
  readonly #clock: () => Date;

  get store(): CacheStore {
    return this.#store;
  }

  /** Makes `store` active and returns the previous one (the caller closes it). */
  swap(store: CacheStore): CacheStore {
    const previous = this.#store;
    this.#store = store;
    this.#registeredAt = this.#clock();
    this.#baseline = this.#totals();
    return previous;
  }

  status(): CacheStatus {
    const now = this.#totals();
    const hits = now.hits - this.#baseline.hits;
    const misses = now.misses - this.#baseline.misses;
    const errors = now.errors - this.#baseline.errors;
    const reads = hits + misses;
    return {
      enabled: this.#store.impl !== 'null',
      implName: this.#store.impl,
      registeredAt: this.#registeredAt.toISOString(),
      hits,
      misses,
      errors,
      hitRate: reads === 0 ? 0 : hits / reads,
    };
  }
}
