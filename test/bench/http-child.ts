/**
 * The servers of the `http` bench, in their own process so that autocannon (in the bench process)
 * does not share their event loop:
 *
 * - the API pod itself, started with `startApi` (the catalogue read through the tiered cache, every
 *   hook and metric of production, the admin routes);
 * - a bare Fastify app (no hooks, no logger) with `GET /constant`, a constant product-like JSON (the
 *   floor); `GET /cached/:id`, the same `cache.get` of the catalogue's product as the API's route, on
 *   a cache of its own configured as the API's (same L2 keys), without the API's hooks, metrics and
 *   request ids (so the two rows tell the cache's cost from the pod's); `GET /cached-stats`, that
 *   cache's hits per tier; and `GET /direct/:id`, the catalogue's own product query straight to
 *   PostgreSQL through the same `pg` pool settings as the API (`connectPg`, 4 connections).
 *
 * argv: one JSON object, `HttpChildConfig`.
 * stdout: `{"ready":true,"api":"http://…","bare":"http://…"}` once both listen.
 * stdin: one command a line, each answered by one line on stdout (`httpChildCommandSchema`):
 * `{"cpu":true}` → `{"cpu":<µs of CPU this process used so far, user + system>}`;
 * `{"profile":"start"}` → `{"ok":true}` once V8's CPU profiler runs; `{"profile":"stop","file":…}`
 * → `{"ok":true}` once the profile is written there (a `.cpuprofile`, as `node --cpu-prof` writes).
 * Its end closes both servers and their connections (the process exits).
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { startApi } from '@cachefleet/api';
import { type Catalogue, connectPg, createCatalogue, type Db, productIdSchema } from '@cachefleet/catalogue';
import { type Cache, createCache, loadCacheConfig } from '@cachefleet/tiered-cache';
import Fastify from 'fastify';
import { type Logger, pino } from 'pino';
import { Registry } from 'prom-client';
import { errorMessage } from './data.js';
import { fleetEnv, httpChildCommandSchema, httpChildConfigSchema } from './workloads/http.js';

/** What the floor route answers: the shape and size of a seeded product. */
const CONSTANT_PRODUCT = Object.freeze({
  id: '4242',
  sku: 'SKU-00004242',
  name: 'Product 4242',
  category: 'cat-2',
  price_cents: 92497,
  stock: 2,
  updated_at: '2026-11-22T04:00:00.000Z',
});

/**
 * The catalogue's load query (libs/catalogue/src/product.ts, `PRODUCT_COLUMNS` and `byId`), copied:
 * the package does not export it and its internals may not be imported.
 */
function directQuery(schema: string): string {
  return `SELECT id::text AS id, sku, name, category, price_cents, stock,
  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at FROM "${schema}".products WHERE id = $1::bigint`;
}

interface Bare {
  readonly url: string;
  close(): Promise<void>;
}

async function startBare(db: Db, schema: string, cache: Cache, catalogue: Catalogue): Promise<Bare> {
  const app = Fastify({ logger: false });
  const byId = directQuery(schema);
  const product = catalogue.product;
  app.get('/constant', async () => CONSTANT_PRODUCT);
  app.get<{ Params: { id: string } }>('/cached/:id', async (req, reply) => {
    const r = await cache.get(product, req.params.id);
    if (!r.ok) return reply.code(503).send({ error: 'unavailable', message: r.error.message });
    if (r.value === undefined)
      return reply.code(404).send({ error: 'not_found', message: `no product ${req.params.id}` });
    return r.value;
  });
  app.get('/cached-stats', async () => {
    const all = cache.stats();
    const sum = (f: (s: (typeof all)[number]) => number) => all.reduce((a, s) => a + f(s), 0);
    return {
      tiers: {
        l1: { hits: sum((s) => s.l1.hits), misses: sum((s) => s.l1.misses) },
        l2: { hits: sum((s) => s.l2.hits), misses: sum((s) => s.l2.misses) },
        l3: { loads: sum((s) => s.loads) },
      },
    };
  });
  app.get<{ Params: { id: string } }>('/direct/:id', async (req, reply) => {
    const id = req.params.id;
    if (!productIdSchema.safeParse(id).success)
      return reply.code(400).send({ error: 'invalid_id', message: 'a positive integer id' });
    const { rows } = await db.query<Record<string, unknown>>(byId, [id]);
    const row = rows[0];
    if (row === undefined) return reply.code(404).send({ error: 'not_found', message: `no product ${id}` });
    return row;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

/** A cache as the API makes one (server.ts), over the catalogue on `db`. */
async function startCache(env: NodeJS.ProcessEnv, db: Db, schema: string, logger: Logger) {
  const cache = createCache(loadCacheConfig(env), { metricsRegistry: new Registry(), logger });
  const catalogue = createCatalogue({ db, schema });
  cache.register(...catalogue.namespaces);
  await cache.start();
  return { cache, catalogue };
}

/** V8's CPU profiler in this process, through the inspector (what `node --cpu-prof` uses). */
class Profiler {
  #session: Session | undefined;

  async start(): Promise<void> {
    if (this.#session !== undefined) throw new Error('the profiler already runs');
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    // 100 µs between samples: --cpu-prof's default is 1 ms, too coarse for a 10 s row.
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
    this.#session = session;
  }

  async stop(file: string): Promise<void> {
    const session = this.#session;
    if (session === undefined) throw new Error('the profiler does not run');
    this.#session = undefined;
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await writeFile(file, JSON.stringify(profile));
  }

  async close(): Promise<void> {
    this.#session?.disconnect();
    this.#session = undefined;
  }
}

async function command(line: string, profiler: Profiler): Promise<object> {
  const c = httpChildCommandSchema.parse(JSON.parse(line));
  if ('cpu' in c) {
    const { user, system } = process.cpuUsage();
    return { cpu: user + system };
  }
  if (c.profile === 'start') await profiler.start();
  else await profiler.stop(c.file);
  return { ok: true };
}

async function main(): Promise<void> {
  const config = httpChildConfigSchema.parse(JSON.parse(process.argv[2] ?? '{}'));
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const env: NodeJS.ProcessEnv = {
    ...fleetEnv(config),
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_TOKEN: config.adminToken,
    API_CRITICAL_WARM: 'false',
  };
  const api = await startApi(env, logger);
  const db = connectPg(config.databaseUrl, { onError: (e) => logger.warn({ err: e.message }, 'pg pool') });
  try {
    const { cache, catalogue } = await startCache(env, db, config.schema, logger);
    const bare = await startBare(db, config.schema, cache, catalogue).catch(async (err: unknown) => {
      await cache.close();
      throw err;
    });
    try {
      process.stdout.write(`${JSON.stringify({ ready: true, api: api.url, bare: bare.url })}\n`);
      // Runs until the parent closes stdin.
      const profiler = new Profiler();
      for await (const line of createInterface({ input: process.stdin })) {
        const answer = await command(line, profiler).catch((err: unknown) => ({ error: errorMessage(err) }));
        process.stdout.write(`${JSON.stringify(answer)}\n`);
      }
      await profiler.close();
    } finally {
      await bare.close();
      await cache.close();
    }
  } finally {
    await db.close();
    await api.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`http-child: ${errorMessage(err)}\n`);
  process.exitCode = 1;
});
