import type { Namespace } from '@cachefleet/tiered-cache';
import type { Db } from './db.js';
import { defineProduct, type Product, type ProductReadOptions } from './product.js';
import { DEFAULT_SCHEMA } from './sql.js';

export interface CatalogueOptions {
  readonly db: Db;
  /** Postgres schema holding the tables; default `catalogue`. */
  readonly schema?: string;
  /** TTLs, grace, timeouts of the product namespace; default DEFAULT_PRODUCT_READ (or `readOptionsOf(env)`). */
  readonly read?: ProductReadOptions;
}

export interface Catalogue {
  readonly schema: string;
  readonly product: Namespace<Product>;
  /** Every namespace of the catalogue, for code that handles them alike (warm, invalidate, register). */
  readonly namespaces: readonly Namespace<unknown>[];
}

/**
 * The catalogue's namespaces over one database and schema. Cheap and free of I/O (run `migrate`
 * first): several catalogues may live in one process, each namespace gets its own index.
 */
export function createCatalogue(options: CatalogueOptions): Catalogue {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const product = defineProduct(options.db, schema, options.read);
  return Object.freeze({ schema, product, namespaces: Object.freeze([product]) });
}
