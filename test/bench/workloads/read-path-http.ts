/**
 * Issue 11 over HTTP: two API pods (`startApi`, in this process) on the bench's Redis and the run's
 * PostgreSQL, reached through a TCP proxy that the workload stops for OUTAGE_MS: the database is
 * down for 30 s under steady load. Product entries live 2 s (0.5 s in L1). One row with grace
 * (60 s, back-off 1 s, soft timeout 250 ms), one without; each counts the responses that were not
 * 200 during the outage (every id is read on every pod before the warm-up load, so every one was
 * seen within the grace window) and the
 * loader calls the pods made meanwhile (`cachefleet_cache_loader_calls_total`).
 */
import { randomBytes } from 'node:crypto';
import { type RunningApi, startApi } from '@cachefleet/api';
import { connectPg, migrate, seed } from '@cachefleet/catalogue';
import { pino } from 'pino';
import { startTcpProxy, testDatabaseUrl } from '../../helpers/index.js';
import { errorMessage, sleep } from '../data.js';
import { errorRow } from '../measure.js';
import type { Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'read-path-http';
const PODS = 2;
const PRODUCTS = 200;
const CALLERS = 16;
const WARM_MS = 5_000;
const OUTAGE_MS = 30_000;

async function loaderCalls(pods: readonly RunningApi[]): Promise<number> {
  let n = 0;
  for (const p of pods) {
    const text = await (await fetch(`${p.url}/metrics`)).text();
    for (const m of text.matchAll(
      /^cachefleet_cache_loader_calls_total\{[^}]*namespace="product"[^}]*\} (\d+)/gm,
    ))
      n += Number(m[1]);
  }
  return n;
}

async function drive(pods: readonly RunningApi[], until: number) {
  const counts = { total: 0, ok: 0, stale: 0, failed: 0, statuses: new Map<string, number>(), sample: '' };
  const fail = (what: string) => {
    counts.failed++;
    counts.statuses.set(what, (counts.statuses.get(what) ?? 0) + 1);
  };
  const caller = async (c: number) => {
    let i = c;
    while (performance.now() < until) {
      const pod = pods[i % pods.length] as RunningApi;
      const id = 1 + ((i * 7919) % PRODUCTS);
      i++;
      try {
        const res = await fetch(`${pod.url}/products/${id}`);
        const body = await res.text();
        counts.total++;
        if (res.status === 200) {
          counts.ok++;
          if (res.headers.get('warning') !== null) counts.stale++;
        } else {
          fail(String(res.status));
          if (counts.sample === '') counts.sample = body.slice(0, 120);
        }
      } catch (err) {
        counts.total++;
        fail(errorMessage(err));
      }
      await sleep(5);
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, (_, c) => caller(c)));
  return counts;
}

async function outage(ctx: WorkloadContext, label: string, grace: boolean): Promise<Row> {
  const tag = randomBytes(3).toString('hex');
  const schema = `rph_${tag}`;
  const databaseUrl = testDatabaseUrl();
  const db = connectPg(databaseUrl, { max: 2 });
  await migrate(db, { schema });
  await seed(db, { schema, count: PRODUCTS });
  const target = new URL(databaseUrl);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  const viaProxy = new URL(databaseUrl);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const redisUrl = `redis://127.0.0.1:${ctx.port}`;
  const pods: RunningApi[] = [];
  try {
    for (let i = 0; i < PODS; i++) {
      pods.push(
        await startApi(
          {
            API_PORT: '0',
            ADMIN_TOKEN: `bench-token-${tag}-0123456789abcdef`,
            DATABASE_URL: viaProxy.toString(),
            CATALOGUE_SCHEMA: schema,
            CACHE_REDIS_URL: redisUrl,
            QUEUE_REDIS_URL: redisUrl,
            CACHE_KEY_PREFIX: `${schema}:`,
            QUEUE_PREFIX: `q${schema}`,
            API_CRITICAL_WARM: 'false',
            CATALOGUE_TTL_L1: '0.5',
            CATALOGUE_TTL_L2: '2',
            CATALOGUE_GRACE_SECONDS: grace ? '60' : '0',
            CATALOGUE_GRACE_BACKOFF_SECONDS: '1',
            CATALOGUE_SOFT_TIMEOUT_MS: grace ? '250' : '0',
            CATALOGUE_HARD_TIMEOUT_MS: '0',
            CATALOGUE_EARLY_REFRESH: '0',
            CATALOGUE_TTL_SPREAD: '0',
          },
          pino({ level: 'silent' }),
        ),
      );
    }
    // Every product read once on every pod (the outage's target is keys seen within the grace
    // window), then steady load.
    for (const p of pods)
      for (let id = 1; id <= PRODUCTS; id++) await (await fetch(`${p.url}/products/${id}`)).arrayBuffer();
    await drive(pods, performance.now() + WARM_MS);
    await proxy.stop();
    const before = await loaderCalls(pods);
    const during = await drive(pods, performance.now() + OUTAGE_MS);
    const calls = (await loaderCalls(pods)) - before;
    return {
      workload: NAME,
      name: `database down ${OUTAGE_MS / 1000} s, ${PODS} API pods, ${label}`,
      role: 'project',
      opsPerSec: during.total / (OUTAGE_MS / 1000),
      extra:
        `non-200 responses ${during.failed}/${during.total}, stale 200s ${during.stale}, ` +
        `loader calls during the outage ${calls}` +
        (during.failed > 0 ? ` (${[...during.statuses].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''),
    };
  } finally {
    for (const p of pods) await p.close().catch(() => undefined);
    await proxy.stop();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await db.close();
  }
}

export const readPathHttp: Workload = {
  name: NAME,
  describe: 'PostgreSQL stopped for 30 s under HTTP load on 2 API pods, grace on vs off',
  async run(ctx) {
    const rows: Row[] = [];
    for (const [label, grace] of [
      ['no grace', false],
      ['grace 60 s + soft timeout 250 ms', true],
    ] as const) {
      ctx.log(`${NAME}: ${label}`);
      try {
        rows.push(await outage(ctx, label, grace));
      } catch (err) {
        rows.push(errorRow(NAME, label, 'project', errorMessage(err)));
      }
    }
    return rows;
  },
};
