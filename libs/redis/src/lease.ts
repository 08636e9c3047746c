import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisClient } from './client.js';

/** Takes the lease when free, renews it when held by `holder`; 1 when `holder` has it. */
const ACQUIRE = `local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A scrape lease: of all the processes Prometheus scrapes, the one holding it exports the
 * fleet-wide gauges (the same whoever reads them), so a `sum` counts them once. A scrape takes
 * the lease when it is free or renews it when this process holds it (one script, `SET PX`); the
 * holder keeps it while its scrapes come more often than `leaseMs`, and when it dies the next
 * process scraped after `leaseMs` takes over. `release` gives it up at a graceful stop.
 */
export interface ScrapeLease {
  /** This process's name in the lease (`host:pid:random`). */
  readonly holder: string;
  /** Takes or renews the lease; true while this process holds it. */
  acquire(): Promise<boolean>;
  /** Gives the lease up if this process holds it. */
  release(): Promise<void>;
}

export function scrapeLease(client: RedisClient, key: string, leaseMs: number): ScrapeLease {
  const holder = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  return {
    holder,
    acquire: async () => (await client.eval(ACQUIRE, 1, key, holder, leaseMs)) === 1,
    release: async () => {
      await client.eval(RELEASE, 1, key, holder);
    },
  };
}
