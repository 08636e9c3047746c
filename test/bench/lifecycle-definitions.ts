/**
 * The definitions module of the lifecycle benches (`migrate`, `backup`, `restore`), loaded by the
 * real worker runtime as its WORKER_DEFINITIONS: one `product` namespace at version 2 whose
 * migration from version 1 converts the bench's fill values (`{"id":"<i>","v":<i mod 1000>}`).
 */
import type { Definitions } from '@cachefleet/jobs';
import { defineNamespace, type Namespace } from '@cachefleet/tiered-cache';
import { z } from 'zod';

const V1 = z.object({ id: z.string(), v: z.number() });
const V2 = z.object({ id: z.string(), value: z.number(), migrated: z.literal(true) });

export async function createDefinitions(): Promise<Definitions> {
  const product = defineNamespace({
    name: 'product',
    version: 2,
    ttl: { l1: 60, l2: 3600 },
    schema: V2,
    load: async (id) => ({ id, value: 0, migrated: true as const }),
    migrations: {
      1: (old) => {
        const o = V1.parse(old);
        return { id: o.id, value: o.v, migrated: true as const };
      },
    },
  });
  return { namespaces: [product as Namespace<unknown>], critical: {}, close: async () => {} };
}
