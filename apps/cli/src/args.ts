import { issueMessage } from '@cachefleet/config';
import { JobError } from '@cachefleet/jobs';
import { z } from 'zod';
import { CliError, type CliErrorCode } from './errors.js';

/**
 * Runs node:util `parseArgs` and turns its errors into one E_CLI_USAGE line naming the flag
 * (its own messages are long and suggest `--` tricks that make no sense here).
 */
export function parseFlags<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw error;
    const message = error instanceof Error ? error.message : String(error);
    // "Option '-n, --namespace <value>' argument missing": name the long form.
    const flag = /(--[\w-]+)/.exec(message)?.[1] ?? /'(-[^' ,]+)/.exec(message)?.[1];
    switch (code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw usage(`${flag ?? 'flag'}: unknown flag (see cachefleet ${command} --help)`);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        throw usage(
          message.includes('argument missing')
            ? `${flag ?? 'flag'}: expects a value`
            : `${flag ?? 'flag'}: takes no value`,
        );
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
        const arg = /'([^']*)'/.exec(message)?.[1];
        throw usage(`unexpected argument ${JSON.stringify(arg ?? '')} (see cachefleet ${command} --help)`);
      }
      default:
        throw usage(message);
    }
  }
}

export function usage(message: string): CliError {
  return new CliError('E_CLI_USAGE', message);
}

/**
 * Validates `input` with `schema`; the first issue becomes one error line naming the flag the
 * offending field came from (`nameOf` maps a zod path to it), and the value given, if short.
 */
export function check<S extends z.ZodType>(
  schema: S,
  input: unknown,
  nameOf: (path: readonly PropertyKey[]) => string,
  code: CliErrorCode | 'E_JOB_INVALID_PAYLOAD' = 'E_CLI_USAGE',
): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const path = parsed.error.issues[0]?.path ?? [];
  const given = valueAt(input, path);
  const shown = typeof given === 'string' && given.length <= 80 ? ` (got ${JSON.stringify(given)})` : '';
  const message = `${issueMessage(parsed.error, { name: nameOf, root: nameOf([]) })}${shown}`;
  // A payload the catalogue refuses fails with the code the producer itself would have thrown.
  if (code === 'E_JOB_INVALID_PAYLOAD') throw new JobError(code, message);
  throw new CliError(code, message);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let at = input;
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

/** `--keys a,b --keys c` → ['a', 'b', 'c']; undefined when absent. Empty items stay, for the check to name. */
export function commaList(values: readonly string[] | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return values.flatMap((v) => v.split(',')).map((v) => v.trim());
}

/** `--flag` spelled from a zod path of a flags object (`['limit']` → `--limit`). */
export function flagName(path: readonly PropertyKey[]): string {
  const head = path[0];
  return typeof head === 'string' ? `--${head}` : 'arguments';
}

/** A count given as a flag (`--top 50`); its range is checked by whoever uses it. */
export const wholeNumber = z
  .string()
  .regex(/^\d{1,9}$/, 'expects a whole number')
  .transform(Number);
