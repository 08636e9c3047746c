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
  /**
   * Reads one value from the source of truth; `undefined` means "does not exist" (not cached).
   * `ctx` (given by the read-through, absent for direct calls) sets this entry's TTL and tags from
   * the value it loaded (adaptive TTL).
   */
  readonly load: (id: string, ctx?: LoadContext) => Promise<T | undefined>;
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
  /**
   * How many ids `ids` enumerates (read once when a full warm starts; an estimate will do): the
   * warm's progress then has a total and a percentage. Without it, the progress counts only.
   */
  readonly count?: () => Promise<number>;
  /**
   * Conversions of entries written by older versions, keyed by the version they convert from: a
   * migration job (`cachefleet migrate <ns> --to <version>`) turns each `version - 1` entry into
   * this version's shape with `migrations[version - 1]` (the result is checked by `schema`; a throw
   * or a refusal leaves the entry to expire). Without one, the job reloads the entries it finds from
   * `loadMany`. See docs/design-lifecycle.md.
   */
  readonly migrations?: Readonly<Record<number, (old: unknown) => T | undefined>>;
  /** Ids accepted by this namespace. Default: 1–256 printable characters without glob metacharacters. */
  readonly idSchema?: z.ZodType<string>;
  /**
   * Values are deep-frozen when they enter the cache and handed out as `DeepReadonly<T>`: a caller
   * cannot change what the next reader gets. Default true (docs/design-read-path.md).
   */
  readonly immutable?: boolean;
  /**
   * Fail-safe: entries are kept this long past their TTL (in L2 and L1), and served, marked stale,
   * when the loader fails or times out; then the loader is left alone for that key for
   * `backoffSeconds` (default 10). Invalidated entries are never served. Default: none.
   */
  readonly grace?: { readonly seconds: number; readonly backoffSeconds?: number };
  /**
   * Loader time limits, from the start of the read: at `softMs` a caller with a stale copy (grace)
   * gets it while the load goes on and fills the cache; at `hardMs` it gets its stale copy or
   * E_CACHE_LOADER_TIMEOUT. Default: none (wait for the loader).
   */
  readonly timeouts?: { readonly softMs?: number; readonly hardMs?: number };
  /**
   * A hit in the last `earlyRefresh` fraction of the entry's L2 TTL (e.g. 0.2) starts one background
   * refresh per key in the fleet (the load lock, not waited for). Default: none.
   */
  readonly earlyRefresh?: number;
  /** Each entry's L1 and L2 TTLs are multiplied by a uniform 1 ± ttlSpread (0–0.5). Default 0. */
  readonly ttlSpread?: number;
  /**
   * Tables of the source of truth whose committed changes invalidate this namespace (change
   * capture, `@cachefleet/capture`): how a changed row, old and new, maps to an id and to the tags
   * the entry built from it carries. Data only; the cache itself does not read it.
   */
  readonly sources?: readonly SourceTable[];
}

/** What a loader may tell the cache about the value it loaded (adaptive TTL). */
export interface LoadContext {
  /** This entry's TTLs, seconds (either tier; the other keeps the namespace's). */
  setTtl(ttl: { readonly l1?: number; readonly l2?: number }): void;
  /** This entry's tags, instead of the namespace's `tags(value)`. */
  setTags(tags: readonly string[]): void;
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
  readonly immutable: boolean;
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
  grace: z
    .object({ seconds: z.number().positive(), backoffSeconds: z.number().positive().optional() })
    .optional(),
  timeouts: z
    .object({
      softMs: z.number().int().positive().optional(),
      hardMs: z.number().int().positive().optional(),
    })
    .refine((t) => t.softMs === undefined || t.hardMs === undefined || t.softMs <= t.hardMs, {
      message: 'softMs must not exceed hardMs',
    })
    .optional(),
  earlyRefresh: z.number().gt(0).lt(1).optional(),
  ttlSpread: z.number().min(0).max(0.5).optional(),
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
  for (const from of Object.keys(definition.migrations ?? {})) {
    const v = Number(from);
    if (!Number.isInteger(v) || v < 1 || v >= definition.version) {
      throw new CacheError(
        'E_CACHE_INVALID_NAMESPACE',
        `defineNamespace(${JSON.stringify(definition.name)}): migrations.${from}: a version below ${definition.version} to convert from`,
      );
    }
  }
  const idSchema = definition.idSchema;
  return Object.freeze({
    ...definition,
    idSchema: idSchema ?? DEFAULT_ID_SCHEMA,
    immutable: definition.immutable ?? true,
    isValidId: idSchema ? (id: string) => idSchema.safeParse(id).success : isDefaultId,
    index: nextIndex++,
    keyBase: entryBase(definition.name, definition.version),
  });
}
