import { z } from 'zod';
import type { Env } from './settings.js';

/**
 * One way to name each Redis, in every process (API pod, worker, CLI, `npm start`): `REDIS_URL` is
 * the Redis of the whole system, and a role's own variable (`CACHE_REDIS_URL`, `QUEUE_REDIS_URL`)
 * splits that role off to another server. Nothing is assumed when none is set: a default address
 * (127.0.0.1:6379 once) made a CLI line talk to another system's Redis without a word.
 */
export type RedisUrlRole = 'cache' | 'queue';

/** The variables a role reads, first set wins (single mode; Sentinel and Cluster have their own). */
export const REDIS_URL_VARIABLES: Readonly<Record<RedisUrlRole, readonly string[]>> = {
  cache: ['CACHE_REDIS_URL', 'REDIS_URL'],
  // CACHE_REDIS_URL last: before REDIS_URL existed, the queue role fell back to the cache's server.
  queue: ['QUEUE_REDIS_URL', 'REDIS_URL', 'CACHE_REDIS_URL'],
};

/** The URL of one role and the variable it came from. */
export interface ChosenRedisUrl {
  readonly url: string;
  readonly from: string;
}

/**
 * `redis://` or `rediss://`, with a host, an optional port (1–65535) and an optional database
 * number; userinfo is allowed (a password may be in it, so messages never repeat the value).
 */
export const redisUrlSchema = z
  .string()
  .superRefine((value, ctx) => {
    const bad = redisUrlProblem(value);
    if (bad !== undefined) ctx.addIssue({ code: 'custom', message: bad });
  })
  .meta({ format: 'redis://host:port[/db]' });

/** The variables of REDIS_URL_VARIABLES, described for docs/configuration.md (single mode). */
export const REDIS_URL_ENV_SCHEMA = z.object({
  REDIS_URL: redisUrlSchema
    .optional()
    .describe(
      'the Redis of the whole system: both roles use it unless CACHE_REDIS_URL or QUEUE_REDIS_URL splits one off; none set is an error (no address is assumed)',
    ),
  CACHE_REDIS_URL: redisUrlSchema
    .optional()
    .describe('the cache Redis alone (CACHE_REDIS_MODE=single); wins over REDIS_URL for the cache role'),
  QUEUE_REDIS_URL: redisUrlSchema
    .optional()
    .describe(
      'the queue Redis alone (QUEUE_REDIS_MODE=single); wins over REDIS_URL, which wins over CACHE_REDIS_URL, for the queue role',
    ),
});

function redisUrlProblem(value: string): string | undefined {
  if (!/^rediss?:\/\//.test(value)) return 'must start with redis:// or rediss://';
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not a URL (redis://host:port[/db])';
  }
  if (url.hostname === '') return 'has no host (redis://host:port[/db])';
  if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) return 'port out of range';
  if (!/^\/?(\d{1,5})?$/.test(url.pathname))
    return 'the path must be a database number (redis://host:port/2)';
  if (url.search !== '' || url.hash !== '') return 'no ?query or #fragment (redis://host:port[/db])';
  return undefined;
}

/**
 * The URL `role` uses, read from `env` (empty counts as unset) and validated; undefined when none
 * of its variables is set. A bad value throws what `fail` makes of `NAME: problem`.
 */
export function redisUrlOf(
  env: Env,
  role: RedisUrlRole,
  fail: (message: string) => Error,
): ChosenRedisUrl | undefined {
  for (const name of REDIS_URL_VARIABLES[role]) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    const parsed = redisUrlSchema.safeParse(value);
    if (!parsed.success) throw fail(`${name}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return { url: parsed.data, from: name };
  }
  return undefined;
}

/** As `redisUrlOf`, but none set is an error naming the variables to set. */
export function requireRedisUrl(
  env: Env,
  role: RedisUrlRole,
  fail: (message: string) => Error,
): ChosenRedisUrl {
  const chosen = redisUrlOf(env, role, fail);
  if (chosen !== undefined) return chosen;
  const [own] = REDIS_URL_VARIABLES[role];
  throw fail(
    `REDIS_URL: required (or ${own} for the ${role} Redis alone): no Redis is assumed; ` +
      '`npm start` prints the lines to paste',
  );
}

/** `redis://host:port/db (from REDIS_URL)`: where a role goes, without the password. */
export function describeChoice(chosen: ChosenRedisUrl): string {
  return `${redactRedisUrl(chosen.url)} (from ${chosen.from})`;
}

/** The URL without user and password. */
export function redactRedisUrl(value: string): string {
  try {
    const url = new URL(value);
    return `${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`;
  } catch {
    return 'an invalid URL';
  }
}

/**
 * Where each role goes, for a start-up log line or `status`: `{ cache: 'redis://h:p (from
 * REDIS_URL)', queue: … }`; a role on Sentinel or Cluster says so.
 */
export function redisChoices(env: Env): Readonly<Record<RedisUrlRole, string>> {
  const one = (role: RedisUrlRole): string => {
    const mode = env[`${role.toUpperCase()}_REDIS_MODE`];
    if (mode !== undefined && mode !== '' && mode !== 'single')
      return `${mode} (${role.toUpperCase()}_REDIS_*)`;
    const chosen = redisUrlOf(env, role, (message) => new Error(message));
    return chosen === undefined ? 'none set' : describeChoice(chosen);
  };
  return { cache: one('cache'), queue: one('queue') };
}
