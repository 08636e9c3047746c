/**
 * The namespaces of the lifecycle tests (test/lifecycle.test.ts, test/migrate-kill.test.ts): one
 * `item` namespace at version 1 (`{id, title, price}`) and at version 2 (`{id, name, priceCents}`,
 * converted by `migrations[1]`), and a version 2 without a migration that reloads from its source.
 * Titles `throw` make the migration throw; an empty title fails the v2 schema.
 */
import type { Definitions } from '@cachefleet/jobs';
import { defineNamespace, type Namespace } from '@cachefleet/tiered-cache';
import { z } from 'zod';

export const ItemV1 = z.object({ id: z.string(), title: z.string(), price: z.number() });
export type ItemV1 = z.infer<typeof ItemV1>;
export const ItemV2 = z.object({ id: z.string(), name: z.string().min(1), priceCents: z.number().int() });
export type ItemV2 = z.infer<typeof ItemV2>;

const tags = (v: { id: string }) => [`mod:${Number(v.id) % 3}`];

/** The value of id `i` at version 1 (what the tests seed), and its conversion. */
export function v1Value(i: number): ItemV1 {
  return { id: String(i), title: `item ${i}`, price: i / 100 };
}
export function convert(old: ItemV1): ItemV2 {
  if (old.title === 'throw') throw new Error(`cannot convert ${old.id}`);
  return { id: old.id, name: old.title, priceCents: Math.round(old.price * 100) };
}

export function itemV1(): Namespace<ItemV1> {
  return defineNamespace<ItemV1>({
    name: 'item',
    version: 1,
    ttl: { l1: 60, l2: 600 },
    schema: ItemV1,
    load: async (id) => v1Value(Number(id)),
    tags,
  });
}

export function itemV2(): Namespace<ItemV2> {
  return defineNamespace<ItemV2>({
    name: 'item',
    version: 2,
    ttl: { l1: 60, l2: 600 },
    schema: ItemV2,
    load: async (id) => convert(v1Value(Number(id))),
    tags,
    migrations: { 1: (old) => convert(ItemV1.parse(old)) },
  });
}

/** Version 2 with no migration declared: the job reloads entries from the source (`reloaded-<id>`). */
export function itemV2Reload(): Namespace<ItemV2> {
  return defineNamespace<ItemV2>({
    name: 'item',
    version: 2,
    ttl: { l1: 60, l2: 600 },
    schema: ItemV2,
    load: async (id) => ({ id, name: `reloaded-${id}`, priceCents: 1 }),
    loadMany: async (ids) => new Map(ids.map((id) => [id, { id, name: `reloaded-${id}`, priceCents: 1 }])),
  });
}

/**
 * As a WORKER_DEFINITIONS module (real worker processes, the CLI): `item` at LIFECYCLE_VERSION
 * (default 2, with its migration; 1 for the old definition).
 */
export async function createDefinitions(env: NodeJS.ProcessEnv): Promise<Definitions> {
  const ns = env.LIFECYCLE_VERSION === '1' ? itemV1() : itemV2();
  return { namespaces: [ns as Namespace<unknown>], critical: {}, close: async () => {} };
}
