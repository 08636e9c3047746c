import { z } from 'zod';
import type { Db } from './db.js';
import { parseInput } from './errors.js';
import { DEFAULT_SCHEMA, productsTable, quoteSchema } from './sql.js';

/**
 * Creates the schema, the `products` table and its index if they do not exist. One DO block, so it
 * is one statement and one transaction on whichever pooled connection runs it: its advisory lock
 * serialises workers that start together (concurrent CREATE … IF NOT EXISTS can otherwise fail on
 * a catalog unique index).
 */
export async function migrate(db: Db, options: { readonly schema?: string } = {}): Promise<void> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const table = productsTable(schema);
  await db.query(`DO $migrate$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('cachefleet.catalogue.migrate'));
  CREATE SCHEMA IF NOT EXISTS ${quoteSchema(schema)};
  CREATE TABLE IF NOT EXISTS ${table} (
    id bigint PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    name text NOT NULL,
    category text NOT NULL,
    price_cents integer NOT NULL,
    stock integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX IF NOT EXISTS products_category_idx ON ${table} (category);
END
$migrate$`);
}

/** Distinct categories of seeded products (`cat-0` … `cat-19`): one tag covers 5 % of them. */
export const SEED_CATEGORIES = 20;

export interface SeedOptions {
  readonly schema?: string;
  /** Products 1..count are inserted. */
  readonly count: number;
  /** Rows per INSERT statement; default 50,000. */
  readonly batch?: number;
}

const countSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const batchSchema = z.number().int().min(1);

/**
 * Inserts products 1..count, the same rows every time (every column is a function of the id), one
 * `INSERT … SELECT generate_series` per batch. Rows that exist are left alone (ON CONFLICT DO
 * NOTHING), so seeding again is harmless and keeps updates. Returns how many rows were new.
 */
export async function seed(db: Db, options: SeedOptions): Promise<{ inserted: number }> {
  const table = productsTable(options.schema ?? DEFAULT_SCHEMA);
  const count = parseInput(countSchema, options.count, 'count');
  const batch = parseInput(batchSchema, options.batch ?? 50_000, 'batch');
  const sql = `WITH ins AS (
  INSERT INTO ${table} (id, sku, name, category, price_cents, stock)
  SELECT g, 'SKU-' || lpad(g::text, 8, '0'), 'Product ' || g, 'cat-' || (g % $3),
         (g * 7919 % 100000)::int + 99, (g * 31 % 500)::int
  FROM generate_series($1::bigint, $2::bigint) AS g
  ON CONFLICT DO NOTHING
  RETURNING 1
)
SELECT count(*)::int AS n FROM ins`;
  let inserted = 0;
  for (let from = 1; from <= count; from += batch) {
    const to = Math.min(count, from + batch - 1);
    const { rows } = await db.query<{ n: number }>(sql, [from, to, SEED_CATEGORIES]);
    inserted += rows[0]?.n ?? 0;
  }
  return { inserted };
}
