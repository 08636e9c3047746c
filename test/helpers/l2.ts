import { cacheKeys } from '@cachefleet/redis';

/** Reads a cache entry straight from Redis, as the library would: a tombstone (`~t…`) is no value. */
export interface KeyReader {
  get(key: string): Promise<string | null>;
}

export async function liveValue(redis: KeyReader, key: string): Promise<unknown> {
  const wire = await redis.get(key);
  if (wire === null || wire.startsWith('~t')) return undefined;
  // Entries with grace or early refresh carry their times first: `~g<loadedAt>.<expiresAt>:`.
  return JSON.parse(wire.startsWith('~g') ? wire.slice(wire.indexOf(':') + 1) : wire) as unknown;
}

export async function isTombstoned(redis: KeyReader, key: string): Promise<boolean> {
  return (await redis.get(key))?.startsWith('~t') ?? false;
}

export interface StreamReader {
  xrevrange(
    key: string,
    end: string,
    start: string,
    count: 'COUNT',
    n: number,
  ): Promise<[string, string[]][]>;
}

/** The id of the newest event on a cache's bus stream (`<prefix>__bus`), or '0-0'. */
export async function busHead(redis: StreamReader, prefix: string): Promise<string> {
  const last = await redis.xrevrange(cacheKeys(prefix).bus, '+', '-', 'COUNT', 1);
  return last[0]?.[0] ?? '0-0';
}
