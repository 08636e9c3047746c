/**
 * The one error model of every cachefleet package, as fastify (`@fastify/error`) and bentocache
 * (`@poppinss/exception`) do it: a class per package whose `code` comes from that package's table in
 * its `errors.ts` (`E_<PACKAGE>_<WHAT>` → one line of meaning; README carries the same tables and a
 * test holds them equal), a message that does not repeat the code, and the `cause` kept.
 *
 * Where a person reads an error — a CLI line, a job's `failedReason`, an API body, a log line — it is
 * written by `formatError`, so the code appears there once, in front, and nowhere else.
 */
export class CodedError<C extends string = string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    // The subclass's own name (CacheError, JobError …): stack traces and toString() say whose it is.
    this.name = new.target.name;
  }

  override toString(): string {
    return `${this.name} [${this.code}]: ${this.message}`;
  }
}

export function isCodedError(value: unknown): value is CodedError {
  return value instanceof CodedError;
}

/** `E_CODE: message` for a coded error, the message of any other error, the text of anything else. */
export function formatError(error: unknown): string {
  if (error instanceof CodedError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
