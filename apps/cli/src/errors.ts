import { CodedError, formatError, isCodedError } from '@cachefleet/config';

/**
 * Exit codes scripts can rely on (README and every `--help` list them). One per kind of outcome,
 * so that `cachefleet warm all || case $? in 3) retry later;; esac` does the right thing.
 */
export const EXIT = {
  /** The command did what it was asked (a followed job completed). */
  OK: 0,
  /** The followed job failed (or an unexpected error: the message says which). */
  JOB_FAILED: 1,
  /** Bad flags or arguments, a payload the catalogue refuses, invalid settings. */
  USAGE: 2,
  /** The queue Redis, the cache Redis or the API did not answer. */
  UNREACHABLE: 3,
  /** No job with that id. */
  NOT_FOUND: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Codes of the CLI's own errors; the text is the documentation (README is checked against it). */
export const CLI_ERROR_CODES = {
  E_CLI_USAGE: 'an unknown command or flag, a missing or invalid argument (the message names the flag)',
  E_CLI_NOT_RETRYABLE: 'jobs retry: the job is not in the failed state',
  E_CLI_JOB_FAILED: 'the followed job ended in the failed state (the message holds its failedReason)',
  E_CLI_UNREACHABLE: 'the queue or cache Redis did not answer within the connect timeout (3 s)',
  E_CLI_API: 'the admin API (CACHEFLEET_API_URL) did not answer or sent no JSON object',
  E_CLI_API_TOKEN: 'the admin API refused CACHEFLEET_ADMIN_TOKEN (wrong or unset)',
  E_CLI_NOT_FOUND: 'no job with that id in any queue',
  E_CLI_NOT_CONFIRMED:
    'a command that empties a whole namespace (`invalidate --all`, `--pattern *`) was not confirmed: answer y at the prompt, or pass --yes',
  E_CLI_DEPLOY:
    'deploy: kubectl failed (render, apply, a rollout that did not finish), or a rendered object is invalid',
  E_CLI_INTERNAL: 'an unexpected error (a bug): the message holds its text',
} as const;
export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export class CliError extends CodedError<CliErrorCode> {}

const EXIT_OF_CODE: Readonly<Record<string, ExitCode>> = {
  E_CLI_USAGE: EXIT.USAGE,
  E_CLI_NOT_RETRYABLE: EXIT.USAGE,
  E_CLI_JOB_FAILED: EXIT.JOB_FAILED,
  E_CLI_UNREACHABLE: EXIT.UNREACHABLE,
  E_CLI_API: EXIT.UNREACHABLE,
  E_CLI_API_TOKEN: EXIT.USAGE,
  E_CLI_NOT_FOUND: EXIT.NOT_FOUND,
  E_CLI_NOT_CONFIRMED: EXIT.USAGE,
  E_CLI_DEPLOY: EXIT.JOB_FAILED,
  E_CLI_INTERNAL: EXIT.JOB_FAILED,
  // Errors of the libraries the CLI drives.
  E_JOB_INVALID_PAYLOAD: EXIT.USAGE,
  E_JOB_CONFIG: EXIT.USAGE,
  E_JOB_SYSTEM_ID: EXIT.USAGE,
  E_JOB_UNKNOWN: EXIT.USAGE,
  E_JOB_INTERNAL: EXIT.USAGE,
  E_JOB_QUEUE_UNAVAILABLE: EXIT.UNREACHABLE,
  E_CACHE_CONFIG: EXIT.USAGE,
  E_TELEMETRY_CONFIG: EXIT.USAGE,
  E_CACHE_L2_UNAVAILABLE: EXIT.UNREACHABLE,
  E_CACHE_L2_FAILED: EXIT.UNREACHABLE,
  E_CAPTURE_CONFIG: EXIT.USAGE,
  E_CAPTURE_NO_SOURCES: EXIT.USAGE,
  E_CATALOGUE_CONFIG: EXIT.USAGE,
};

/** Socket errors that mean "nobody answered there" rather than a bug. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);

interface Failure {
  readonly code: string;
  readonly message: string;
  /** `CODE: message` on one line, as the error line prints it. */
  readonly text: string;
  readonly exit: ExitCode;
}

/** Any thrown value → one error line's code and text, and the exit code. */
export function describeFailure(error: unknown): Failure {
  const coded = asCoded(error);
  return {
    code: coded.code,
    message: oneLine(coded.message),
    text: oneLine(formatError(coded)),
    exit: EXIT_OF_CODE[coded.code] ?? EXIT.JOB_FAILED,
  };
}

/** Ours and the libraries' coded errors as they are; socket errors unreachable; anything else a bug. */
function asCoded(error: unknown): CodedError {
  if (isCodedError(error)) return error;
  const errno = errnoOf(error);
  const message = error instanceof Error ? error.message : String(error);
  if (errno !== undefined && NETWORK_CODES.has(errno))
    return new CliError('E_CLI_UNREACHABLE', message, { cause: error });
  return new CliError('E_CLI_INTERNAL', message, { cause: error });
}

function errnoOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
