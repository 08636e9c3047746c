import { z } from 'zod';

/**
 * Helpers every package uses to read its settings from an environment object: each package names
 * its variables, validates them with zod and reports a bad one by name.
 */

/** The variables of `names` that are set and not empty (empty counts as unset). */
export function pickEnv(
  env: Readonly<Record<string, string | undefined>>,
  names: readonly string[],
): Record<string, string> {
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
  );
