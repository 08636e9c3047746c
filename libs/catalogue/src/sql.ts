import { z } from 'zod';
import { parseInput } from './errors.js';

export const DEFAULT_SCHEMA = 'catalogue';

/**
 * The only text ever interpolated into SQL is a schema name, so it is held to a plain lower-case
 * identifier and quoted as well. `pg_` is refused here rather than by CREATE SCHEMA, with a message
 * that says why.
 */
export const schemaNameSchema = z
  .string()
  .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must match ^[a-z_][a-z0-9_]{0,62}$')
  .refine((name) => !name.startsWith('pg_'), 'must not start with pg_ (reserved for system schemas)');

/** `"schema"`, after checking the name. */
export function quoteSchema(schema: string): string {
  return `"${parseInput(schemaNameSchema, schema, `schema ${JSON.stringify(schema)}`)}"`;
}

/** `"schema".products`, after checking the name. */
export function productsTable(schema: string): string {
  return `${quoteSchema(schema)}.products`;
}
