import { createHash } from 'node:crypto';
import { loadScripts, type RedisClient } from '@cachefleet/redis';

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
  /** `numKeys` first (the stream + the entries), then the keys, then the arguments: see invalidate-publish-n.lua. */
  invalidatePublish(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<unknown>;
  /** `numKeys` first (counter + entries), then the keys, then the arguments: see warm-n.lua. */
  warm(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  /** `numKeys` first (counter + entries), then the keys, then the arguments: see warm-absent-n.lua. */
  warmAbsent(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number>;
  /** `numKeys` first (counter + old/new pairs), then the keys, then the arguments: see migrate-n.lua. */
  migrate(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number | number[]>;
  genRaise(generations: string, namespace: string, generation: number): Promise<number>;
  /** DUMP + PTTL of each key (dump-n.lua): run it read-only through `dumpMany` (Buffers). */
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
  invalidatePublish: 'invalidate-publish-n',
  warm: 'warm-n',
  warmAbsent: 'warm-absent-n',
  migrate: 'migrate-n',
  genRaise: 'gen-raise-1',
  dumpMany: 'dump-n',
  restoreMany: 'restore-n',
});

/** The delete's script (tombstones + event), sent at once rather than auto-pipelined (assembly.ts). */
export const INVALIDATE_PUBLISH = 'invalidatePublish' satisfies keyof CacheScripts;

interface ReadOnlyScripts {
  evalsha_roBuffer(sha: string, numKeys: string, ...keys: string[]): Promise<unknown>;
  eval_roBuffer(script: string, numKeys: string, ...keys: string[]): Promise<unknown>;
}

const DUMP_LUA = CACHE_SCRIPTS.scripts.find((x) => x.command === 'dumpMany')?.lua ?? '';
const DUMP_SHA = createHash('sha1').update(DUMP_LUA).digest('hex');

/**
 * dump-n.lua run as a read-only script (EVALSHA_RO; EVAL_RO the first time a server has not seen
 * it): for each key, its DUMP (null: gone) and its PTTL, payloads as Buffers. Read-only matters
 * for ACL: EVALSHA counts its keys as written, so the backup user (`%R~<prefix>*`: read-only keys)
 * was refused it with NOPERM; EVALSHA_RO checks them as read.
 */
export async function dumpMany(
  client: RedisClient,
  keys: readonly string[],
): Promise<{ readonly dump: Buffer | null; readonly pttl: number }[]> {
  const n = String(keys.length);
  // The `<command>Buffer` methods ioredis generates for every command (not `callBuffer`, which
  // auto-pipelining sends without its command name).
  const c = client as unknown as ReadOnlyScripts;
  let reply: unknown;
  try {
    reply = await c.evalsha_roBuffer(DUMP_SHA, n, ...keys);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    reply = await c.eval_roBuffer(DUMP_LUA, n, ...keys);
  }
  if (!Array.isArray(reply)) throw new Error('dump-n.lua: not an array');
  return keys.map((_, i) => {
    const dump: unknown = reply[2 * i];
    const pttl: unknown = reply[2 * i + 1];
    return { dump: Buffer.isBuffer(dump) ? dump : null, pttl: typeof pttl === 'number' ? pttl : -2 };
  });
}
