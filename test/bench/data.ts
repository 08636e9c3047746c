import type { NamespaceDefinition } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import type { BenchValue } from './types.js';

const PAYLOAD_BYTES = 1000;

/** Deterministic per key, so a value read back can be checked against the key that was asked for. */
export function makeValue(key: string, payloadBytes = PAYLOAD_BYTES): BenchValue {
  const seed = `${key}|`;
  return { id: key, payload: seed.repeat(Math.ceil(payloadBytes / seed.length)).slice(0, payloadBytes) };
}

export const benchValueSchema: z.ZodType<BenchValue> = z.object({ id: z.string(), payload: z.string() });

/**
 * The `item` namespace of every library row. Pods and publishers must agree on it (same name and
 * version: same keys, same bus events), so it is defined once.
 */
export function itemDefinition(
  load: (id: string) => Promise<BenchValue | undefined> = async (id) => makeValue(id),
): NamespaceDefinition<BenchValue> {
  return { name: 'item', version: 1, ttl: { l1: 300, l2: 1800 }, schema: benchValueSchema, load };
}

export function isBenchValue(value: unknown): value is BenchValue {
  if (typeof value !== 'object' || value === null) return false;
  return (
    'id' in value && typeof value.id === 'string' && 'payload' in value && typeof value.payload === 'string'
  );
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `task` over `items` with at most `width` in flight; pre-fill stays bounded instead of queueing 10k writes at once. */
export async function forEachLimit<T>(
  items: readonly T[],
  width: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

export const identity = (resolved: unknown): unknown => resolved;
