import { CodedError, issueMessage } from '@cachefleet/config';
import type { z } from 'zod';

/**
 * Every error this package throws carries one of these codes. The text is the documentation:
 * README's error table is checked against it by a test (test/error-codes.test.ts).
 */
export const CATALOGUE_ERROR_CODES = {
  E_CATALOGUE_CONFIG: 'An environment variable is invalid; the message names it (never its value).',
  E_CATALOGUE_INVALID_INPUT:
    'An argument is invalid (a schema name, an id, a patch, a paging limit); nothing was sent to the database.',
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
