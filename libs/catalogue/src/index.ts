export { type Catalogue, type CatalogueOptions, createCatalogue } from './catalogue.js';
export { connectPg, type Db, type PgOptions } from './db.js';
export {
  CATALOGUE_ENV_SCHEMA,
  type CatalogueEnv,
  CRITICAL_PRODUCTS,
  createDefinitions,
  type Definitions,
  describeNamespaces,
  loadCatalogueEnv,
  readOptionsOf,
} from './definitions.js';
export { CATALOGUE_ERROR_CODES, CatalogueError, type CatalogueErrorCode, dbError } from './errors.js';
export { migrate, SEED_CATEGORIES, type SeedOptions, seed } from './migrate.js';
export {
  type CategorySummary,
  categorySchema,
  categorySummary,
  DEFAULT_PRODUCT_READ,
  MAX_IDS_PAGE,
  PRODUCT_IDS,
  type Product,
  type ProductPatch,
  type ProductReadOptions,
  type ProductUpdate,
  productIdSchema,
  productPatchSchema,
  productSchema,
  updateProduct,
} from './product.js';
export { DEFAULT_SCHEMA, schemaNameSchema } from './sql.js';
