import { CodedError } from '@cachefleet/config';

/**
 * Every error this package throws carries one of these codes. The text is the documentation:
 * README's error table is checked against it by a test (test/error-codes.test.ts).
 */
export const CAPTURE_ERROR_CODES = {
  E_CAPTURE_CONFIG: 'A capture setting (CAPTURE_*) is invalid; the message names the variable.',
  E_CAPTURE_NO_SOURCES:
    'No namespace of the definitions declares `sources` (or one declares a table twice): nothing to capture.',
  E_CAPTURE_NOT_INSTALLED:
    'The outbox table is missing: run `cachefleet capture install` (or apply the migration file) first.',
} as const;

export type CaptureErrorCode = keyof typeof CAPTURE_ERROR_CODES;

export class CaptureError extends CodedError<CaptureErrorCode> {
  constructor(
    code: CaptureErrorCode,
    message: string = CAPTURE_ERROR_CODES[code],
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}
