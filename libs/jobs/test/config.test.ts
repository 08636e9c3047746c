import { describe, expect, it } from 'vitest';
import { loadQueueConfig } from '../src/index.js';

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error('expected an error');
}

describe('loadQueueConfig', () => {
  const sentinel = {
    QUEUE_REDIS_MODE: 'sentinel',
    QUEUE_REDIS_SENTINELS: '127.0.0.1:26379,127.0.0.1:26380',
    QUEUE_REDIS_SENTINEL_NAME: 'queues',
  };

  it('keeps the existing variables: a URL, defaulting to CACHE_REDIS_URL', () => {
    expect(loadQueueConfig({ CACHE_REDIS_URL: 'redis://c:1' }).redis).toEqual({
      mode: 'single',
      url: 'redis://c:1',
    });
    expect(loadQueueConfig({ QUEUE_REDIS_URL: 'redis://q:2/3' }).redis).toEqual({
      mode: 'single',
      url: 'redis://q:2/3',
    });
    expect(loadQueueConfig(sentinel).redis).toEqual({
      mode: 'sentinel',
      name: 'queues',
      db: 0,
      sentinels: [
        { host: '127.0.0.1', port: 26379 },
        { host: '127.0.0.1', port: 26380 },
      ],
    });
  });

  it('reads the Sentinel password and db number (issue 17), and only in Sentinel mode', () => {
    expect(
      loadQueueConfig({
        ...sentinel,
        QUEUE_REDIS_PASSWORD: 'data-pw',
        QUEUE_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
        QUEUE_REDIS_DB: '2',
      }).redis,
    ).toMatchObject({ mode: 'sentinel', db: 2, password: 'data-pw', sentinelPassword: 'sentinel-pw' });
    expect(errorOf(() => loadQueueConfig({ ...sentinel, QUEUE_REDIS_DB: 'two' }))).toMatch(/QUEUE_REDIS_DB/);
    expect(errorOf(() => loadQueueConfig({ QUEUE_REDIS_DB: '2' }))).toMatch(
      /QUEUE_REDIS_DB: only with QUEUE_REDIS_MODE=sentinel/,
    );
    expect(errorOf(() => loadQueueConfig({ QUEUE_REDIS_SENTINEL_PASSWORD: 'p' }))).toMatch(
      /QUEUE_REDIS_SENTINEL_PASSWORD/,
    );
  });
});
