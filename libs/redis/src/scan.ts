import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './client.js';

/**
 * SCAN (never KEYS) over every master: each master of a Cluster holds its own part of the
 * keyspace, so a walk visits each; a single node or a Sentinel master is the one node.
 */

/** Keys asked of each SCAN call by a whole walk: 1,000 keeps one call well under a millisecond. */
export const SCAN_COUNT = 1000;

/** Counts a command for a hang watchdog (HangWatchdog satisfies it). */
export interface CommandTracker {
  track<T>(command: Promise<T>): Promise<T>;
}

/** The masters to SCAN: every master of a Cluster, or the one node otherwise. */
export function masters(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** A master as walks name it (and save it in their cursors): `host:port`. */
export function masterName(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

/** The master named `name` now, or undefined (the topology changed: a failover since). */
export function findMaster(client: RedisClient, name: string): Redis | undefined {
  return masters(client).find((n) => masterName(n) === name);
}

/** Escapes Redis glob metacharacters so that a prefix is matched literally. */
export function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

export interface ScanStep {
  /** The cursor to continue from; '0' once the master has been walked completely. */
  readonly cursor: string;
  readonly keys: string[];
}

/**
 * One SCAN call on one master: the resumable form. Stateless: the caller keeps the cursor (a
 * worker saves it in its job), and SCAN still returns every key present for the whole walk when
 * it is resumed later, even after a crash.
 */
export async function scanStep(
  node: Redis,
  match: string,
  cursor: string,
  count: number,
  tracker?: CommandTracker,
): Promise<ScanStep> {
  const call = node.scan(cursor, 'MATCH', match, 'COUNT', count);
  const [next, keys] = await (tracker ? tracker.track(call) : call);
  return { cursor: next, keys };
}

const BITS = 64n;
const SPACE = 2 ** 64;

/**
 * How much of a master's keyspace a SCAN walk has covered when SCAN returned `cursor`, in [0, 1)
 * ('0', the walk's start or end, is 0). SCAN walks the hash table's buckets in reverse-binary
 * order, so the bit-reversed cursor over 64 bits, divided by 2^64, is the share of buckets done
 * whatever the table's size (also across resizes: that is what lets SCAN resume). Keys spread
 * evenly over buckets, so (keys matched so far) / this estimates how many match in all without
 * a counting pass.
 */
export function scanFraction(cursor: string): number {
  let c: bigint;
  try {
    c = BigInt(cursor);
  } catch {
    return 0;
  }
  let r = 0n;
  for (let i = 0n; i < BITS; i++) {
    r = (r << 1n) | (c & 1n);
    c >>= 1n;
  }
  return Number(r) / SPACE;
}

export interface ScanOptions {
  /** Keys per SCAN call; default SCAN_COUNT. */
  readonly count?: number;
  /** Counts every SCAN for a hang watchdog. */
  readonly tracker?: CommandTracker;
  /** Checked after each batch: true ends the walk of the current master. */
  readonly enough?: () => boolean;
}

/**
 * The whole walk: every master, from cursor 0 until it returns 0, handing each non-empty batch to
 * `each` (awaited before the next SCAN). Resolves the sum of what `each` returned.
 */
export async function scanMasters(
  client: RedisClient,
  match: string,
  each: (keys: string[], node: Redis) => Promise<number> | number,
  options: ScanOptions = {},
): Promise<number> {
  const count = options.count ?? SCAN_COUNT;
  let total = 0;
  for (const node of masters(client)) {
    let cursor = '0';
    do {
      const step = await scanStep(node, match, cursor, count, options.tracker);
      cursor = step.cursor;
      if (step.keys.length > 0) total += await each(step.keys, node);
    } while (cursor !== '0' && !options.enough?.());
  }
  return total;
}
