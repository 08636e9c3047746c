/**
 * The sample API with the cache's grace and soft timeout (issue 11), against the run's real
 * PostgreSQL reached through a TCP proxy the test can stop: with the database down, products whose
 * cache entry expired within its grace are 200 with `Age` and `Warning: 110`, others 503; with the
 * products table locked (a slow database), reads are served stale at the soft timeout and the one
 * load fills the cache when the lock goes.
 */
import { connectPg } from '@cachefleet/catalogue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delay, startTcpProxy, type TcpProxy, waitUntil } from '../../../test/helpers/index.js';
import { DATABASE_URL, startTestPod, type TestPod } from './harness.js';

let pod: TestPod;
let proxy: TcpProxy;
/** Product TTL 0.5 s in Redis, kept 4 s longer; the loader is retried 0.3 s after a failure. */
const TTL_MS = 500;
const GRACE_MS = 4_000;

beforeAll(async () => {
  const target = new URL(DATABASE_URL);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  const viaProxy = new URL(DATABASE_URL);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  pod = await startTestPod({
    products: 50,
    env: {
      DATABASE_URL: viaProxy.toString(),
      CATALOGUE_TTL_L1: '0.2',
      CATALOGUE_TTL_L2: String(TTL_MS / 1000),
      CATALOGUE_GRACE_SECONDS: String(GRACE_MS / 1000),
      CATALOGUE_GRACE_BACKOFF_SECONDS: '0.3',
      CATALOGUE_SOFT_TIMEOUT_MS: '150',
      CATALOGUE_HARD_TIMEOUT_MS: '10000',
      CATALOGUE_EARLY_REFRESH: '0',
      CATALOGUE_TTL_SPREAD: '0',
    },
  });
}, 60_000);

afterAll(async () => {
  await proxy?.start();
  await pod?.close();
  await proxy?.stop();
});

describe('database down', () => {
  it('expired products within grace are 200 with Age and Warning; never-cached ones and those past grace are 503', async () => {
    const first = await pod.call('/products/1');
    expect(first.status).toBe(200);
    expect(first.headers.get('warning')).toBeNull();
    const loadedAt = Date.now();
    await delay(TTL_MS + 300);

    await proxy.stop();
    const stale = await pod.call('/products/1');
    expect(stale.status).toBe(200);
    expect(stale.json).toEqual(first.json);
    expect(stale.headers.get('warning')).toBe('110 - "Response is Stale"');
    expect(Number(stale.headers.get('age'))).toBeGreaterThanOrEqual(0);
    expect(stale.headers.get('cache-control')).toBe('no-store');

    const never = await pod.call('/products/2');
    expect(never.status).toBe(503);
    expect(never.json).toEqual({ error: 'unavailable', message: 'the catalogue cannot be read right now' });

    const metrics = await pod.call('/metrics');
    expect(metrics.text).toMatch(/cachefleet_cache_stale_served_total\{namespace="product"\} [1-9]/);

    // Past the grace the entry is gone from Redis and L1: 503.
    await delay(Math.max(0, loadedAt + TTL_MS + GRACE_MS + 300 - Date.now()));
    const gone = await pod.call('/products/1');
    expect(gone.status).toBe(503);

    await proxy.start();
    const back = await waitUntil('the database to answer again', async () => {
      const r = await pod.call('/products/1');
      return r.status === 200 ? r : undefined;
    });
    expect(back.headers.get('warning')).toBeNull();
  }, 30_000);

  it('an invalidated product is not served stale when the database is down', async () => {
    expect((await pod.call('/products/5')).status).toBe(200);
    await delay(TTL_MS + 300);
    const r = await pod.call('/products/5', { method: 'PATCH', token: true, body: { stock: 7 } });
    expect(r.status).toBe(200);
    await proxy.stop();
    try {
      // The PATCH invalidated the cached row: a stale copy must not come back.
      expect((await pod.call('/products/5')).status).toBe(503);
    } finally {
      await proxy.start();
    }
  }, 30_000);
});

describe('slow database', () => {
  it('a read slower than the soft timeout is served stale; the one load fills the cache when it ends', async () => {
    const first = await pod.call('/products/9');
    expect(first.status).toBe(200);
    await delay(TTL_MS + 300);
    // Lock the table: the loader's SELECT waits until the transaction ends (a slow query). One
    // connection (max 1), so BEGIN, LOCK and COMMIT run in the same session.
    const tx = connectPg(DATABASE_URL, { max: 1 });
    await tx.query('BEGIN');
    try {
      await tx.query(`LOCK TABLE "${pod.schema}".products IN ACCESS EXCLUSIVE MODE`);
      const reads = await Promise.all(Array.from({ length: 5 }, () => pod.call('/products/9')));
      for (const r of reads) {
        expect(r.status).toBe(200);
        expect(r.headers.get('warning')).toBe('110 - "Response is Stale"');
        expect(r.json).toEqual(first.json);
      }
    } finally {
      await tx.query('COMMIT');
      await tx.close();
    }
    const fresh = await waitUntil('the background load to fill the cache', async () => {
      const r = await pod.call('/products/9');
      return r.status === 200 && r.headers.get('warning') === null ? r : undefined;
    });
    expect(fresh.json).toEqual(first.json);
  }, 30_000);
});
