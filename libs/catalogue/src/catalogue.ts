import type { Namespace } from '@cachefleet/tiered-cache';
import type { Db } from './db.js';
import { defineProduct, type Product } from './product.js';
import { DEFAULT_SCHEMA } from './sql.js';

export interface CatalogueOptions {
  readonly db: Db;
  /** Postgres schema holding the tables; default `catalogue`. */
  readonly schema?: string;
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
  const product = defineProduct(options.db, schema);
  return Object.freeze({ schema, product, namespaces: Object.freeze([erase(product)]) });
}

/**
 * A namespace in a list of namespaces of any type. `tags` takes a value, so Namespace<T> is not a
 * Namespace<unknown> to the compiler; it is safe here because a namespace is only ever handed the
 * values its own loader produced and its own schema accepted.
 */
function erase<T>(ns: Namespace<T>): Namespace<unknown> {
  return ns as Namespace<unknown>;
}
