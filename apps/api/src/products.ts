import {
  type Catalogue,
  categorySchema,
  categorySummary,
  type Db,
  productPatchSchema,
  updateProduct,
} from '@cachefleet/catalogue';
import { formatError } from '@cachefleet/config';
import { cachefleetRoutes, responseNamespace } from '@cachefleet/fastify';
import type { Cache, FleetAck, Result, Staleness } from '@cachefleet/tiered-cache';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { z } from 'zod';
import { parseBody } from './admin.js';
import type { AdminGuard } from './auth.js';
import { sendJson } from './edge.js';
import type { Rollout, RolloutMetrics } from './rollout.js';

interface ProductDeps {
  readonly cache: Cache;
  readonly catalogue: Catalogue;
  readonly db: Db;
  /** Who reads through the cache (A8), and the per-cohort counter. */
  readonly rollout: Pick<Rollout, 'enabled'> & RolloutMetrics;
  readonly guard: AdminGuard;
}

const ID_PATTERN = '^[1-9][0-9]{0,17}$';
const idParams = z.strictObject({ id: z.string().regex(new RegExp(ID_PATTERN), 'a positive integer id') });
/**
 * The same check as `idParams`, compiled by Fastify (Ajv) once at start: the hot read checks its id
 * without zod; zod runs only on a refused id, to answer the same 400 message as the other routes.
 */
const idParamsSchema = {
  params: {
    type: 'object',
    properties: { id: { type: 'string', pattern: ID_PATTERN } },
    required: ['id'],
    additionalProperties: false,
  },
} as const;
const categoryParams = z.strictObject({ category: categorySchema });
const idsQuery = z.strictObject({
  ids: z
    .string()
    .regex(/^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,99}$/, 'up to 100 comma-separated positive integer ids'),
});

/**
 * PATCH's options: `?wait=fleet` answers only once every live pod has dropped the old row from its L1
 * (or the fleet wait timed out, CACHE_BUS_FLEET_WAIT_MS): read-your-writes on any pod after the 200.
 */
const patchQuery = z.strictObject({ wait: z.literal('fleet').optional() });

/**
 * The sample catalogue service: reads go through the tiered cache (or, for users outside the
 * rollout cohort, straight to the database); writes update the database and then invalidate.
 */
export function productRoutes(app: FastifyInstance, deps: ProductDeps): void {
  const { cache, catalogue, rollout } = deps;
  const product = catalogue.product;
  // A 5xx on these routes counts against the request's cohort (the rollout guard's error rate).
  // The cohort is worked out again only then: the hash is paid on errors, not on every request.
  // A callback hook, as the pod's others are: an async one costs a promise on every request.
  const countFailure = (req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (reply.statusCode >= 500)
      rollout.failed(product.name, rollout.enabled(product.name, userOf(req)) ? 'cache' : 'control');
    done();
  };

  app.get<{ Params: { id: string } }>(
    '/products/:id',
    { onResponse: countFailure, schema: idParamsSchema, attachValidation: true },
    async (req, reply) => {
      if (req.validationError !== undefined) return refuse(idParams, req.params, reply);
      const id = req.params.id;
      const viaCache = rollout.enabled(product.name, userOf(req));
      rollout.observe(product.name, viaCache ? 'cache' : 'control');
      const r = viaCache ? await cache.get(product, id) : await direct(() => product.load(id));
      if (!r.ok) {
        req.log.error({ err: formatError(r.error) }, 'product read failed');
        return reply
          .code(503)
          .send({ error: 'unavailable', message: 'the catalogue cannot be read right now' });
      }
      if (r.value === undefined)
        return reply.code(404).send({ error: 'not_found', message: `no product ${id}` });
      if (r.stale) markStale(reply, r.stale);
      // A cached value's JSON and ETag are made once per cached value, not once per request.
      return sendJson(reply, r.value);
    },
  );

  app.get('/products', { onResponse: countFailure }, async (req, reply) => {
    const query = parseBody(idsQuery, req.query, reply);
    if (query === undefined) return reply;
    const ids = query.ids.split(',');
    const viaCache = rollout.enabled(product.name, userOf(req));
    rollout.observe(product.name, viaCache ? 'cache' : 'control');
    const r = viaCache ? await cache.getMany(product, ids) : await direct(() => loadDirect(ids));
    if (!r.ok)
      return reply
        .code(503)
        .send({ error: 'unavailable', message: 'the catalogue cannot be read right now' });
    if (r.stale) markStale(reply, r.stale);
    return { items: r.value.filter((v) => v !== undefined) };
  });

  // Writes are admin-only in the sample: the point is the invalidation that follows them.
  app.patch('/products/:id', { onRequest: deps.guard }, async (req, reply) => {
    const params = parseBody(idParams, req.params, reply);
    if (params === undefined) return reply;
    const patch = parseBody(productPatchSchema, req.body, reply);
    if (patch === undefined) return reply;
    const query = parseBody(patchQuery, req.query ?? {}, reply);
    if (query === undefined) return reply;
    const updated = await updateProduct(deps.db, catalogue.schema, params.id, patch);
    if (updated === undefined)
      return reply.code(404).send({ error: 'not_found', message: `no product ${params.id}` });
    // Database first, then the cache: the tombstone fences fills that read the old row. The
    // summaries of the category it left and the one it is in changed too.
    const categories = [...new Set([updated.product.category, updated.previousCategory])].filter((c) =>
      summaries.isValidId(c),
    );
    const deletes: Result<unknown>[] = [];
    if (query.wait === 'fleet') {
      // Both at once: the answer waits for the slower fleet round, not for two in a row.
      const acks = await Promise.all([
        cache.delete(product, params.id, { wait: 'fleet' }),
        cache.delete(summaries, ...categories, { wait: 'fleet' }),
      ]);
      deletes.push(...acks);
      fleetHeaders(
        reply,
        acks.flatMap((a) => (a.ok ? [a.value.fleet] : [])),
      );
    } else deletes.push(await cache.delete(product, params.id), await cache.delete(summaries, ...categories));
    for (const d of deletes)
      if (!d.ok)
        req.log.warn(
          { err: formatError(d.error) },
          'invalidation after write failed (replayed when Redis is back)',
        );
    return updated.product;
  });

  // The category page: an aggregate of the source of truth, cached through the Fastify plugin
  // (@cachefleet/fastify) — the route's handler is the loader; no namespace code was written.
  const summaries = responseNamespace({ name: 'category-summary', ttl: { l1: 30, l2: 300 } });
  app.register(async (scope) => {
    await scope.register(cachefleetRoutes, {
      cache,
      namespace: summaries,
      key: (req) => categoryParams.safeParse(req.params).data?.category,
    });
    scope.get('/categories/:category/summary', async (req, reply) => {
      const params = parseBody(categoryParams, req.params, reply);
      if (params === undefined) return reply;
      return categorySummary(deps.db, catalogue.schema, params.category);
    });
  });

  /** The control cohort's batch read: the database, in the order asked. */
  async function loadDirect(ids: readonly string[]): Promise<(unknown | undefined)[]> {
    const found: ReadonlyMap<string, unknown> = product.loadMany ? await product.loadMany(ids) : new Map();
    return ids.map((id) => found.get(id));
  }
}

/**
 * A value served past its TTL because the database failed or was slow (the cache's grace):
 * `Age` says how old it is, `Warning: 110` that it is stale (RFC 7234 §5.5.1), and `no-store`
 * keeps edge caches from keeping it as if it were fresh.
 */
function markStale(reply: FastifyReply, stale: Staleness): void {
  reply.header('age', String(stale.ageSeconds));
  reply.header('warning', '110 - "Response is Stale"');
  reply.header('cache-control', 'no-store');
}

/** A value Fastify's schema refused: zod words the 400, as for every other route (the rare path). */
function refuse(schema: z.ZodType, value: unknown, reply: FastifyReply): FastifyReply {
  if (parseBody(schema, value, reply) !== undefined)
    // Ajv and zod disagree: never expected; refused all the same, with our own words.
    return reply.code(400).send({ error: 'invalid_body', message: '(body): invalid' });
  return reply;
}

/**
 * How the fleet acknowledged a `?wait=fleet` PATCH's invalidations: `cachefleet-fleet-acked:
 * <pods that answered>/<live pods>` (other pods holding an L1), and `cachefleet-fleet-missing` naming
 * those that did not answer in time (they are fenced: they drop the namespace's L1 when back).
 */
function fleetHeaders(reply: FastifyReply, acks: readonly FleetAck[]): void {
  const pods = new Set(acks.flatMap((a) => a.pods));
  const missing = new Set(acks.flatMap((a) => a.missing));
  reply.header('cachefleet-fleet-acked', `${pods.size - missing.size}/${pods.size}`);
  if (missing.size > 0) reply.header('cachefleet-fleet-missing', [...missing].sort().join(','));
}

/** The user a request is for (rollout bucket); anonymous requests have none. */
function userOf(req: FastifyRequest): string | undefined {
  const h = req.headers['x-user-id'];
  return typeof h === 'string' && h.length > 0 && h.length <= 128 ? h : undefined;
}

async function direct<T>(
  load: () => Promise<T>,
): Promise<{ ok: true; value: T; stale?: undefined } | { ok: false; error: Error }> {
  try {
    return { ok: true, value: await load() };
  } catch (error) {
    return { ok: false, error: error as Error };
  }
}
