/**
 * How much of the constant-JSON floor a route that reads through the cache can reach at all, with
 * none of the API pod's own work: the ceiling under issue 15's pod targets (docs/benchmarks.md,
 * "HTTP"). No database: the product-shaped values come from a loader that makes them.
 *
 *   node --import tsx scripts/route-ceiling.ts [seconds] [rounds]     (default 8 s, 3 rounds)
 *
 * A private `redis-server` (the tests' `startRedis`: a free port, no persistence, removed at the end) and, in a child process
 * (this file with `--server`), one bare Fastify app (no hooks, no logger) with four routes:
 * - `GET /constant`: a constant product-like object (the http bench's floor);
 * - `GET /map/:id`: the product from a `Map` of 100,000 frozen objects (a route parameter and a
 *   lookup, no cache library);
 * - `GET /full/:id`: `cache.get` on a tiered cache whose L1 holds all 100,000 (filled before the
 *   load: every read an L1 hit);
 * - `GET /default/:id`: `cache.get` on a tiered cache with the default L1 (10,000 entries) over
 *   the same Redis keys (the http bench's bare `cache.get` route: about a quarter of reads are L2
 *   hits under this Zipf law).
 * autocannon (in this process) drives 64 connections with Zipf (s = 1) ids over 100,000, the same
 * draws as the http bench; each round runs the four routes in turn. Prints req/s per round, then
 * each route's median over the rounds as a ratio to the constant route's.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { createCache, defineNamespace } from '@cachefleet/tiered-cache';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { z } from 'zod';
import { zipfIds } from '../test/bench/workloads/http.js';
import { startRedis } from '../test/helpers/index.js';

const ITEMS = 100_000;
const CONNECTIONS = 64;
const ROUTES = ['/constant', '/map', '/full', '/default'] as const;

const productSchema = z.object({
  id: z.string(),
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  price_cents: z.number().int(),
  stock: z.number().int(),
  updated_at: z.string(),
});
type Product = z.output<typeof productSchema>;

function product(id: string): Product {
  return {
    id,
    sku: `SKU-${id.padStart(8, '0')}`,
    name: `Product ${id}`,
    category: 'cat-2',
    price_cents: 92497,
    stock: 2,
    updated_at: '2026-11-22T04:00:00.000Z',
  };
}

async function server(redisPort: number): Promise<void> {
  const redis = { mode: 'single', url: `redis://127.0.0.1:${redisPort}` } as const;
  const definition = {
    name: 'product',
    version: 1,
    ttl: { l1: 3_600, l2: 3_600 },
    schema: productSchema,
    load: async (id: string) => product(id),
    immutable: true,
  };
  const full = createCache({ impl: 'tiered', redis, prefix: 'ceiling:', l1: { maxEntries: 2 * ITEMS } });
  const bounded = createCache({ impl: 'tiered', redis, prefix: 'ceiling:' });
  const fullNs = defineNamespace(definition);
  const boundedNs = defineNamespace(definition);
  full.register(fullNs);
  bounded.register(boundedNs);
  await Promise.all([full.start(), bounded.start()]);
  const ids = Array.from({ length: ITEMS }, (_, i) => String(i + 1));
  for (let at = 0; at < ids.length; at += 1_000) {
    const r = await full.getMany(fullNs, ids.slice(at, at + 1_000));
    if (!r.ok) throw r.error;
  }
  const map = new Map(ids.map((id) => [id, Object.freeze(product(id))]));
  const constant = Object.freeze(product('4242'));
  const app = Fastify({ logger: false });
  app.get('/constant', async () => constant);
  app.get<{ Params: { id: string } }>('/map/:id', async (req, reply) => {
    const value = map.get(req.params.id);
    return value ?? reply.code(404).send({ error: 'not_found' });
  });
  for (const [path, cache, ns] of [
    ['/full', full, fullNs],
    ['/default', bounded, boundedNs],
  ] as const) {
    app.get<{ Params: { id: string } }>(`${path}/:id`, async (req, reply) => {
      const r = await cache.get(ns, req.params.id);
      if (!r.ok || r.value === undefined) return reply.code(503).send({ error: 'unavailable' });
      return r.value;
    });
  }
  app.get('/l1', async () => ({
    full: full.stats().map((s) => s.l1),
    default: bounded.stats().map((s) => s.l1),
  }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  process.stdout.write(`${(app.server.address() as AddressInfo).port}\n`);
}

async function main(): Promise<void> {
  const [seconds, rounds] = z
    .tuple([
      z.coerce.number().int().min(1).max(120).default(8),
      z.coerce.number().int().min(1).max(20).default(3),
    ])
    .parse([process.argv[2], process.argv[3]]);
  const draws = zipfIds(ITEMS, 400_000);
  const redisServer = await startRedis();
  const redisPort = redisServer.port;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', new URL(import.meta.url).pathname, '--server', String(redisPort)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const first = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
    const base = `http://127.0.0.1:${z.coerce.number().int().positive().parse(first.value)}`;
    let next = 0;
    const load = async (route: string, duration: number) => {
      const r = await autocannon({
        url: base,
        connections: CONNECTIONS,
        duration,
        requests: [
          {
            method: 'GET',
            setupRequest: (req) => {
              const id = draws[next] ?? 1;
              next = next + 1 === draws.length ? 0 : next + 1;
              return { ...req, path: route === '/constant' ? route : `${route}/${id}` };
            },
          },
        ],
      });
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${route}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { rps: r.requests.average, p99: r.latency.p99 };
    };
    for (const route of ROUTES) await load(route, 3); // warm-up: JIT, connections, the default L1
    const rps = new Map<string, number[]>(ROUTES.map((r) => [r, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const route of round % 2 === 1 ? ROUTES : [...ROUTES].reverse()) {
        const r = await load(route, seconds);
        rps.get(route)?.push(r.rps);
        process.stdout.write(
          `round ${round} ${route.padEnd(9)} ${Math.round(r.rps).toLocaleString('en-US')} req/s, p99 ${r.p99} ms\n`,
        );
      }
    }
    const median = (xs: readonly number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1] ?? 0;
    const floor = median(rps.get('/constant') ?? []);
    for (const route of ROUTES) {
      const m = median(rps.get(route) ?? []);
      process.stdout.write(
        `${route.padEnd(9)} median ${Math.round(m).toLocaleString('en-US')} req/s, ${(m / floor).toFixed(2)}× /constant\n`,
      );
    }
    process.stdout.write(`L1 ${JSON.stringify(await (await fetch(`${base}/l1`)).json())}\n`);
  } finally {
    child.kill('SIGKILL');
    await redisServer.stop();
  }
}

if (process.argv[2] === '--server') await server(Number(process.argv[3]));
else await main();
