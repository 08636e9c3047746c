import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CacheError, createCache, ENV_VARS, loadCacheConfig } from '../src/index.js';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CacheError);
    expect((e as CacheError).code).toBe('E_CACHE_CONFIG');
    return (e as Error).message;
  }
  throw new Error('expected a configuration error');
}

describe('configuration from the environment (A4)', () => {
  it('defaults to tiered and resolves every default once', () => {
    const c = loadCacheConfig({ CACHE_REDIS_URL: 'redis://127.0.0.1:6390' });
    expect(c).toMatchObject({
      impl: 'tiered',
      redis: { mode: 'single', url: 'redis://127.0.0.1:6390' },
      prefix: 'cf:',
      defaultTtlSeconds: 1800,
      l1: { maxEntries: 10_000, defaultTtlSeconds: 300 },
      l2: { compressionThreshold: 2048, commandTimeoutMs: 500 },
      breaker: { failureThreshold: 5, cooldownMs: 1000 },
    });
  });

  it('FEATURE_CACHE=false is the master switch: NullCache, no Redis needed', () => {
    expect(loadCacheConfig({ FEATURE_CACHE: 'false', CACHE_IMPL: 'tiered' })).toMatchObject({ impl: 'null' });
  });

  it('reads Sentinel and Cluster settings', () => {
    expect(
      loadCacheConfig({
        CACHE_REDIS_MODE: 'sentinel',
        CACHE_REDIS_SENTINELS: '127.0.0.1:26379, 127.0.0.1:26380',
        CACHE_REDIS_SENTINEL_NAME: 'main',
      }).redis,
    ).toEqual({
      mode: 'sentinel',
      name: 'main',
      db: 0,
      sentinels: [
        { host: '127.0.0.1', port: 26379 },
        { host: '127.0.0.1', port: 26380 },
      ],
    });
    expect(
      loadCacheConfig({ CACHE_REDIS_MODE: 'cluster', CACHE_REDIS_CLUSTER_NODES: '127.0.0.1:7000' }).redis,
    ).toEqual({
      mode: 'cluster',
      nodes: [{ host: '127.0.0.1', port: 7000 }],
    });
  });

  it('reads the Sentinel password and db number (issue 17), and only in Sentinel mode', () => {
    const sentinel = {
      CACHE_REDIS_MODE: 'sentinel',
      CACHE_REDIS_SENTINELS: '127.0.0.1:26379',
      CACHE_REDIS_SENTINEL_NAME: 'main',
    };
    expect(
      loadCacheConfig({
        ...sentinel,
        CACHE_REDIS_PASSWORD: 'data-pw',
        CACHE_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
        CACHE_REDIS_DB: '3',
      }).redis,
    ).toEqual({
      mode: 'sentinel',
      name: 'main',
      db: 3,
      password: 'data-pw',
      sentinelPassword: 'sentinel-pw',
      sentinels: [{ host: '127.0.0.1', port: 26379 }],
    });
    expect(configError(() => loadCacheConfig({ ...sentinel, CACHE_REDIS_DB: '-1' }))).toMatch(
      /CACHE_REDIS_DB/,
    );
    expect(
      configError(() => loadCacheConfig({ CACHE_REDIS_URL: 'redis://x:1', CACHE_REDIS_DB: '2' })),
    ).toMatch(/CACHE_REDIS_DB: only with CACHE_REDIS_MODE=sentinel/);
    expect(
      configError(() =>
        loadCacheConfig({ CACHE_REDIS_URL: 'redis://x:1', CACHE_REDIS_SENTINEL_PASSWORD: 'p' }),
      ),
    ).toMatch(/CACHE_REDIS_SENTINEL_PASSWORD/);
    expect(
      loadCacheConfig({ CACHE_REDIS_URL: 'redis://x:1', CACHE_BUS_ANNOUNCE_WAIT_MS: '250' }).bus
        .announceWaitMs,
    ).toBe(250);
  });

  it('names the offending variable in the error', () => {
    expect(configError(() => loadCacheConfig({ CACHE_IMPL: 'disk' }))).toMatch(/CACHE_IMPL/);
    expect(configError(() => loadCacheConfig({ CACHE_REDIS_MODE: 'ring' }))).toMatch(/CACHE_REDIS_MODE/);
    expect(configError(() => loadCacheConfig({ FEATURE_CACHE: 'maybe' }))).toMatch(/FEATURE_CACHE/);
    expect(configError(() => loadCacheConfig({}))).toMatch(/REDIS_URL: required \(or CACHE_REDIS_URL/);
    expect(loadCacheConfig({ REDIS_URL: 'redis://r:1' }).redis).toEqual({
      mode: 'single',
      url: 'redis://r:1',
    });
    expect(configError(() => loadCacheConfig({ REDIS_URL: 'redis://r:x' }))).toMatch(/^REDIS_URL: /);
    expect(
      configError(() => loadCacheConfig({ CACHE_REDIS_MODE: 'sentinel', CACHE_REDIS_SENTINELS: 'nohost' })),
    ).toMatch(/CACHE_REDIS_SENTINELS.*host:port/);
    expect(
      configError(() => loadCacheConfig({ CACHE_REDIS_URL: 'redis://x:1', CACHE_DEFAULT_TTL: '-5' })),
    ).toMatch(/CACHE_DEFAULT_TTL/);
    expect(configError(() => loadCacheConfig({ CACHE_REDIS_URL: 'http://x' }))).toMatch(/CACHE_REDIS_URL/);
  });

  it('validates programmatic options at construction, naming the field', () => {
    expect(configError(() => createCache({ impl: 'tiered' }))).toMatch(/redis: required/);
    expect(configError(() => createCache({ impl: 'memory', l1: { maxEntries: 0 } }))).toMatch(
      /l1\.maxEntries/,
    );
    expect(configError(() => createCache({ impl: 'memory', l1TimingSampleRate: 3 }))).toMatch(/power of two/);
  });
});

describe('documentation', () => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  it('documents every environment variable', () => {
    for (const name of Object.keys(ENV_VARS)) expect(readme, name).toContain(name);
  });
});
