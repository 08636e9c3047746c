import { CodedError, issueMessage } from '@cachefleet/config';
import type { z } from 'zod';

/**
 * Every error this package throws carries one of these codes. The text is the documentation:
 * README's error table is checked against it by a test (test/error-codes.test.ts).
 */
export const CATALOGUE_ERROR_CODES = {
  E_CATALOGUE_CONFIG: 'An environment variable is invalid; the message names it (never its value).',
  E_CATALOGUE_INVALID_INPUT:
    'An argument is invalid (a schema name, an id, a patch, a paging limit): refused before any SQL, or a value the database would not store; nothing was written.',
  E_CATALOGUE_CONFLICT:
    'A write would give a unique column (sku) a value another row has; the message names the field; nothing was written.',
} as const;

export type CatalogueErrorCode = keyof typeof CATALOGUE_ERROR_CODES;

export class CatalogueError extends CodedError<CatalogueErrorCode> {
  constructor(
    code: CatalogueErrorCode,
    message: string = CATALOGUE_ERROR_CODES[code],
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Parses an argument, or throws E_CATALOGUE_INVALID_INPUT naming it (and the field within it). */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const message = issueMessage(parsed.error, { root: what, name: (path) => `${what}.${path.join('.')}` });
  throw new CatalogueError('E_CATALOGUE_INVALID_INPUT', message, { cause: parsed.error });
}

/** PostgreSQL's SQLSTATE of an error of pg or PGlite (both carry it as `code`). */
function sqlState(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  const code = error.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The one place a database error of a write becomes ours: a unique violation (23505) is
 * E_CATALOGUE_CONFLICT naming the field (from `unique`: constraint → field), a data exception
 * (class 22: a NUL, a bad encoding, a number out of range) or a value too large for an index
 * (54000) is E_CATALOGUE_INVALID_INPUT. Our messages only: PostgreSQL's name constraints and
 * quote values. Any other error (the database is down, a table is missing) is returned as is.
 */
export function dbError(
  error: unknown,
  what: string,
  unique: Readonly<Record<string, string>> = {},
): unknown {
  const code = sqlState(error);
  if (code === '23505') {
    const constraint = (error as { constraint?: unknown }).constraint;
    const field = (typeof constraint === 'string' ? unique[constraint] : undefined) ?? what;
    return new CatalogueError('E_CATALOGUE_CONFLICT', `${field}: already used by another row`, {
      cause: error,
    });
  }
  if (code !== undefined && (code.startsWith('22') || code === '54000'))
    return new CatalogueError('E_CATALOGUE_INVALID_INPUT', `${what}: a value the database cannot store`, {
      cause: error,
    });
  return error;
}
