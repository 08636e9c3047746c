import { loadScripts } from '@cachefleet/redis';

/** The cache's Lua scripts (files in ./scripts), typed. Registered by the store on its client. */
export interface CacheScripts {
  lockRelease(key: string, token: string): Promise<number>;
  /** The same compare-and-delete for an entry: unlinks it only if it still holds `wire`. */
  deleteIf(entry: string, wire: string): Promise<number>;
  tagAdd(tagKey: string, entryKey: string, ttlMs: number): Promise<number>;
  tagAddMany(tagKey: string, ttlMs: number, ...entryKeys: string[]): Promise<number>;
  /** fill-n.lua with one key: the entry's compare-and-set (Cluster: the counter is in another slot). */
  fill(entry: string, expected: string, wire: string, ttlMs: number): Promise<number>;
  /** fill-n.lua with two keys: the walk counter is checked in the same script. */
  fillFenced(
    entry: string,
    counter: string,
    expected: string,
    wire: string,
    ttlMs: number,
    inv: number,
  ): Promise<number>;
  invalidate(entry: string, tombstone: string, ttlMs: number): Promise<number>;
  /** `numKeys` first (counter + entries), then the keys, then the arguments: see warm-n.lua. */
  warm(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  /** `numKeys` first (counter + old/new pairs), then the keys, then the arguments: see migrate-n.lua. */
  migrate(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number | number[]>;
  genRaise(generations: string, namespace: string, generation: number): Promise<number>;
  /** DUMP + PTTL of each key (dump-n.lua); read its payloads through `dumpMany` (Buffers). */
  dumpMany(numKeys: number, ...keys: string[]): Promise<unknown>;
  /** `numKeys` first, then the keys, then '1' to replace and (expiry, payload) per key: restore-n.lua. */
  restoreMany(numKeys: number, ...keysThenArgs: (string | Buffer)[]): Promise<number>;
}

export const CACHE_SCRIPTS = loadScripts<CacheScripts>(new URL('./scripts/', import.meta.url), {
  lockRelease: 'lock-release-1',
  deleteIf: 'lock-release-1',
  tagAdd: 'tag-add-1',
  tagAddMany: 'tag-add-many-1',
  fill: { file: 'fill-n', keys: 1 },
  fillFenced: { file: 'fill-n', keys: 2 },
  invalidate: 'invalidate-1',
  warm: 'warm-n',
  migrate: 'migrate-n',
  genRaise: 'gen-raise-1',
  dumpMany: 'dump-n',
  restoreMany: 'restore-n',
});

/** The Buffer form ioredis defines beside every script command (`<name>Buffer`). */
interface DumpManyBuffer {
  dumpManyBuffer(numKeys: number, ...keys: string[]): Promise<unknown>;
}

/**
 * dump-n.lua on `client` (after `defineScripts`), its payloads as Buffers: for each key, its
 * DUMP (null: gone) and its PTTL.
 */
export async function dumpMany(
  client: object,
  keys: readonly string[],
): Promise<{ readonly dump: Buffer | null; readonly pttl: number }[]> {
  const reply = await (client as DumpManyBuffer).dumpManyBuffer(keys.length, ...keys);
  if (!Array.isArray(reply)) throw new Error('dump-n.lua: not an array');
  return keys.map((_, i) => {
    const dump: unknown = reply[2 * i];
    const pttl: unknown = reply[2 * i + 1];
    return { dump: Buffer.isBuffer(dump) ? dump : null, pttl: typeof pttl === 'number' ? pttl : -2 };
  });
}
