import { formatError, issueMessage } from '@cachefleet/config';
import {
  invalidatePayloadOf,
  type JobClient,
  JobError,
  type JobName,
  type JobView,
  type PayloadInputOf,
  type PayloadOf,
  queueDown,
  readSlices,
  warmPayloadOf,
  withDeadline,
} from '@cachefleet/jobs';
import type { Cache } from '@cachefleet/tiered-cache';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { AdminGuard } from './auth.js';

interface AdminDeps {
  readonly cache: Cache;
  readonly jobs: JobClient;
  readonly production: boolean;
  readonly guard: AdminGuard;
  /** An enqueue keeps trying this long while the queue Redis is down or failing over (0: 503 at once), ms. */
  readonly enqueueWaitMs: number;
}

const namespaceName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/);

/** G2: exactly one of pattern, keys, tags, all (the payload builder says so); `scope` is where it applies. */
const invalidateBody = z.strictObject({
  namespace: namespaceName,
  pattern: z.string().min(1).max(256).optional(),
  keys: z.array(z.string().min(1).max(256)).min(1).max(100_000).optional(),
  tags: z.array(z.string().min(1).max(256)).min(1).max(1_000).optional(),
  all: z.literal(true).optional(),
  scope: z.literal('all_pods').default('all_pods'),
});

/** G3: `async: false` waits for the warm (at most `waitMs`) and answers its result. */
const prewarmBody = z.strictObject({
  type: z.enum(['critical', 'hot', 'all']),
  namespaces: z.array(namespaceName).max(100).optional(),
  top: z.number().int().min(1).max(100_000).optional(),
  async: z.boolean().default(true),
  waitMs: z.number().int().min(100).max(300_000).default(60_000),
});

/** An invalidation may list many ids (up to 100,000 in the payload): the one body allowed past 16 KiB. */
const INVALIDATE_BODY_LIMIT = 1024 * 1024;

const jobIdParams = z.strictObject({ id: z.string().min(1).max(200) });

/** `scope=fleet`: every process's snapshot, Redis INFO and `samples` random keys sized (0: none). */
const statsQuery = z.strictObject({
  scope: z.enum(['pod', 'fleet']).default('pod'),
  samples: z.coerce.number().int().min(0).max(10_000).default(200),
});

/**
 * The admin surface (G1–G3, A7): cache statistics, invalidations and prewarms as jobs, job state.
 * Every route needs the admin token; bodies are checked by zod with the field named in the 400.
 */
export function adminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const { cache, jobs } = deps;
  // Enqueues ride out a queue Redis that is down or failing over for up to enqueueWaitMs (same job
  // id on every attempt), so a failover is a slower 202, not a 503; 0 keeps the old refuse-at-once.
  const submit = <N extends JobName>(name: N, payload: PayloadInputOf<N>) =>
    deps.enqueueWaitMs > 0
      ? jobs.enqueue(name, payload, { retryMs: deps.enqueueWaitMs, attemptMs: QUEUE_BUDGET_MS })
      : queueCall(jobs, () => jobs.enqueue(name, payload));
  // The token is checked on request, before any body is read: a caller without one gets a 401,
  // not a 400/413/415 for a body the pod parsed first.
  const onRequest = deps.guard;
  app.get('/cache/stats', { onRequest }, async (req, reply) => {
    const query = parseQuery(statsQuery, req.query, reply);
    if (query === undefined) return reply;
    if (query.scope === 'fleet') {
      const fleet = await cache.fleetView(query.samples);
      if (!fleet.ok)
        return reply.code(503).send({
          error: 'cache_unavailable',
          message: `the fleet view is read from the cache Redis, which did not answer (${fleet.error.code})`,
        });
      return { scope: 'fleet', ...fleet.value };
    }
    const namespaces = cache.stats();
    const sum = (f: (s: (typeof namespaces)[number]) => number) => namespaces.reduce((a, s) => a + f(s), 0);
    const l1Hits = sum((s) => s.l1.hits);
    const l1Misses = sum((s) => s.l1.misses);
    const l2Hits = sum((s) => s.l2.hits);
    const l2Misses = sum((s) => s.l2.misses);
    const tiers = cache.tiers();
    return {
      status: cache.status(),
      tiers: {
        l1: { hits: l1Hits, misses: l1Misses, hitRate: rate(l1Hits, l1Misses), ...(tiers.l1 ?? {}) },
        l2: { hits: l2Hits, misses: l2Misses, hitRate: rate(l2Hits, l2Misses), ...(tiers.l2 ?? {}) },
        l3: { loads: sum((s) => s.loads) },
      },
      combined: { hitRate: rate(l1Hits + l2Hits, l2Misses) },
      namespaces,
    };
  });

  // The job client knows this pod's namespaces (server.ts): a request naming another, or ids its
  // id schema refuses, is a 400 naming the field before anything is enqueued, not a job that fails.
  app.post('/cache/invalidate', { onRequest, bodyLimit: INVALIDATE_BODY_LIMIT }, async (req, reply) => {
    const body = parse(invalidateBody, req.body, reply);
    const payload = body && checked(reply, jobs, 'invalidate', () => invalidatePayloadOf(body));
    if (payload === undefined) return reply;
    return enqueue(reply, () => submit('invalidate', payload));
  });

  app.post('/cache/prewarm', { onRequest }, async (req, reply) => {
    const body = parse(prewarmBody, req.body, reply);
    const payload = body && checked(reply, jobs, 'warm', () => warmPayloadOf(body));
    if (body === undefined || payload === undefined) return reply;
    if (body.async) return enqueue(reply, () => submit('warm', payload));
    let id: string;
    try {
      id = (await submit('warm', payload)).id;
    } catch (error) {
      return badJob(reply, error);
    }
    const done = await waitForJob(jobs, id, body.waitMs).catch(() => undefined);
    if (done === undefined || (done.state !== 'completed' && done.state !== 'failed'))
      return reply
        .code(202)
        .send({ jobId: id, state: done?.state ?? 'unknown', message: 'still running: follow GET /jobs/:id' });
    return reply
      .code(done.state === 'completed' ? 200 : 500)
      .send({ jobId: id, state: done.state, result: done.result, failedReason: done.failedReason });
  });

  app.get('/jobs/:id', { onRequest }, async (req, reply) => {
    const params = parse(jobIdParams, req.params, reply);
    if (params === undefined) return reply;
    try {
      const view = await queueCall(jobs, () => jobs.job(params.id));
      if (view === undefined)
        return reply.code(404).send({ error: 'not_found', message: `no job ${params.id}` });
      const slices = await queueCall(jobs, () => readSlices(jobs, view));
      return { ...view, children: slices?.children ?? [] };
    } catch (error) {
      return badJob(reply, error);
    }
  });

  // A7: the registry's status for operators; not served in production.
  if (!deps.production) {
    app.get('/internal/cache', { onRequest }, async () => cache.status());
  }
}

/** Longest an admin request waits for the queue Redis before answering 503, ms. */
const QUEUE_BUDGET_MS = 1_500;

/**
 * The queue connection queues commands while Redis is away (BullMQ needs that); a request must not
 * hang on it: refuse at once when disconnected, and give up after QUEUE_BUDGET_MS.
 */
/** A queue Redis call that fails at once while it is down, and within QUEUE_BUDGET_MS otherwise. */
export function queueCall<T>(jobs: JobClient, call: () => Promise<T>): Promise<T> {
  if (queueDown(jobs.connection.status))
    return Promise.reject(new JobError('E_JOB_QUEUE_UNAVAILABLE', 'the queue Redis is not connected'));
  return withDeadline(call(), QUEUE_BUDGET_MS);
}

async function enqueue(
  reply: FastifyReply,
  add: () => Promise<{ id: string; deduplicated: boolean }>,
): Promise<FastifyReply> {
  try {
    const r = await add();
    return reply.code(202).send({ jobId: r.id, deduplicated: r.deduplicated, follow: `/jobs/${r.id}` });
  } catch (error) {
    return badJob(reply, error);
  }
}

/**
 * The payload `build` makes, as the job client checks it (the catalogue and this pod's namespaces),
 * or undefined once the 400 naming the field is sent.
 */
function checked<N extends JobName>(
  reply: FastifyReply,
  jobs: JobClient,
  name: N,
  build: () => PayloadInputOf<N>,
): PayloadOf<N> | undefined {
  try {
    return jobs.check(name, build());
  } catch (error) {
    badJob(reply, error);
    return undefined;
  }
}

function badJob(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof JobError && error.code === 'E_JOB_INVALID_PAYLOAD')
    return reply.code(400).send({ error: 'invalid_body', message: formatError(error) });
  if (error instanceof JobError && error.code === 'E_JOB_QUEUE_UNAVAILABLE')
    return reply.code(503).send({ error: 'queue_unavailable', message: formatError(error) });
  throw error;
}

async function waitForJob(jobs: JobClient, id: string, waitMs: number): Promise<JobView | undefined> {
  const deadline = Date.now() + waitMs;
  let view = await jobs.job(id);
  while (
    view !== undefined &&
    view.state !== 'completed' &&
    view.state !== 'failed' &&
    Date.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 100));
    view = await jobs.job(id);
  }
  return view;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, reply: FastifyReply): z.output<S> | undefined {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  void reply.code(400).send({ error: 'invalid_body', message: issueMessage(r.error, { root: '(body)' }) });
  return undefined;
}

export { parse as parseBody };

function parseQuery<S extends z.ZodType>(
  schema: S,
  value: unknown,
  reply: FastifyReply,
): z.output<S> | undefined {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  void reply.code(400).send({ error: 'invalid_query', message: issueMessage(r.error, { root: '(query)' }) });
  return undefined;
}

function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses);
}
