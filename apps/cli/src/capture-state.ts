import { readCaptureState } from '@cachefleet/capture';
import { cacheKeys, createRedisClient } from '@cachefleet/redis';
import { loadCacheConfig } from '@cachefleet/tiered-cache';
import { CONNECT_TIMEOUT_MS, deadline, describeRedis, probe } from './connect.js';
import type { Session } from './session.js';

/** What `status` shows of change capture (from `__{capture}:lease` and `__{capture}:position`). */
export interface CaptureView {
  /** A reader holds the lease now. */
  readonly active: boolean;
  readonly holder: string | null;
  readonly fence: number | null;
  /** Highest outbox position applied. */
  readonly position: number | null;
  /** Lag at the reader's last turn, seconds (cachefleet_capture_lag_seconds). */
  readonly lagSeconds: number | null;
  /** When the reader last recorded its position (ms since the epoch). */
  readonly updatedAt: number | null;
}

/**
 * Reads the capture state from the cache Redis (CACHE_REDIS_URL, else REDIS_URL; CACHE_KEY_PREFIX).
 * Undefined when neither is set: never a default address for this part.
 */
export async function captureView(session: Session): Promise<CaptureView | undefined> {
  const env = session.env;
  if (!env.CACHE_REDIS_URL && !env.REDIS_URL) return undefined;
  const config = loadCacheConfig({ ...env, CACHE_IMPL: 'redis' });
  const conn = config.redis;
  if (conn === undefined) return undefined;
  await probe(conn, CONNECT_TIMEOUT_MS, `cache Redis (${describeRedis(conn)})`);
  const client = createRedisClient(conn, { role: 'cache', connectTimeoutMs: CONNECT_TIMEOUT_MS });
  client.on('error', () => {});
  try {
    await deadline(client.connect(), 'connecting to the cache Redis');
    const state = await deadline(
      readCaptureState(client, cacheKeys(config.prefix)),
      'reading the capture state',
    );
    return {
      active: state.holder !== undefined,
      holder: state.holder ?? state.position?.holder ?? null,
      fence: state.fence ?? state.position?.fence ?? null,
      position: state.position?.pos ?? null,
      lagSeconds: state.position?.lag ?? null,
      updatedAt: state.position?.at ?? null,
    };
  } finally {
    client.disconnect();
  }
}
