/**
 * The servers of the `http` bench, in their own process so that autocannon (in the bench process)
 * does not share their event loop:
 *
 * - the API pod itself, started with `startApi` (the catalogue read through the tiered cache, every
 *   hook and metric of production, the admin routes);
 * - a bare Fastify app (no hooks, no logger) with `GET /constant`, a constant product-like JSON (the
 *   floor), and `GET /direct/:id`, the catalogue's own product query straight to PostgreSQL through
 *   the same `pg` pool settings as the API (`connectPg`, 4 connections): no cache at all.
 *
 * argv: one JSON object, `HttpChildConfig`.
 * stdout: `{"ready":true,"api":"http://…","bare":"http://…"}` once both listen.
 * stdin: its end closes both servers and their connections (the process exits).
 */
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { startApi } from '@cachefleet/api';
import { connectPg, type Db, productIdSchema } from '@cachefleet/catalogue';
import Fastify from 'fastify';
import { pino } from 'pino';
import { errorMessage } from './data.js';
import { fleetEnv, httpChildConfigSchema } from './workloads/http.js';

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

async function startBare(db: Db, schema: string): Promise<{ url: string; close(): Promise<void> }> {
  const app = Fastify({ logger: false });
  const byId = directQuery(schema);
  app.get('/constant', async () => CONSTANT_PRODUCT);
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
    const bare = await startBare(db, config.schema);
    try {
      process.stdout.write(`${JSON.stringify({ ready: true, api: api.url, bare: bare.url })}\n`);
      // Runs until the parent closes stdin.
      for await (const _ of createInterface({ input: process.stdin })) {
        // no commands: stdin only tells when to stop
      }
    } finally {
      await bare.close();
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
