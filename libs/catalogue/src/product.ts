import { defineNamespace, type Namespace, type NamespaceDefinition } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import type { Db } from './db.js';
import { dbError, parseInput } from './errors.js';
import { productsTable } from './sql.js';

/** Positive integers without leading zeros, at most 18 digits: every one fits a bigint. */
export const productIdSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,17}$/, 'product ids are positive integers without leading zeros (max 18 digits)');

/** The product namespace's name and id schema: what a producer checks a payload against (no I/O). */
export const PRODUCT_IDS = { name: 'product', idSchema: productIdSchema } as const;

/** A product row as JSON: what the cache stores and every pod reads. */
export const productSchema = z.object({
  id: productIdSchema,
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  price_cents: z.int32().min(0),
  stock: z.int32().min(0),
  /** ISO 8601 in UTC with milliseconds, as `Date#toISOString` writes it. */
  updated_at: z.iso.datetime(),
});
export type Product = z.infer<typeof productSchema>;

/**
 * The select list of a product. Ids and timestamps become text in SQL, so a row is already the
 * JSON value whatever the driver does with bigint and timestamptz (pg and PGlite differ).
 */
const PRODUCT_COLUMNS = `id::text AS id, sku, name, category, price_cents, stock,
  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at`;

/** Largest page `ids` returns: a warm batch is a few hundred to a few thousand. */
export const MAX_IDS_PAGE = 100_000;
const limitSchema = z.number().int().min(1).max(MAX_IDS_PAGE);

/**
 * How the product namespace reads (issue 11): TTLs and the read-path options of `defineNamespace`.
 * The sample serves stale products for `grace` when the database fails or is slower than the soft
 * timeout (docs/design-read-path.md).
 */
export interface ProductReadOptions {
  readonly ttl: { readonly l1: number; readonly l2: number };
  readonly grace?: NamespaceDefinition<Product>['grace'];
  readonly timeouts?: NamespaceDefinition<Product>['timeouts'];
  readonly earlyRefresh?: number;
  readonly ttlSpread?: number;
}

/** The defaults of CATALOGUE_* settings (definitions.ts): an hour in Redis, 6 hours of grace. */
export const DEFAULT_PRODUCT_READ: ProductReadOptions = {
  ttl: { l1: 60, l2: 3600 },
  grace: { seconds: 6 * 3600, backoffSeconds: 5 },
  timeouts: { softMs: 250, hardMs: 3000 },
  earlyRefresh: 0.2,
  ttlSpread: 0.1,
};

/** The product namespace over `"<schema>".products`. Its SQL is built once, here. */
export function defineProduct(
  db: Db,
  schema: string,
  read: ProductReadOptions = DEFAULT_PRODUCT_READ,
): Namespace<Product> {
  const table = productsTable(schema);
  const byId = `SELECT ${PRODUCT_COLUMNS} FROM ${table} WHERE id = $1::bigint`;
  const byIds = `SELECT ${PRODUCT_COLUMNS} FROM ${table} WHERE id = ANY($1::bigint[])`;
  // ORDER BY p.id, not id: a bare name means the output column first, and that is the text
  // `id::text` ('108' sorts before '11'); a qualified name is the bigint column.
  const first = `SELECT p.id::text AS id FROM ${table} AS p ORDER BY p.id LIMIT $1`;
  const next = `SELECT p.id::text AS id FROM ${table} AS p WHERE p.id > $1::bigint ORDER BY p.id LIMIT $2`;
  const countAll = `SELECT count(*)::int AS n FROM ${table}`;
  const isId = (id: string) => productIdSchema.safeParse(id).success;

  return defineNamespace<Product>({
    name: PRODUCT_IDS.name,
    version: 1,
    ttl: read.ttl,
    ...(read.grace ? { grace: read.grace } : {}),
    ...(read.timeouts ? { timeouts: read.timeouts } : {}),
    ...(read.earlyRefresh ? { earlyRefresh: read.earlyRefresh } : {}),
    ...(read.ttlSpread ? { ttlSpread: read.ttlSpread } : {}),
    schema: productSchema,
    idSchema: PRODUCT_IDS.idSchema,
    // The cache checks ids before it loads; these checks keep direct callers (a warm given raw
    // keys) from turning a bad id into a SQL cast error. Such an id names no product.
    async load(id) {
      if (!isId(id)) return undefined;
      const { rows } = await db.query<Product>(byId, [id]);
      return rows[0];
    },
    async loadMany(ids) {
      const wanted = ids.filter(isId);
      const found = new Map<string, Product>();
      if (wanted.length === 0) return found;
      const { rows } = await db.query<Product>(byIds, [wanted]);
      for (const row of rows) found.set(row.id, row);
      return found;
    },
    async count() {
      const { rows } = await db.query<{ n: number }>(countAll);
      return rows[0]?.n ?? 0;
    },
    async ids(after, limit) {
      const n = parseInput(limitSchema, limit, 'limit');
      const { rows } =
        after === undefined
          ? await db.query<{ id: string }>(first, [n])
          : await db.query<{ id: string }>(next, [parseInput(productIdSchema, after, 'after'), n]);
      return rows.map((r) => r.id);
    },
    tags: (p) => [`category:${p.category}`],
    // Change capture: a committed change of a row, by any writer, invalidates its entry.
    sources: [{ table: `${schema}.products`, id: '{id}', tags: ['category:{category}'] }],
  });
}

/** Text without NUL: PostgreSQL refuses U+0000 in text (22021). */
const text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL (\\u0000)');

/** A category name as the products table holds it (1–128 characters, no NUL). */
export const categorySchema = text(1, 128);

/**
 * The columns `updateProduct` may change; `id` is the key and `updated_at` is set by the database.
 * Lengths: a sku is a unique key (PostgreSQL refuses a btree entry past ~2.7 kB, 54000); a category
 * becomes the tag `category:<c>`, and tags travel in events and payloads of at most 256 characters.
 */
export const productPatchSchema = z
  .strictObject({
    sku: text(1, 64),
    name: text(0, 256),
    category: categorySchema,
    price_cents: z.int32().min(0),
    stock: z.int32().min(0),
  })
  .partial()
  // A patch of nothing would still move updated_at: refused.
  .refine((p) => Object.values(p).some((v) => v !== undefined), {
    message: 'give at least one field to change (sku, name, category, price_cents, stock)',
  });
export type ProductPatch = z.infer<typeof productPatchSchema>;

/** The unique constraints of the products table (PostgreSQL's default names) → the patch field. */
const UNIQUE_FIELDS = { products_sku_key: 'sku' } as const;

/** A product after an update, and the category it had before (its old category's views are stale too). */
export interface ProductUpdate {
  readonly product: Product;
  readonly previousCategory: string;
}

/**
 * Writes to the source of truth and returns the new row with the category it replaced (undefined
 * when there is no such product), read in the same statement under the row's lock. The cache is
 * not told: the caller invalidates, e.g. `cache.delete(product, id)`.
 */
export async function updateProduct(
  db: Db,
  schema: string,
  id: string,
  patch: ProductPatch,
): Promise<ProductUpdate | undefined> {
  const table = productsTable(schema);
  parseInput(productIdSchema, id, 'id');
  const p = parseInput(productPatchSchema, patch, 'patch');
  // One fixed statement: an absent field keeps its column (COALESCE), so no SQL is built from keys.
  const { rows } = await db
    .query<Product & { previous_category: string }>(
      `UPDATE ${table} SET
  sku = COALESCE($2, sku), name = COALESCE($3, name), category = COALESCE($4, category),
  price_cents = COALESCE($5, price_cents), stock = COALESCE($6, stock), updated_at = now()
FROM (SELECT id AS old_id, category AS previous_category FROM ${table} WHERE id = $1::bigint FOR UPDATE) AS old
WHERE id = old.old_id
RETURNING ${PRODUCT_COLUMNS}, old.previous_category`,
      [id, p.sku ?? null, p.name ?? null, p.category ?? null, p.price_cents ?? null, p.stock ?? null],
    )
    .catch((error: unknown) => {
      throw dbError(error, 'patch', UNIQUE_FIELDS);
    });
  const row = rows[0];
  if (row === undefined) return undefined;
  const { previous_category: previousCategory, ...product } = row;
  return { product, previousCategory };
}

/** What the sample's category page shows: how many products, their price range, how many in stock. */
export interface CategorySummary {
  readonly category: string;
  readonly products: number;
  readonly inStock: number;
  readonly minPriceCents: number | null;
  readonly maxPriceCents: number | null;
}

/** One category's summary, computed by the source of truth (an aggregate: a view worth caching). */
export async function categorySummary(db: Db, schema: string, category: string): Promise<CategorySummary> {
  const table = productsTable(schema);
  parseInput(categorySchema, category, 'category');
  const { rows } = await db.query<{
    products: string;
    in_stock: string;
    min: number | null;
    max: number | null;
  }>(
    `SELECT count(*)::text AS products, count(*) FILTER (WHERE stock > 0)::text AS in_stock,
  min(price_cents) AS min, max(price_cents) AS max
FROM ${table} WHERE category = $1`,
    [category],
  );
  const row = rows[0];
  return {
    category,
    products: Number(row?.products ?? 0),
    inStock: Number(row?.in_stock ?? 0),
    minPriceCents: row?.min ?? null,
    maxPriceCents: row?.max ?? null,
  };
}
