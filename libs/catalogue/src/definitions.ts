import { type Env, parseEnv } from '@cachefleet/config';
import type { Namespace } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { createCatalogue } from './catalogue.js';
import { connectPg } from './db.js';
import { CatalogueError } from './errors.js';
import { migrate } from './migrate.js';
import { PRODUCT_IDS } from './product.js';
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

/**
 * The development database (trust auth). The user is spelled out: without one, pg sends $USER, and
 * with $USER unset (as in some CI and service environments) the server refuses the startup packet.
 */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
/** How many products (the lowest ids) a critical warm loads. */
export const CRITICAL_PRODUCTS = 100;

const envSchema = z.object({
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .default(DEFAULT_DATABASE_URL),
  CATALOGUE_SCHEMA: schemaNameSchema.default(DEFAULT_SCHEMA),
});
export type CatalogueEnv = z.output<typeof envSchema>;

/**
 * Reads DATABASE_URL and CATALOGUE_SCHEMA (empty counts as unset). A bad value throws
 * E_CATALOGUE_CONFIG naming the variable; the value is not repeated, it may hold a password.
 */
export function loadCatalogueEnv(env: Env): CatalogueEnv {
  return parseEnv(
    envSchema,
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
  const db = connectPg(config.DATABASE_URL);
  try {
    await migrate(db, { schema: config.CATALOGUE_SCHEMA });
    const catalogue = createCatalogue({ db, schema: config.CATALOGUE_SCHEMA });
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
