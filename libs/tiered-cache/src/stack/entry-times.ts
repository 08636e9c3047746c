import type { Ok } from '../result.js';

/**
 * What an L1 entry of a timed namespace (grace, early refresh) knows about itself. Kept as a
 * non-enumerable property of the stored `Ok`, so a hit still returns the stored object and callers
 * (and `toEqual`) see only `ok` and `value`.
 */
export interface L1Times {
  /** Wall-clock ms, from the entry's L2 header. */
  readonly loadedAt: number;
  readonly expiresAt: number;
  /** performance.now() until which the L1 copy is a hit; after it, a stale candidate. */
  readonly freshUntil: number;
  /** performance.now() from which a hit starts an early refresh (Infinity: off, or started). */
  refreshAt: number;
}

const TIMES = Symbol('cachefleet.l1Times');
type Timed = Ok<unknown> & { readonly [TIMES]?: L1Times };

export function timesOf(entry: Ok<unknown>): L1Times | undefined {
  return (entry as Timed)[TIMES];
}

/** A new `Ok` for L1 with its times attached (the caller's object is left as it is). */
export function withTimes(entry: Ok<unknown>, times: L1Times): Ok<unknown> {
  const stored: Ok<unknown> = { ok: true, value: entry.value };
  Object.defineProperty(stored, TIMES, { value: times, enumerable: false });
  return Object.freeze(stored);
}

/** A TTL multiplied by a uniform 1 ± spread (the avalanche protection of a full warm). */
export function spread(ms: number, fraction: number): number {
  return fraction === 0 ? ms : ms * (1 + fraction * (2 * Math.random() - 1));
}
