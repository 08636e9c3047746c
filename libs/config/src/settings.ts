import { z } from 'zod';

/**
 * How every package reads its settings: it names its variables in a zod object schema, reads them
 * from an environment object it is given (never `process.env` by itself), and reports a bad one
 * by name, once, with the package's own `E_<PACKAGE>_CONFIG` code.
 */

/** `process.env` or a test's own object. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The variables of `names` that are set and not empty (empty counts as unset). */
export function pickEnv(env: Env, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v !== '') out[name] = v;
  }
  return out;
}

/** `true/false/1/0/yes/no/on/off`. */
export const boolishSchema = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

/** An integer written as text (`"30000"`); its range is the caller's. */
export const intSchema = z.coerce.number().int();

/** A TCP port written as text; 0 asks for a free one. */
export const portSchema = intSchema.min(0).max(65535);

/** `host:port,host:port` → [{host, port}]. */
export const hostListSchema = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  )
  .pipe(
    z
      .array(
        z
          .string()
          .regex(/^[^:\s]+:\d{1,5}$/, 'expected host:port')
          .transform((hp) => {
            const at = hp.lastIndexOf(':');
            return { host: hp.slice(0, at), port: Number(hp.slice(at + 1)) };
          }),
      )
      .min(1),
  )
  .meta({ format: 'host:port,host:port' });

export interface IssueNaming {
  /** What the user calls the field at `path` (a variable, a flag, an option path); default `a.b.c`. */
  readonly name?: (path: readonly PropertyKey[]) => string;
  /** The name of the whole input, for an issue about it rather than a field; default `(root)`. */
  readonly root?: string;
}

/**
 * The first issue of a zod error as `NAME: problem` (one line a person can act on: the first fault
 * fixed, the next one shows). Every settings loader, payload check and body check words its
 * refusal through this.
 */
export function issueMessage(error: z.ZodError, naming: IssueNaming = {}): string {
  const issue = error.issues[0];
  const path = issue?.path ?? [];
  const name = path.length === 0 ? (naming.root ?? '(root)') : (naming.name ?? dotted)(path);
  return `${name}: ${issue?.message ?? 'invalid'}`;
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/**
 * Reads the variables `schema` names from `env` (empty = unset) and validates them; a bad one
 * throws what `fail` makes of `NAME: problem` — the package's own config error.
 */
export function parseEnv<S extends z.ZodObject>(
  schema: S,
  env: Env,
  fail: (message: string, cause: z.ZodError) => Error,
): z.output<S> {
  const parsed = schema.safeParse(pickEnv(env, Object.keys(schema.shape)));
  if (!parsed.success) throw fail(issueMessage(parsed.error), parsed.error);
  return parsed.data;
}
