import { type CacheKeys, cacheKeys, defineScripts, isCluster, type RedisClient } from '@cachefleet/redis';
import type { BreakerState } from '../breaker.js';
import { type Codec, createCodec } from '../codec.js';
import { L2Guard } from '../guard.js';
import { CACHE_SCRIPTS, type CacheScripts } from './scripts.js';

interface L2ConnectionOptions {
  readonly client: RedisClient;
  readonly prefix: string;
  readonly compressionThreshold: number;
  readonly commandTimeoutMs: number;
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  readonly clock?: { now(): number };
  readonly onBreakerChange?: (from: BreakerState, to: BreakerState) => void;
}

/** UNLINK in batches of 500 so that one call never holds Redis long. */
export const UNLINK_BATCH = 500;

/**
 * What the roles of the L2 store share (the store, fencing, locks, bulk walks): one client with
 * the cache's scripts, its key layout, its guard and its codec. Internal to the store.
 */
export class L2Connection {
  readonly client: RedisClient;
  readonly prefix: string;
  readonly keys: CacheKeys;
  readonly guard: L2Guard;
  readonly codec: Codec;
  readonly scripts: CacheScripts;
  /** On a Cluster, multi-key commands become per-key ones (grouped per node by ioredis). */
  readonly cluster: boolean;

  constructor(options: L2ConnectionOptions) {
    this.client = options.client;
    this.prefix = options.prefix;
    this.keys = cacheKeys(options.prefix);
    this.cluster = isCluster(options.client);
    this.codec = createCodec(options.compressionThreshold);
    this.scripts = defineScripts(options.client, CACHE_SCRIPTS);
    this.guard = new L2Guard(options.client, {
      breaker: options.breaker,
      commandTimeoutMs: options.commandTimeoutMs,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onBreakerChange ? { onBreakerChange: options.onBreakerChange } : {}),
    });
  }

  /** MGET needs one slot; on a Cluster, auto-pipelined GETs are grouped per node instead. */
  getAll(fullKeys: string[]): Promise<(string | null)[]> {
    if (fullKeys.length === 0) return Promise.resolve([]);
    const client = this.client;
    return this.cluster ? Promise.all(fullKeys.map((k) => client.get(k))) : client.mget(fullKeys);
  }

  /** Adds an entry to the index of each of its tags (tag-add-1.lua keeps the index alive as long). */
  tagAdds(fullKey: string, ttlMs: number, tags: readonly string[] | undefined): Promise<number>[] {
    if (!tags) return [];
    return tags.map((tag) => this.scripts.tagAdd(this.keys.tag(tag), fullKey, ttlMs));
  }

  /** UNLINK in batches (per key on a Cluster: slots); every call tracked by the watchdog. */
  async unlink(fullKeys: readonly string[]): Promise<number> {
    let n = 0;
    if (this.cluster) {
      const counts = await this.guard.track(Promise.all(fullKeys.map((k) => this.client.unlink(k))));
      for (const c of counts) n += c;
      return n;
    }
    for (let i = 0; i < fullKeys.length; i += UNLINK_BATCH) {
      n += await this.guard.track(this.client.unlink(...fullKeys.slice(i, i + UNLINK_BATCH)));
    }
    return n;
  }
}
