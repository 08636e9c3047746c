import { startRedis, waitUntil } from '@cachefleet/test';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createCache, defineNamespace } from '../src/index.js';

const server = await startRedis();
afterAll(() => server.stop());

let loads = 0;
const ns = defineNamespace({
  name: 'reg',
  version: 1,
  ttl: { l1: 60, l2: 60 },
  schema: z.number(),
  load: async (id) => {
    loads++;
    return Number(id);
  },
});

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('NullCache and the registry', () => {
  it('NullCache caches nothing and counts every read as a miss (observe demand first)', async () => {
    const cache = createCache({ impl: 'null' });
    await cache.start();
    loads = 0;
    for (let i = 0; i < 5; i++) expect(await cache.get(ns, '1')).toEqual({ ok: true, value: 1 });
    expect(loads).toBe(5);
    expect(cache.status()).toMatchObject({
      enabled: false,
      implName: 'null',
      hits: 0,
      misses: 5,
      errors: 0,
      hitRate: 0,
    });
    const text = await cache.metrics.metrics();
    expect(
      metricValue(
        text,
        'cachefleet_cache_requests_total{impl="null",tier="none",namespace="reg",result="miss"}',
      ),
    ).toBe(5);
    expect(metricValue(text, 'cachefleet_cache_enabled{impl="null"}')).toBe(0);
    await cache.close();
  });

  it('swaps NullCache → tiered → NullCache at run time; status counts restart at each swap', async () => {
    const cache = createCache({
      impl: 'null',
      redis: { mode: 'single', url: server.url },
      prefix: 'reg-swap:',
    });
    await cache.start();
    await cache.get(ns, '2');
    const before = cache.status();
    await new Promise((r) => setTimeout(r, 5));

    await cache.use('tiered');
    const afterSwap = cache.status();
    expect(afterSwap).toMatchObject({ enabled: true, implName: 'tiered', hits: 0, misses: 0 });
    expect(Date.parse(afterSwap.registeredAt)).toBeGreaterThan(Date.parse(before.registeredAt));
    loads = 0;
    await cache.get(ns, '2');
    await cache.get(ns, '2');
    await cache.get(ns, '2');
    expect(loads).toBe(1);
    expect(cache.status()).toMatchObject({ hits: 2, misses: 1, hitRate: 2 / 3 });
    expect((await cache.store.health()).ok).toBe(true);

    await cache.use('null');
    expect(cache.status()).toMatchObject({ enabled: false, implName: 'null', hits: 0 });
    await cache.get(ns, '2');
    expect(loads).toBe(2);
    await cache.close();
  });
});

describe('metrics', () => {
  it('counts a hit only when it is one, per tier and namespace, and exposes L1 size and durations', async () => {
    const cache = createCache({
      impl: 'tiered',
      redis: { mode: 'single', url: server.url },
      prefix: 'reg-m:',
    });
    await cache.start();
    const cold = createCache({
      impl: 'tiered',
      redis: { mode: 'single', url: server.url },
      prefix: 'reg-m:',
    });
    await cold.start();

    await cache.get(ns, '10'); // L1 miss, L2 miss, load
    await cache.get(ns, '10'); // L1 hit
    await cold.get(ns, '10'); // L1 miss, L2 hit
    await cold.get(ns, '404x'); // Number('404x') is NaN: fails z.number() → invalid input, not a hit

    const t1 = await cache.metrics.metrics();
    expect(
      metricValue(
        t1,
        'cachefleet_cache_requests_total{impl="tiered",tier="l1",namespace="reg",result="hit"}',
      ),
    ).toBe(1);
    expect(
      metricValue(
        t1,
        'cachefleet_cache_requests_total{impl="tiered",tier="l2",namespace="reg",result="hit"}',
      ),
    ).toBe(0);
    expect(
      metricValue(
        t1,
        'cachefleet_cache_requests_total{impl="tiered",tier="l1",namespace="reg",result="miss"}',
      ),
    ).toBe(1);
    expect(
      metricValue(
        t1,
        'cachefleet_cache_requests_total{impl="tiered",tier="l2",namespace="reg",result="miss"}',
      ),
    ).toBe(1);
    expect(metricValue(t1, 'cachefleet_cache_loader_calls_total{impl="tiered",namespace="reg"}')).toBe(1);
    expect(metricValue(t1, 'cachefleet_cache_sets_total{impl="tiered",namespace="reg"}')).toBe(1);
    expect(metricValue(t1, 'cachefleet_cache_l1_entries')).toBe(1);
    expect(metricValue(t1, 'cachefleet_cache_enabled{impl="tiered"}')).toBe(1);
    expect(metricValue(t1, 'cachefleet_cache_lookup_duration_seconds_count{tier="l2",namespace="reg"}')).toBe(
      1,
    );
    expect(metricValue(t1, 'cachefleet_cache_lookup_duration_seconds_count{tier="l3",namespace="reg"}')).toBe(
      1,
    );

    const t2 = await cold.metrics.metrics();
    expect(
      metricValue(
        t2,
        'cachefleet_cache_requests_total{impl="tiered",tier="l1",namespace="reg",result="hit"}',
      ),
    ).toBe(0);
    expect(
      metricValue(
        t2,
        'cachefleet_cache_requests_total{impl="tiered",tier="l2",namespace="reg",result="hit"}',
      ),
    ).toBe(1);
    expect(metricValue(t2, 'cachefleet_cache_errors_total{impl="tiered",error_type="invalid_input"}')).toBe(
      1,
    );

    // A second scrape does not double-count.
    const t3 = await cache.metrics.metrics();
    expect(
      metricValue(
        t3,
        'cachefleet_cache_requests_total{impl="tiered",tier="l1",namespace="reg",result="hit"}',
      ),
    ).toBe(1);
    await cache.close();
    await cold.close();
  });

  it('samples L1 timings (1 in l1TimingSampleRate) instead of timing every hit', async () => {
    const cache = createCache({ impl: 'memory', l1TimingSampleRate: 16 });
    await cache.start();
    await cache.get(ns, '1');
    for (let i = 0; i < 160; i++) await cache.get(ns, '1');
    const text = await cache.metrics.metrics();
    expect(
      metricValue(text, 'cachefleet_cache_lookup_duration_seconds_count{tier="l1",namespace="reg"}'),
    ).toBe(10);
    expect(
      metricValue(
        text,
        'cachefleet_cache_requests_total{impl="memory",tier="l1",namespace="reg",result="hit"}',
      ),
    ).toBe(160);
    await cache.close();
  });

  it("records the age of each other pod's bus event when applied, not its own", async () => {
    const opts = { impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix: 'reg-b:' } as const;
    const a = createCache(opts);
    const b = createCache(opts);
    await Promise.all([a.start(), b.start()]);
    try {
      for (let i = 0; i < 5; i++) expect((await a.delete(ns, String(i))).ok).toBe(true);
      await waitUntil('b applied the five deletes', async () =>
        metricValue(await b.metrics.metrics(), 'cachefleet_cache_bus_lag_seconds_count') === 5
          ? true
          : undefined,
      );
      const text = await b.metrics.metrics();
      // Every one under a minute (the last bucket below +Inf), and the buckets are cumulative.
      expect(metricValue(text, 'cachefleet_cache_bus_lag_seconds_bucket{le="60"}')).toBe(5);
      expect(metricValue(text, 'cachefleet_cache_bus_lag_seconds_bucket{le="+Inf"}')).toBe(5);
      // a published them: its own events are skipped, not timed.
      expect(metricValue(await a.metrics.metrics(), 'cachefleet_cache_bus_lag_seconds_count')).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('counts L1 evictions under the entry limit', async () => {
    const cache = createCache({ impl: 'memory', l1: { maxEntries: 10 } });
    await cache.start();
    for (let i = 0; i < 25; i++) await cache.get(ns, String(i));
    const text = await cache.metrics.metrics();
    expect(metricValue(text, 'cachefleet_cache_l1_entries')).toBe(10);
    expect(metricValue(text, 'cachefleet_cache_l1_evictions_total')).toBe(15);
    await cache.close();
  });
});
