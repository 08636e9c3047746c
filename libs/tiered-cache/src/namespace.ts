import { issueMessage } from '@cachefleet/config';
import { entryBase } from '@cachefleet/redis';
import { z } from 'zod';
import { CacheError } from './errors.js';

/**
 * One kind of cached data, described once and imported by API pods and workers alike:
 * they read, warm, migrate and restore through the same definition.
 */
export interface NamespaceDefinition<T> {
  /** Lower-case name, part of every key: `[a-z][a-z0-9_-]*`. */
  readonly name: string;
  /** Bump when the value's shape changes: old entries are simply never read again. */
  readonly version: number;
  /** Seconds each tier keeps an entry. */
  readonly ttl: { readonly l1: number; readonly l2: number };
  /** Checked on every write and every loader result. */
  readonly schema: z.ZodType<T>;
  /** Reads one value from the source of truth; `undefined` means "does not exist" (not cached). */
  readonly load: (id: string) => Promise<T | undefined>;
  /** Reads many at once; ids absent from the map do not exist. Falls back to `load` per id. */
  readonly loadMany?: (ids: readonly string[]) => Promise<ReadonlyMap<string, T>>;
  /**
   * Tags of an entry, for `invalidateTags`. A method (not a function property), so that a
   * `Namespace<Product>` can sit in a `Namespace<unknown>[]` list of definitions.
   */
  tags?(value: T): readonly string[];
  /**
   * Enumerates the namespace's ids for a full warm, in ascending order: up to `limit` ids greater
   * than `after` (all from the start when `after` is undefined); fewer than `limit` means the end.
   * Keyset paging makes a warm resumable: its cursor is the last id it finished.
   */
  readonly ids?: (after: string | undefined, limit: number) => Promise<readonly string[]>;
  /** Ids accepted by this namespace. Default: 1–256 printable characters without glob metacharacters. */
  readonly idSchema?: z.ZodType<string>;
  /**
   * Tables of the source of truth whose committed changes invalidate this namespace (change
   * capture, `@cachefleet/capture`): how a changed row, old and new, maps to an id and to the tags
   * the entry built from it carries. Data only; the cache itself does not read it.
   */
  readonly sources?: readonly SourceTable[];
}

/**
 * One source table of a namespace. Templates are text with `{column}` placeholders, e.g.
 * `{ table: 'catalogue.products', id: '{id}', tags: ['category:{category}'] }`.
 */
export interface SourceTable {
  /** `schema.table`, lower-case identifiers. */
  readonly table: string;
  /** The id of the entry a row feeds. */
  readonly id: string;
  /** What `tags(value)` gives for the value built from the row: used to coalesce bursts. */
  readonly tags?: readonly string[];
}

export interface Namespace<T> extends NamespaceDefinition<T> {
  /** Small integer unique per process: the cache indexes its per-namespace state by it. */
  readonly index: number;
  /** `name:v<version>:`, built once so a key is one concatenation. */
  readonly keyBase: string;
  readonly idSchema: z.ZodType<string>;
  /** The id check the read path runs on a miss: a precompiled test for the default schema. */
  readonly isValidId: (id: string) => boolean;
}

/** Glob metacharacters are refused so that an id can never widen a pattern invalidation. */
export const DEFAULT_ID_SCHEMA = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s*?[\]\\{}]+$/, 'ids must not contain white space or any of * ? [ ] \\ { }');

const IDENT = '[a-z_][a-z0-9_]{0,62}';
/** Literal text and `{column}` placeholders, at least one placeholder. */
const templateSchema = z
  .string()
  .max(256)
  .regex(new RegExp(`^([^{}]|\\{${IDENT}\\})*\\{${IDENT}\\}([^{}]|\\{${IDENT}\\})*$`), {
    message: 'a template is text with at least one {column} placeholder (lower-case column names)',
  });
const sourceSchema = z.strictObject({
  table: z.string().regex(new RegExp(`^${IDENT}\\.${IDENT}$`), 'table must be schema.table (lower case)'),
  id: templateSchema,
  tags: z.array(templateSchema).max(16).optional(),
});

const definitionSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'name must match [a-z][a-z0-9_-]{0,63}'),
  version: z.number().int().min(1),
  ttl: z.object({ l1: z.number().positive(), l2: z.number().positive() }),
  sources: z.array(sourceSchema).max(32).optional(),
});

const FORBIDDEN_ID_CHARS = /[\s*?[\]\\{}]/;
/** Same rule as DEFAULT_ID_SCHEMA without a zod call: it runs on every miss. */
function isDefaultId(id: string): boolean {
  return typeof id === 'string' && id.length >= 1 && id.length <= 256 && !FORBIDDEN_ID_CHARS.test(id);
}

let nextIndex = 0;

export function defineNamespace<T>(definition: NamespaceDefinition<T>): Namespace<T> {
  const parsed = definitionSchema.safeParse(definition);
  if (!parsed.success) {
    throw new CacheError(
      'E_CACHE_INVALID_NAMESPACE',
      `defineNamespace(${JSON.stringify(definition.name)}): ${issueMessage(parsed.error)}`,
      { cause: parsed.error },
    );
  }
  const idSchema = definition.idSchema;
  return Object.freeze({
    ...definition,
    idSchema: idSchema ?? DEFAULT_ID_SCHEMA,
    isValidId: idSchema ? (id: string) => idSchema.safeParse(id).success : isDefaultId,
    index: nextIndex++,
    keyBase: entryBase(definition.name, definition.version),
  });
}
