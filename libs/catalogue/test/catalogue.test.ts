import { randomBytes } from 'node:crypto';
import { testDatabaseUrl } from '@cachefleet/test';
import { type Cache, createCache } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type Catalogue,
  CatalogueError,
  categorySummary,
  connectPg,
  createCatalogue,
  createDefinitions,
  type Db,
  DEFAULT_PRODUCT_READ,
  dbError,
  describeNamespaces,
  loadCatalogueEnv,
  migrate,
  readOptionsOf,
  seed,
  updateProduct,
} from '../src/index.js';

// The test run's PostgreSQL (test/setup starts a private one). Each file works in a schema of its
// own and drops it, so files never see each other's rows.
const DATABASE_URL = testDatabaseUrl();
const SCHEMA = `t_${randomBytes(6).toString('hex')}`;
const COUNT = 10_000;

let db: Db;
let catalogue: Catalogue;

beforeAll(async () => {
  db = connectPg(DATABASE_URL);
  await migrate(db, { schema: SCHEMA });
  catalogue = createCatalogue({ db, schema: SCHEMA });
});

afterAll(async () => {
  await db?.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await db?.close();
});

async function rowCount(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${SCHEMA}".products`);
  return rows[0]?.n ?? -1;
}

describe('migrate and seed', () => {
  it('seeds products 1..count, and again without adding any (idempotent)', async () => {
    expect(await seed(db, { schema: SCHEMA, count: COUNT, batch: 3_000 })).toEqual({ inserted: COUNT });
    expect(await rowCount()).toBe(COUNT);
    await migrate(db, { schema: SCHEMA });
    expect(await seed(db, { schema: SCHEMA, count: COUNT })).toEqual({ inserted: 0 });
    expect(await rowCount()).toBe(COUNT);
  });

  it('is deterministic: every column is a function of the id', async () => {
    const p = await catalogue.product.load('42');
    expect(p).toMatchObject({
      id: '42',
      sku: 'SKU-00000042',
      name: 'Product 42',
      category: 'cat-2',
      price_cents: ((42 * 7919) % 100000) + 99,
      stock: (42 * 31) % 500,
    });
  });

  it('migrates concurrently without tripping over itself', async () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    try {
      await Promise.all(Array.from({ length: 4 }, () => migrate(db, { schema })));
      expect(await seed(db, { schema, count: 10 })).toEqual({ inserted: 10 });
    } finally {
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it('refuses schema names that are not plain identifiers, before any SQL', async () => {
    for (const bad of [
      'Catalogue',
      'x"; DROP TABLE y; --',
      '1abc',
      'a-b',
      'pg_catalog',
      '',
      'a'.repeat(64),
    ]) {
      await expect(migrate(db, { schema: bad })).rejects.toMatchObject({ code: 'E_CATALOGUE_INVALID_INPUT' });
      expect(() => createCatalogue({ db, schema: bad })).toThrow(CatalogueError);
    }
  });
});

describe('connectPg', () => {
  it('survives the server dropping its idle connections: reported, not thrown; the next query reconnects', async () => {
    const errors: Error[] = [];
    const own = connectPg(DATABASE_URL, { max: 3, onError: (e) => errors.push(e) });
    try {
      const held = await Promise.all(
        [1, 2, 3].map(() => own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_sleep(0.05)')),
      );
      const pids = [...new Set(held.map((r) => r.rows[0]?.pid))];
      expect(pids).toHaveLength(3);
      // Only this pool's connections: other test files may be using the same database.
      await db.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      await vi.waitFor(() => expect(errors).toHaveLength(3));
      expect(await own.query('SELECT 1 AS x')).toEqual({ rows: [{ x: 1 }] });
    } finally {
      await own.close();
      await own.close();
    }
  });
});

describe('the product namespace', () => {
  it('loads one row as JSON that its own schema accepts', async () => {
    const p = await catalogue.product.load('1');
    expect(p?.id).toBe('1');
    expect(p?.updated_at).toBe(new Date(p?.updated_at ?? 0).toISOString());
    expect(catalogue.product.schema.safeParse(p).success).toBe(true);
  });

  it('loads a missing id as undefined', async () => {
    expect(await catalogue.product.load(String(COUNT + 1))).toBeUndefined();
    expect(await catalogue.product.load('999999999999999999')).toBeUndefined();
  });

  it('loadMany reads many in one query; absent ids are not in the map', async () => {
    const ids = ['3', '1', '9999', String(COUNT + 5), '3'];
    const found = await catalogue.product.loadMany?.(ids);
    expect([...(found?.keys() ?? [])].sort()).toEqual(['1', '3', '9999']);
    expect(found?.get('9999')).toEqual(await catalogue.product.load('9999'));
    expect((await catalogue.product.loadMany?.([]))?.size).toBe(0);
  });

  it('pages every id in ascending numeric order, none repeated', async () => {
    const ids = catalogue.product.ids;
    if (!ids) throw new Error('product namespace must enumerate its ids');
    const all: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await ids(after, 1000);
      all.push(...page);
      if (page.length < 1000) break;
      after = page[page.length - 1];
    }
    expect(all).toHaveLength(COUNT);
    expect(new Set(all).size).toBe(COUNT);
    // Numeric, not text order: '10' after '9'.
    expect(all.map(Number)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
    expect(await ids(String(COUNT), 10)).toEqual([]);
    await expect(ids('abc', 10)).rejects.toMatchObject({ code: 'E_CATALOGUE_INVALID_INPUT' });
    await expect(ids(undefined, 0)).rejects.toMatchObject({ code: 'E_CATALOGUE_INVALID_INPUT' });
  });

  it('accepts only positive integer ids', () => {
    const { idSchema, isValidId } = catalogue.product;
    for (const bad of ['0', '-1', 'abc', '1*', '01', '1.5', ' 1', '1234567890123456789', '']) {
      expect(idSchema.safeParse(bad).success, bad).toBe(false);
      expect(isValidId(bad), bad).toBe(false);
    }
    for (const good of ['1', '42', '999999999999999999']) expect(isValidId(good), good).toBe(true);
  });

  it('tags a product with its category', async () => {
    const p = await catalogue.product.load('7');
    expect(p && catalogue.product.tags?.(p)).toEqual(['category:cat-7']);
  });

  it('updateProduct writes the source of truth and returns the new row with the category it replaced', async () => {
    const before = await catalogue.product.load('100');
    const after = await updateProduct(db, SCHEMA, '100', { name: 'Renamed', price_cents: 1234 });
    expect(after?.product).toMatchObject({ id: '100', name: 'Renamed', price_cents: 1234, sku: before?.sku });
    expect(after?.previousCategory).toBe(before?.category);
    expect(await catalogue.product.load('100')).toEqual(after?.product);
    const moved = await updateProduct(db, SCHEMA, '100', { category: 'moved-here' });
    expect(moved).toMatchObject({ product: { category: 'moved-here' }, previousCategory: before?.category });
    const summary = await categorySummary(db, SCHEMA, 'moved-here');
    expect(summary).toEqual({
      category: 'moved-here',
      products: 1,
      inStock: (after?.product.stock ?? 0) > 0 ? 1 : 0,
      minPriceCents: 1234,
      maxPriceCents: 1234,
    });
    expect(await categorySummary(db, SCHEMA, 'no-such-category')).toEqual({
      category: 'no-such-category',
      products: 0,
      inStock: 0,
      minPriceCents: null,
      maxPriceCents: null,
    });
    await expect(categorySummary(db, SCHEMA, 'a\u0000b')).rejects.toMatchObject({
      code: 'E_CATALOGUE_INVALID_INPUT',
      message: expect.stringContaining('category'),
    });
    await updateProduct(db, SCHEMA, '100', { category: before?.category ?? '' });
    expect(await updateProduct(db, SCHEMA, String(COUNT + 1), { stock: 1 })).toBeUndefined();
    const bad = { price: 1 } as unknown as Parameters<typeof updateProduct>[3];
    await expect(updateProduct(db, SCHEMA, '100', bad)).rejects.toMatchObject({
      code: 'E_CATALOGUE_INVALID_INPUT',
    });
  });

  // BUG (issue 9.2): a duplicate sku reached PostgreSQL and came back as its own error (23505 and
  // the constraint name), which the API answered as a 500; a NUL in a text field likewise (22021).
  it('updateProduct refuses a sku another product has (E_CATALOGUE_CONFLICT naming sku), and NULs before SQL', async () => {
    const taken = await catalogue.product.load('101');
    const conflict = await updateProduct(db, SCHEMA, '102', { sku: taken?.sku ?? '' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(conflict).toBeInstanceOf(CatalogueError);
    expect(conflict).toMatchObject({
      code: 'E_CATALOGUE_CONFLICT',
      message: expect.stringMatching(/^sku: /),
    });
    expect(String((conflict as Error).message)).not.toMatch(/23505|products_sku_key|duplicate key/);
    for (const field of ['sku', 'name', 'category'] as const) {
      await expect(updateProduct(db, SCHEMA, '102', { [field]: 'a\u0000b' })).rejects.toMatchObject({
        code: 'E_CATALOGUE_INVALID_INPUT',
        message: expect.stringContaining(`patch.${field}`),
      });
    }
    expect((await catalogue.product.load('102'))?.sku).toBe('SKU-00000102');
  });

  it('dbError: a data exception is invalid input, any other database error is passed on as is', async () => {
    const nul = await db.query('SELECT $1::text', ['a\u0000b']).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(dbError(nul, 'patch')).toMatchObject({ code: 'E_CATALOGUE_INVALID_INPUT' });
    expect(String(dbError(nul, 'patch'))).not.toMatch(/22021|byte sequence/);
    const missing = await db.query('SELECT * FROM no_such_table').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(dbError(missing, 'patch')).toBe(missing);
  });

  it('several catalogues live in one process, each over its own schema', () => {
    const other = createCatalogue({ db, schema: 'catalogue' });
    expect(other.product.index).not.toBe(catalogue.product.index);
    expect(other.product.keyBase).toBe(catalogue.product.keyBase);
    expect(catalogue.namespaces).toEqual([catalogue.product]);
  });
});

describe('through the real cache', () => {
  let cache: Cache;
  beforeAll(async () => {
    cache = createCache({ impl: 'memory' });
    await cache.start();
  });
  afterAll(() => cache.close());

  it('reads a product by read-through, then from L1, and sees an update once invalidated', async () => {
    const { product } = catalogue;
    const first = await cache.get(product, '42');
    expect(first).toEqual({ ok: true, value: await product.load('42') });
    expect(await cache.get(product, '42')).toEqual(first);
    const stats = cache.stats().find((s) => s.namespace === 'product');
    expect(stats).toMatchObject({ loads: 1, l1: { hits: 1 } });

    const updated = await updateProduct(db, SCHEMA, '42', { stock: 0 });
    expect(await cache.get(product, '42')).toEqual(first); // the cache does not know yet
    await cache.delete(product, '42');
    expect(await cache.get(product, '42')).toEqual({ ok: true, value: updated?.product });
  });

  it('getMany goes through loadMany; a bad id is refused by the cache, not the database', async () => {
    const r = await cache.getMany(catalogue.product, ['5', '6', String(COUNT + 1)]);
    expect(r.ok && r.value.map((p) => p?.id)).toEqual(['5', '6', undefined]);
    const bad = await cache.get(catalogue.product, '0');
    expect(bad.ok || bad.error.code).toBe('E_CACHE_INVALID_ID');
  });
});

describe('createDefinitions', () => {
  it('connects, migrates and names the critical ids', async () => {
    const defs = await createDefinitions({ DATABASE_URL, CATALOGUE_SCHEMA: SCHEMA });
    try {
      expect(defs.namespaces.map((n) => n.name)).toEqual(['product']);
      expect(defs.critical.product).toEqual(Array.from({ length: 100 }, (_, i) => String(i + 1)));
      // describeNamespaces gives producers (the CLI) the same names and id schemas, without I/O.
      expect(describeNamespaces().map((n) => [n.name, n.idSchema])).toEqual(
        defs.namespaces.map((n) => [n.name, n.idSchema]),
      );
    } finally {
      await defs.close();
    }
  });

  it('defaults CATALOGUE_SCHEMA; DATABASE_URL has no default: createDefinitions refuses to guess one', async () => {
    for (const env of [{}, { DATABASE_URL: '', CATALOGUE_SCHEMA: '' }]) {
      const e = loadCatalogueEnv(env);
      expect(e.CATALOGUE_SCHEMA).toBe('catalogue');
      expect(e.DATABASE_URL).toBeUndefined();
    }
    await expect(createDefinitions({ DATABASE_URL: '' })).rejects.toMatchObject({
      code: 'E_CATALOGUE_CONFIG',
      message: expect.stringMatching(/^DATABASE_URL: required/),
    });
  });

  it('reads the product read path (TTLs, grace, timeouts) from CATALOGUE_*, defaults documented', () => {
    expect(readOptionsOf(loadCatalogueEnv({}))).toEqual(DEFAULT_PRODUCT_READ);
    const off = readOptionsOf(
      loadCatalogueEnv({
        CATALOGUE_GRACE_SECONDS: '0',
        CATALOGUE_SOFT_TIMEOUT_MS: '0',
        CATALOGUE_HARD_TIMEOUT_MS: '0',
        CATALOGUE_EARLY_REFRESH: '0',
        CATALOGUE_TTL_SPREAD: '0',
        CATALOGUE_TTL_L2: '120',
      }),
    );
    expect(off).toEqual({ ttl: { l1: 60, l2: 120 } });
    for (const [name, value] of [
      ['CATALOGUE_TTL_L2', '0'],
      ['CATALOGUE_GRACE_SECONDS', '-1'],
      ['CATALOGUE_EARLY_REFRESH', '1'],
      ['CATALOGUE_TTL_SPREAD', '0.9'],
      ['CATALOGUE_SOFT_TIMEOUT_MS', 'soon'],
    ] as const) {
      expect(() => loadCatalogueEnv({ [name]: value })).toThrow(new RegExp(name));
    }
    expect(() =>
      readOptionsOf(loadCatalogueEnv({ CATALOGUE_SOFT_TIMEOUT_MS: '500', CATALOGUE_HARD_TIMEOUT_MS: '100' })),
    ).toThrow(/CATALOGUE_SOFT_TIMEOUT_MS/);
  });

  it('refuses a DATABASE_URL that is not a postgres URL, naming the variable, not the value', async () => {
    for (const bad of ['not a url', 'http://127.0.0.1/test']) {
      const error = await createDefinitions({ DATABASE_URL: bad }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CatalogueError);
      expect(error).toMatchObject({
        code: 'E_CATALOGUE_CONFIG',
        message: expect.stringMatching(/DATABASE_URL/),
      });
      expect((error as Error).message).not.toContain(bad);
    }
  });

  it('refuses a bad CATALOGUE_SCHEMA, naming the variable', async () => {
    await expect(createDefinitions({ DATABASE_URL, CATALOGUE_SCHEMA: 'Bad-Name' })).rejects.toThrow(
      /CATALOGUE_SCHEMA/,
    );
  });
});
