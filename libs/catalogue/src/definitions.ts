import { type Env, parseEnv } from '@cachefleet/config';
import type { Namespace } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { createCatalogue } from './catalogue.js';
import { connectPg } from './db.js';
import { CatalogueError } from './errors.js';
import { migrate } from './migrate.js';
import { DEFAULT_PRODUCT_READ, PRODUCT_IDS, type ProductReadOptions } from './product.js';
import { DEFAULT_SCHEMA, schemaNameSchema } from './sql.js';

/**
 * What a definitions module hands to API pods and workers: they load it by module specifier and
 * call its `createDefinitions(process.env)`.
 */
export interface Definitions {
  readonly namespaces: readonly Namespace<unknown>[];
  /** Per namespace name, the ids a `critical` warm loads. */
  readonly critical: Readonly<Record<string, readonly string[]>>;
  /** Releases the database connections. */
  close(): Promise<void>;
}

/** How many products (the lowest ids) a critical warm loads. */
export const CRITICAL_PRODUCTS = 100;

const seconds = z.coerce.number().positive();
const millis = z.coerce.number().int().min(0);

export const CATALOGUE_ENV_SCHEMA = z.object({
  // No default: a worker must never touch a database it was not given (npm start prints the URL of
  // its embedded one). The API reads it too and serves an embedded PGlite when it is unset.
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional()
    .describe(
      'PostgreSQL of the catalogue (postgres:// URL). Required by a worker (no default database is assumed); the API serves an embedded PGlite when it is unset',
    ),
  CATALOGUE_SCHEMA: schemaNameSchema
    .default(DEFAULT_SCHEMA)
    .describe("PostgreSQL schema of the catalogue's tables (created at start if missing)"),
  CATALOGUE_TTL_L1: seconds
    .default(DEFAULT_PRODUCT_READ.ttl.l1)
    .describe('L1 TTL of the product namespace, seconds'),
  CATALOGUE_TTL_L2: seconds
    .default(DEFAULT_PRODUCT_READ.ttl.l2)
    .describe('L2 TTL of the product namespace, seconds'),
  CATALOGUE_GRACE_SECONDS: z.coerce
    .number()
    .min(0)
    .default(DEFAULT_PRODUCT_READ.grace?.seconds ?? 0)
    .describe(
      'grace (fail-safe) of the product namespace: entries kept this long past their TTL and served when the loader fails, seconds; 0 turns it off',
    ),
  CATALOGUE_GRACE_BACKOFF_SECONDS: seconds
    .default(DEFAULT_PRODUCT_READ.grace?.backoffSeconds ?? 5)
    .describe(
      'after a failed load served stale, the loader is not called again for that key for this long, seconds',
    ),
  CATALOGUE_SOFT_TIMEOUT_MS: millis
    .default(DEFAULT_PRODUCT_READ.timeouts?.softMs ?? 0)
    .describe(
      'a reader with a stale copy gets it after this long while the load goes on, ms; 0 = off; at most CATALOGUE_HARD_TIMEOUT_MS',
    ),
  CATALOGUE_HARD_TIMEOUT_MS: millis
    .default(DEFAULT_PRODUCT_READ.timeouts?.hardMs ?? 0)
    .describe('a reader gets its stale copy or E_CACHE_LOADER_TIMEOUT after this long, ms; 0 = off'),
  CATALOGUE_EARLY_REFRESH: z.coerce
    .number()
    .min(0)
    .lt(1)
    .default(DEFAULT_PRODUCT_READ.earlyRefresh ?? 0)
    .describe(
      'fraction of the L2 TTL: a hit in its last part starts one background refresh per key in the fleet; 0 = off',
    ),
  CATALOGUE_TTL_SPREAD: z.coerce
    .number()
    .min(0)
    .max(0.5)
    .default(DEFAULT_PRODUCT_READ.ttlSpread ?? 0)
    .describe(
      "each entry's TTL is multiplied by a uniform 1 ± this, so a full warm does not expire in one second; 0 = off",
    ),
});
export type CatalogueEnv = z.output<typeof CATALOGUE_ENV_SCHEMA>;

/** The product namespace's read options from CATALOGUE_* settings (0 turns grace, a timeout, early refresh off). */
export function readOptionsOf(e: CatalogueEnv): ProductReadOptions {
  const softMs = e.CATALOGUE_SOFT_TIMEOUT_MS || undefined;
  const hardMs = e.CATALOGUE_HARD_TIMEOUT_MS || undefined;
  if (softMs !== undefined && hardMs !== undefined && softMs > hardMs)
    throw new CatalogueError(
      'E_CATALOGUE_CONFIG',
      'CATALOGUE_SOFT_TIMEOUT_MS: must not exceed CATALOGUE_HARD_TIMEOUT_MS',
    );
  return {
    ttl: { l1: e.CATALOGUE_TTL_L1, l2: e.CATALOGUE_TTL_L2 },
    ...(e.CATALOGUE_GRACE_SECONDS > 0
      ? { grace: { seconds: e.CATALOGUE_GRACE_SECONDS, backoffSeconds: e.CATALOGUE_GRACE_BACKOFF_SECONDS } }
      : {}),
    ...(softMs !== undefined || hardMs !== undefined
      ? { timeouts: { ...(softMs ? { softMs } : {}), ...(hardMs ? { hardMs } : {}) } }
      : {}),
    ...(e.CATALOGUE_EARLY_REFRESH > 0 ? { earlyRefresh: e.CATALOGUE_EARLY_REFRESH } : {}),
    ...(e.CATALOGUE_TTL_SPREAD > 0 ? { ttlSpread: e.CATALOGUE_TTL_SPREAD } : {}),
  };
}

/**
 * Reads DATABASE_URL and CATALOGUE_SCHEMA (empty counts as unset). A bad value throws
 * E_CATALOGUE_CONFIG naming the variable; the value is not repeated, it may hold a password.
 */
export function loadCatalogueEnv(env: Env): CatalogueEnv {
  return parseEnv(
    CATALOGUE_ENV_SCHEMA,
    env,
    (message, cause) => new CatalogueError('E_CATALOGUE_CONFIG', message, { cause }),
  );
}

/**
 * Connects to DATABASE_URL, creates the catalogue's tables in CATALOGUE_SCHEMA if needed (it does
 * not seed) and reads the critical ids. The caller owns the connections: `close()` them.
 */
export async function createDefinitions(env: NodeJS.ProcessEnv): Promise<Definitions> {
  const config = loadCatalogueEnv(env);
  if (config.DATABASE_URL === undefined)
    throw new CatalogueError(
      'E_CATALOGUE_CONFIG',
      'DATABASE_URL: required (the PostgreSQL of the catalogue; `npm start` prints the URL of its embedded one)',
    );
  const db = connectPg(config.DATABASE_URL);
  try {
    await migrate(db, { schema: config.CATALOGUE_SCHEMA });
    const catalogue = createCatalogue({ db, schema: config.CATALOGUE_SCHEMA, read: readOptionsOf(config) });
    const critical = await catalogue.product.ids?.(undefined, CRITICAL_PRODUCTS);
    return Object.freeze({
      namespaces: catalogue.namespaces,
      critical: Object.freeze({ [catalogue.product.name]: critical ?? [] }),
      close: () => db.close(),
    });
  } catch (error) {
    await db.close();
    throw error;
  }
}

/**
 * The catalogue's namespaces as a producer needs them (names and id schemas), without connecting:
 * the CLI reads them to refuse a bad id before it enqueues anything.
 */
export function describeNamespaces(
  _env?: NodeJS.ProcessEnv,
): readonly { name: string; idSchema: z.ZodType<string> }[] {
  return [PRODUCT_IDS];
}
