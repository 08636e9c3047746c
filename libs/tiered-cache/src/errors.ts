import { CodedError } from '@cachefleet/config';

/**
 * Every error the library hands out carries one of these codes. The text is the documentation:
 * README's error table is checked against it by a test (test/error-codes.test.ts).
 */
export const ERROR_CODES = {
  E_CACHE_CONFIG: 'The cache configuration is invalid; the message names the field.',
  E_CACHE_INVALID_NAMESPACE:
    'A namespace definition (defineNamespace) is invalid; the message names the namespace and the field.',
  E_CACHE_L2_UNAVAILABLE:
    'Redis (L2) is not connected or its circuit breaker is open; the call was not sent. Reads fall back to L1 and the loader.',
  E_CACHE_L2_FAILED: 'A Redis (L2) command failed or timed out; `cause` holds the driver error.',
  E_CACHE_INVALID_ID: "An id does not satisfy the namespace's id schema; nothing was read or written.",
  E_CACHE_INVALID_VALUE: "A value does not satisfy the namespace's value schema; nothing was written.",
  E_CACHE_LOADER_FAILED: "The namespace's loader threw or rejected; `cause` holds its error.",
  E_CACHE_LOADER_TIMEOUT:
    "The namespace's loader did not answer within the hard timeout and no stale value could be served; the load goes on in the background.",
  E_CACHE_CORRUPT_ENTRY: 'An L2 entry could not be decoded; it is treated as a miss and deleted.',
  E_CACHE_INVALID_EVENT:
    'A bus event does not satisfy its schema; it was not published (or, received, not applied).',
  E_CACHE_CLOSED: 'The cache was closed.',
  E_CACHE_INVALID_OPTION:
    "A call's options are invalid (such as `{ wait: 'fleet', timeoutMs }`); the message names the field and nothing was done.",
} as const;

export type CacheErrorCode = keyof typeof ERROR_CODES;

export class CacheError extends CodedError<CacheErrorCode> {
  constructor(code: CacheErrorCode, message: string = ERROR_CODES[code], options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export function isCacheError(value: unknown): value is CacheError {
  return value instanceof CacheError;
}
