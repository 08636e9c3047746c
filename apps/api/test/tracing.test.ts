/**
 * Traces through the API pod (docs/tracing.md), with the SDK the entry points start but spans kept in
 * memory: a route's span holds the cache read it made, and a job a route enqueued is processed by a
 * real worker in the same trace, its cache calls under the job's span. Real Redis, real PostgreSQL.
 */

import { installTestTracing, type ReadableSpan } from '@cachefleet/telemetry';
import { waitUntil } from '@cachefleet/test';
import { ATTR, SPAN } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startTestPod, type TestPod } from './harness.js';

// Before the pod is built: the cache, the queues and the routes look for a provider once.
const tracing = installTestTracing('cachefleet-api-test');
let pod: TestPod;
beforeAll(async () => {
  pod = await startTestPod({ worker: true, products: 20 });
});
afterAll(async () => {
  await pod?.close();
  await tracing.shutdown();
});
beforeEach(() => tracing.exporter.reset());

const spans = (): ReadableSpan[] => tracing.exporter.getFinishedSpans();
const named = (name: string): ReadableSpan[] => spans().filter((s) => s.name === name);
const one = (name: string): ReadableSpan => {
  const found = named(name);
  expect(found, name).toHaveLength(1);
  return found[0] as ReadableSpan;
};

/** The span ids from `span` up to its trace's root, as recorded. */
function ancestry(span: ReadableSpan): string[] {
  const byId = new Map(spans().map((s) => [s.spanContext().spanId, s]));
  const out: string[] = [];
  for (let p = span.parentSpanContext?.spanId; p !== undefined; p = byId.get(p)?.parentSpanContext?.spanId)
    out.push(p);
  return out;
}

describe('traces', () => {
  it('GET /products/:id: the route span holds the cache read, which holds the load', async () => {
    expect((await pod.call('/products/7')).status).toBe(200);
    const route = one('GET /products/:id');
    expect(route.attributes['http.route']).toBe('/products/:id');
    const read = one(SPAN.get);
    expect(read.attributes).toMatchObject({ [ATTR.namespace]: 'product', [ATTR.tier]: 'loader' });
    expect(read.spanContext().traceId).toBe(route.spanContext().traceId);
    expect(ancestry(read)).toContain(route.spanContext().spanId);
    expect(one(SPAN.load).parentSpanContext?.spanId).toBe(read.spanContext().spanId);

    tracing.exporter.reset();
    await pod.call('/products/7');
    expect(one(SPAN.get).attributes).toMatchObject({ [ATTR.tier]: 'l1', [ATTR.hit]: true });
  });

  it('a caller’s traceparent is continued; /metrics is not traced', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await pod.call('/products/8', { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(one('GET /products/:id').spanContext().traceId).toBe(traceId);
    tracing.exporter.reset();
    await pod.call('/metrics');
    expect(spans()).toEqual([]);
  });

  it('POST /cache/invalidate: the job is processed in the request’s trace, its delete under the job', async () => {
    const res = await pod.call('/cache/invalidate', {
      method: 'POST',
      token: true,
      body: { namespace: 'product', keys: ['1', '2'] },
    });
    expect(res.status).toBe(202);
    const { jobId } = z.object({ jobId: z.string() }).parse(res.json);
    const route = one('POST /cache/invalidate');
    const processed = await waitUntil('the job processed', async () =>
      spans().find((s) => s.name === 'process invalidate'),
    );
    // The worker's span continues the enqueue's trace (W3C context carried in the job).
    expect(processed.spanContext().traceId).toBe(route.spanContext().traceId);
    expect(one('add invalidate.invalidate').spanContext().traceId).toBe(route.spanContext().traceId);
    const done = await waitUntil('the job completed', async () => {
      const view = await pod.call(`/jobs/${jobId}`, { token: true });
      return z.object({ state: z.string() }).parse(view.json).state === 'completed' ? true : undefined;
    });
    expect(done).toBe(true);
    const del = one(SPAN.delete);
    expect(del.attributes).toMatchObject({ [ATTR.namespace]: 'product', [ATTR.ids]: 2 });
    expect(ancestry(del)).toContain(processed.spanContext().spanId);
  });
});
