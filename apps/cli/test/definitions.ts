/**
 * The definitions module of the CLI tests (their WORKER_DEFINITIONS): a small in-memory `product`
 * namespace, 20 ids `a001…` and 30 ids `b001…` (the pattern test removes the first group only).
 * The worker of the tests serves it, and the CLI checks ids against it, as it would against the
 * catalogue.
 */
import type { Definitions } from '@cachefleet/jobs';
import { defineNamespace, type Namespace } from '@cachefleet/tiered-cache';
import { z } from 'zod';

export const PRODUCTS = new Map<string, { id: string; name: string }>();
for (let i = 1; i <= 20; i++) PRODUCTS.set(`a${String(i).padStart(3, '0')}`, { id: '', name: `A ${i}` });
for (let i = 1; i <= 30; i++) PRODUCTS.set(`b${String(i).padStart(3, '0')}`, { id: '', name: `B ${i}` });
for (const [id, p] of PRODUCTS) p.id = id;
const SORTED_IDS = [...PRODUCTS.keys()].sort();

export const product: Namespace<{ id: string; name: string }> = defineNamespace({
  name: 'product',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string(), name: z.string() }),
  idSchema: z.string().regex(/^[a-z]\d{3}$/, 'a letter and three digits'),
  load: async (id) => PRODUCTS.get(id),
  loadMany: async (ids) => {
    const out = new Map<string, { id: string; name: string }>();
    for (const id of ids) {
      const p = PRODUCTS.get(id);
      if (p) out.set(id, p);
    }
    return out;
  },
  ids: async (after, limit) => SORTED_IDS.filter((id) => after === undefined || id > after).slice(0, limit),
});

export const definitions: Definitions = {
  namespaces: [product],
  critical: { product: ['a001', 'a002'] },
  close: async () => {},
};

export async function createDefinitions(): Promise<Definitions> {
  return definitions;
}

/**
 * What the CLI checks against. `CLI_TEST_NEWER_NAMESPACE` adds one that the workers do not have,
 * as a CLI of a newer release would: its jobs are taken, and fail in the worker.
 */
export function describeNamespaces(
  env: NodeJS.ProcessEnv,
): readonly { name: string; idSchema: z.ZodType<string> }[] {
  const newer = env.CLI_TEST_NEWER_NAMESPACE;
  return newer
    ? [...definitions.namespaces, { name: newer, idSchema: z.string().min(1) }]
    : definitions.namespaces;
}
