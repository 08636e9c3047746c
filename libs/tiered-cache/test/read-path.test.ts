import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startRedis } from '../../../test/helpers/index.js';
import {
  type Cache,
  type CacheOptions,
  createCache,
  type DeepReadonly,
  defineNamespace,
  type NamespaceDefinition,
} from '../src/index.js';

const server = await startRedis();
const raw = new Redis(server.url);
afterAll(async () => {
  raw.disconnect();
  await server.stop();
});

const Product = z.object({
  id: z.string(),
  price: z.number(),
  tags: z.array(z.string()),
  meta: z.object({ rev: z.number() }),
});
type Product = z.infer<typeof Product>;

let seq = 0;
const caches: Cache[] = [];
async function newCache(extra: Partial<CacheOptions> = {}, prefix = `rp${++seq}:`): Promise<Cache> {
  const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix, ...extra });
  await cache.start();
  caches.push(cache);
  return cache;
}
afterAll(async () => {
  await Promise.all(caches.map((c) => c.close()));
});

/** A source of truth the test controls: rows, a switch that makes the loader fail, a call count. */
function source(name: string, extra: Partial<NamespaceDefinition<Product>> = {}) {
  const rows = new Map<string, Product>();
  for (let i = 0; i < 20; i++)
    rows.set(String(i), { id: String(i), price: i, tags: ['a'], meta: { rev: 1 } });
  const state = { calls: 0, fail: false };
  const ns = defineNamespace<Product>({
    name,
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: Product,
    load: async (id) => {
      state.calls++;
      if (state.fail) throw new Error('database is down');
      const row = rows.get(id);
      // A fresh object per call, as a database driver returns.
      return row === undefined ? undefined : structuredClone(row);
    },
    loadMany: async (ids) => {
      state.calls++;
      if (state.fail) throw new Error('database is down');
      return new Map(
        ids.flatMap((id) => (rows.has(id) ? [[id, structuredClone(rows.get(id) as Product)]] : [])),
      );
    },
    ...extra,
  });
  return { ns, rows, state };
}

function mutate(value: DeepReadonly<Product> | undefined): void {
  // Strict mode (ES module): writing a frozen property throws.
  (value as Product).price = 999;
}

describe('immutable values', () => {
  it('hands out deep-frozen values from the loader, L1, L2 and getMany; a mutation throws and changes nothing', async () => {
    const { ns } = source('imm');
    const pod1 = await newCache({}, 'imm:');
    const pod2 = await newCache({}, 'imm:');

    const filled = await pod1.get(ns, '1');
    if (!filled.ok || filled.value === undefined) throw new Error('expected a value');
    const v = filled.value;
    expect(Object.isFrozen(v)).toBe(true);
    expect(Object.isFrozen(v.tags)).toBe(true);
    expect(Object.isFrozen(v.meta)).toBe(true);
    expect(() => mutate(v)).toThrow(TypeError);
    expect(() => (v.tags as string[]).push('x')).toThrow(TypeError);
    // @ts-expect-error DeepReadonly: nested properties are read-only to the type checker too.
    expect(() => (v.meta.rev = 2)).toThrow(TypeError);

    const hit = await pod1.get(ns, '1');
    expect(hit.ok && hit.value).toEqual({ id: '1', price: 1, tags: ['a'], meta: { rev: 1 } });

    // pod2: an L2 hit decoded into its L1.
    const fromL2 = await pod2.get(ns, '1');
    if (!fromL2.ok) throw fromL2.error;
    expect(() => mutate(fromL2.value)).toThrow(TypeError);
    expect(fromL2.value?.price).toBe(1);

    const many = await pod2.getMany(ns, ['1', '2', '3']);
    if (!many.ok) throw many.error;
    for (const v of many.value) {
      expect(Object.isFrozen(v)).toBe(true);
      expect(() => mutate(v)).toThrow(TypeError);
    }
    expect(many.value.map((v) => v?.price)).toEqual([1, 2, 3]);
  });

  it('freezes the stored copy of a set, not the object the caller passed', async () => {
    const { ns } = source('imm-set');
    const pod = await newCache();
    const mine: Product = { id: '5', price: 50, tags: ['b'], meta: { rev: 2 } };
    expect((await pod.set(ns, '5', mine)).ok).toBe(true);
    mine.price = 51;
    const r = await pod.get(ns, '5');
    if (!r.ok) throw r.error;
    expect(r.value?.price).toBe(50);
    expect(() => mutate(r.value)).toThrow(TypeError);
  });

  it('immutable: false hands out the stored object unfrozen (the previous behaviour)', async () => {
    const { ns } = source('mut', { immutable: false });
    const pod = await newCache();
    const r = await pod.get(ns, '3');
    if (!r.ok) throw r.error;
    expect(Object.isFrozen(r.value)).toBe(false);
  });
});
