import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { bucketOf, createRollout, rolloutMetrics, rolloutOptionsFromEnv } from '../src/rollout.js';

const USERS = 100_000;
const userIds = Array.from({ length: USERS }, (_, i) => `user-${i}`);

function share(namespace: string, percentage: number): number {
  const rollout = createRollout({ percentages: { [namespace]: percentage } });
  let inCache = 0;
  for (const id of userIds) if (rollout.enabled(namespace, id)) inCache++;
  return inCache / USERS;
}

const ROLLOUT_ERROR = expect.objectContaining({ name: 'ApiError', code: 'E_API_ROLLOUT_CONFIG' });

describe('createRollout: cohorts', () => {
  it('puts a user in the same cohort on every call and in every instance', () => {
    const a = createRollout({ percentages: { product: 10 } });
    const b = createRollout({ percentages: { product: 10 } });
    for (const id of userIds.slice(0, 2_000)) {
      const first = a.cohort('product', id);
      expect(a.cohort('product', id)).toBe(first);
      expect(b.cohort('product', id)).toBe(first);
      expect(a.enabled('product', id)).toBe(first === 'cache');
    }
  });

  it('hashes the first 4 bytes of sha1("namespace:userId") into 100 buckets', () => {
    // Pinned (sha1 prefixes computed outside the code): changing the hash reshuffles every cohort,
    // so it must be a visible decision, not an accident.
    expect(bucketOf('product', 'user-1')).toBe(0xd93be744 % 100);
    expect(bucketOf('product', '42')).toBe(0x35bd2a5c % 100);
    expect(bucketOf('category', 'user-1')).toBe(0x8910422b % 100);
    for (const id of userIds.slice(0, 1_000)) {
      const bucket = bucketOf('product', id);
      expect(Number.isInteger(bucket) && bucket >= 0 && bucket < 100).toBe(true);
    }
  });

  it.each([10, 50])('gives %i percent of 100,000 users the cache, within one point', (percentage) => {
    const observed = share('product', percentage);
    expect(Math.abs(observed - percentage / 100)).toBeLessThanOrEqual(0.01);
  });

  it('gives nobody the cache at 0% and everybody at 100%, anonymous requests included', () => {
    expect(share('product', 0)).toBe(0);
    expect(share('product', 100)).toBe(1);
    const rollout = createRollout({ percentages: { off: 0, on: 100 }, anonymous: 'cache' });
    expect(rollout.cohort('off')).toBe('control');
    expect(createRollout({ percentages: { on: 100 } }).cohort('on')).toBe('cache');
  });

  it('never takes the cache away from a user when the percentage rises (10 → 50 → 100)', () => {
    const at10 = createRollout({ percentages: { product: 10 } });
    const at50 = createRollout({ percentages: { product: 50 } });
    const at100 = createRollout({ percentages: { product: 100 } });
    let early = 0;
    for (const id of userIds) {
      if (!at10.enabled('product', id)) continue;
      early++;
      expect(at50.enabled('product', id)).toBe(true);
      expect(at100.enabled('product', id)).toBe(true);
    }
    expect(early).toBeGreaterThan(9_000);
  });

  it('takes a stored stage live: set() overrides the env value, the same users as a fresh plan', () => {
    const live = createRollout({ percentages: { product: 50 }, default: 100 });
    const at10 = createRollout({ percentages: { product: 10 } });
    live.set('product', 10);
    expect(live.percentage('product')).toBe(10);
    for (const id of userIds.slice(0, 5_000))
      expect(live.enabled('product', id)).toBe(at10.enabled('product', id));
    live.set('category', 0); // an unlisted namespace too
    expect(live.cohort('category', 'u1')).toBe('control');
    for (const bad of [-1, 101, 10.5, Number.NaN])
      expect(() => live.set('product', bad), String(bad)).toThrow(/createRollout: percent/);
    expect(() => live.set('Product!', 10)).toThrow(/namespace/);
    expect(live.percentage('product')).toBe(10);
  });

  it('draws a separate sample per namespace', () => {
    const rollout = createRollout({ percentages: { product: 10, category: 10 } });
    let both = 0;
    for (const id of userIds) if (rollout.enabled('product', id) && rollout.enabled('category', id)) both++;
    // Independent draws overlap on ~1% of users; one shared sample would overlap on 10%.
    expect(both / USERS).toBeLessThan(0.02);
  });

  it('sends requests without a user id to control while a rollout is partial, unless told otherwise', () => {
    const byDefault = createRollout({ percentages: { product: 50 } });
    expect(byDefault.cohort('product')).toBe('control');
    expect(byDefault.cohort('product', '')).toBe('control');
    const eager = createRollout({ percentages: { product: 50 }, anonymous: 'cache' });
    expect(eager.enabled('product')).toBe(true);
  });

  it('applies the default percentage (100 unless set) to namespaces it does not list', () => {
    const open = createRollout({ percentages: { product: 10 } });
    expect(open.percentage('category')).toBe(100);
    expect(open.enabled('category', 'user-1')).toBe(true);
    const closed = createRollout({ percentages: { product: 10 }, default: 0 });
    expect(closed.percentage('category')).toBe(0);
    expect(closed.enabled('category', 'user-1')).toBe(false);
    expect(closed.percentage('product')).toBe(10);
  });

  it('rejects percentages outside 0..100, fractions and bad namespace names, naming the field', () => {
    expect(() => createRollout({ percentages: { product: 101 } })).toThrow(
      /createRollout: percentages\.product:/,
    );
    expect(() => createRollout({ percentages: { product: 12.5 } })).toThrow(ROLLOUT_ERROR);
    expect(() => createRollout({ percentages: {}, default: -1 })).toThrow(/createRollout: default:/);
    expect(() => createRollout({ percentages: { 'Bad Name': 10 } })).toThrow(/createRollout: percentages/);
  });
});

describe('rolloutOptionsFromEnv', () => {
  it('reads CACHE_ROLLOUT entries, * as the default and CACHE_ROLLOUT_ANONYMOUS', () => {
    expect(
      rolloutOptionsFromEnv({
        CACHE_ROLLOUT: ' product=10, category=100 ,*=0',
        CACHE_ROLLOUT_ANONYMOUS: 'cache',
      }),
    ).toEqual({ percentages: { product: 10, category: 100 }, default: 0, anonymous: 'cache' });
  });

  it('treats unset or empty variables as no rollout: everything at 100%, anonymous in control', () => {
    for (const env of [{}, { CACHE_ROLLOUT: '' }, { CACHE_ROLLOUT: '  ', CACHE_ROLLOUT_ANONYMOUS: '' }]) {
      const options = rolloutOptionsFromEnv(env);
      expect(options).toEqual({ percentages: {}, anonymous: 'control' });
      expect(createRollout(options).percentage('product')).toBe(100);
    }
  });

  it.each([
    ['product', /^CACHE_ROLLOUT: "product": expected namespace=percent/],
    ['product=abc', /^CACHE_ROLLOUT: "product=abc":/],
    ['product=10,category=101', /^CACHE_ROLLOUT: "category=101": percent must be 0\.\.100/],
    ['product=1.5', /^CACHE_ROLLOUT: "product=1\.5":/],
    ['product=-5', /^CACHE_ROLLOUT: "product=-5":/],
    ['Product=10', /^CACHE_ROLLOUT: "Product=10":/],
    ['product=10,product=20', /^CACHE_ROLLOUT: product is listed twice/],
  ])('rejects CACHE_ROLLOUT=%s with an error naming the variable', (value, message) => {
    expect(() => rolloutOptionsFromEnv({ CACHE_ROLLOUT: value })).toThrow(message);
    expect(() => rolloutOptionsFromEnv({ CACHE_ROLLOUT: value })).toThrow(ROLLOUT_ERROR);
  });

  it('rejects a bad CACHE_ROLLOUT_ANONYMOUS naming it', () => {
    expect(() => rolloutOptionsFromEnv({ CACHE_ROLLOUT_ANONYMOUS: 'maybe' })).toThrow(
      /^CACHE_ROLLOUT_ANONYMOUS:/,
    );
  });
});

describe('rolloutMetrics', () => {
  it('counts requests by namespace and cohort on the registry it is given', async () => {
    const registry = new Registry();
    const metrics = rolloutMetrics(registry);
    const rollout = createRollout({ percentages: { product: 50 } });
    const expected = { cache: 0, control: 0 };
    for (const id of userIds.slice(0, 1_000)) {
      const cohort = rollout.cohort('product', id);
      metrics.observe('product', cohort);
      expected[cohort]++;
    }
    metrics.observe('category', 'control');
    const values = (await registry.getSingleMetric('cachefleet_rollout_requests_total')?.get())?.values ?? [];
    const value = (namespace: string, cohort: string) =>
      values.find((v) => v.labels.namespace === namespace && v.labels.cohort === cohort)?.value;
    expect(value('product', 'cache')).toBe(expected.cache);
    expect(value('product', 'control')).toBe(expected.control);
    expect(value('category', 'control')).toBe(1);
    expect(expected.cache).toBeGreaterThan(0);
    expect(expected.control).toBeGreaterThan(0);
  });
});
