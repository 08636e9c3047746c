/**
 * The definitions module of the fleet benches (`warm`, `bulk-invalidate`), loaded by the real worker
 * runtime as its WORKER_DEFINITIONS, and imported by the benches for their direct rows: one
 * `product` namespace (the catalogue's value schema and key layout, `product:v1:<id>`) whose ids are
 * `1`…`N` and whose `loadMany` returns precomputed ~200-byte values at no cost. A warm then measures
 * the cache and the job machinery, not a database.
 *
 * env: BENCH_PRODUCTS = N (the number of ids `ids()` enumerates).
 */
import { type Product, productSchema } from '@cachefleet/catalogue';
import type { Definitions } from '@cachefleet/jobs';
import { defineNamespace, type Namespace } from '@cachefleet/tiered-cache';

/** JSON length of every value, like `redis-benchmark -d 200`. */
export const VALUE_BYTES = 200;
const CATEGORIES = ['books', 'garden', 'kitchen', 'tools', 'toys'] as const;

/** Index i holds the value of id `i + 1`; grown on demand and shared by every caller in the process. */
const values: Product[] = [];

export function makeProduct(i: number): Product {
  const id = String(i);
  const base: Product = {
    id,
    sku: `SKU-${id.padStart(9, '0')}`,
    name: '',
    category: CATEGORIES[i % CATEGORIES.length] ?? 'books',
    price_cents: 100 + ((i * 37) % 100_000),
    stock: i % 500,
    updated_at: '2026-11-22T04:00:00.000Z',
  };
  const room = VALUE_BYTES - JSON.stringify(base).length;
  return { ...base, name: `Product ${id} `.padEnd(room, 'x') };
}

/** The values of ids 1…n (precomputed once). */
export function products(n: number): readonly Product[] {
  for (let i = values.length + 1; i <= n; i++) values.push(makeProduct(i));
  return values;
}

export interface ProductNamespaceOptions {
  /** Namespace name (the keys are `<name>:v1:<id>`). Default `product`. */
  readonly name?: string;
  /** One tag per entry (`category:<category>`), as the catalogue's product namespace has. */
  readonly tagged?: boolean;
}

/** A `product` namespace over ids 1…count whose loader costs nothing. */
export function productNamespace(count: number, options: ProductNamespaceOptions = {}): Namespace<Product> {
  const all = products(count);
  const lookup = (id: string): Product | undefined => {
    const i = Number(id);
    return Number.isInteger(i) && i >= 1 && i <= count ? all[i - 1] : undefined;
  };
  return defineNamespace<Product>({
    name: options.name ?? 'product',
    version: 1,
    ttl: { l1: 60, l2: 3600 },
    schema: productSchema,
    load: async (id) => lookup(id),
    async loadMany(ids) {
      const found = new Map<string, Product>();
      for (const id of ids) {
        const v = lookup(id);
        if (v !== undefined) found.set(id, v);
      }
      return found;
    },
    async ids(after, limit) {
      const from = after === undefined ? 1 : Number(after) + 1;
      const to = Math.min(count, from + limit - 1);
      const out: string[] = [];
      for (let i = from; i <= to; i++) out.push(String(i));
      return out;
    },
    ...(options.tagged === true ? { tags: (p: Product) => [`category:${p.category}`] } : {}),
  });
}

export async function createDefinitions(env: NodeJS.ProcessEnv): Promise<Definitions> {
  const count = Number(env.BENCH_PRODUCTS);
  if (!(Number.isInteger(count) && count > 0)) {
    throw new Error(`BENCH_PRODUCTS must be a positive integer, got ${env.BENCH_PRODUCTS}`);
  }
  // A Namespace<Product> is a Namespace<unknown> for a worker: it only passes values through.
  const namespaces = [productNamespace(count) as Namespace<unknown>];
  return { namespaces, critical: {}, close: async () => {} };
}
