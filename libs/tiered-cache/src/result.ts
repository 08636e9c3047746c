import type { CacheError } from './errors.js';

/** Store faults are values, not exceptions (REQUIREMENTS A1). */
export type Result<T, E = CacheError> = Ok<T> | Err<E>;
export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
  /** Present when the value is past its TTL, served because the loader failed or was too slow (grace). */
  readonly stale?: Staleness;
}

/** How old a stale value is: for `Age` and `Warning: 110` headers. */
export interface Staleness {
  /** Seconds since the value was loaded (whole seconds, for an `Age` header). */
  readonly ageSeconds: number;
  /** How long ago its TTL ended, ms (0 when only its L1 copy had expired). */
  readonly expiredMs: number;
}
export interface Err<E> {
  readonly ok: false;
  readonly error: E;
}

export function ok<T>(value: T): Ok<T> {
  return { ok: true, value };
}

export function err<E>(error: E): Err<E> {
  return { ok: false, error };
}

/** Shared instance so that misses and plain acknowledgements allocate nothing. */
export const OK_UNDEFINED: Ok<undefined> = Object.freeze({ ok: true, value: undefined });
