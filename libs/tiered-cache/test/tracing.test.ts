/**
 * Spans of the cache with an in-memory exporter (docs/tracing.md): which tier answered a read,
 * the loader as a child span, the fleet lock's wait, and nothing at all without a tracer provider.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { delay, startRedis, waitUntil } from '../../../test/helpers/index.js';
import {
  ATTR,
  type Cache,
  type CacheDeps,
  createCache,
  defineNamespace,
  SPAN,
  tracerProviderRegistered,
} from '../src/index.js';

const server = await startRedis();
let seq = 0;
const caches: Cache[] = [];
afterAll(async () => {
  await Promise.all(caches.map((c) => c.close()));
  await server.stop();
  trace.disable();
  context.disable();
});

async function newCache(prefix = `tr${++seq}:`, deps: CacheDeps = {}): Promise<Cache> {
  const cache = createCache({ impl: 'tiered', redis: { mode: 'single', url: server.url }, prefix }, deps);
  await cache.start();
  caches.push(cache);
  return cache;
}

const Row = z.object({ id: z.string(), n: z.number() });
type Row = z.infer<typeof Row>;
const source = { slowMs: 0, fail: false, calls: 0 };
const rows = defineNamespace<Row>({
  name: 'rows',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: Row,
  load: async (id) => {
    source.calls++;
    if (source.slowMs > 0) await delay(source.slowMs);
    if (source.fail) throw new Error('database is down');
    return { id, n: Number(id) };
  },
  loadMany: async (ids) => new Map(ids.map((id) => [id, { id, n: Number(id) }])),
});

const exporter = new InMemorySpanExporter();
beforeEach(() => {
  exporter.reset();
  source.slowMs = 0;
  source.fail = false;
  source.calls = 0;
});

const named = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);
const only = (name: string): ReadableSpan => {
  const spans = named(name);
  expect(spans, name).toHaveLength(1);
  return spans[0] as ReadableSpan;
};

describe('without a tracer provider', () => {
  it('builds an untraced cache: its get is the class method, no span is made', async () => {
    expect(tracerProviderRegistered()).toBe(false);
    const cache = await newCache();
    expect(Object.hasOwn(cache, 'get')).toBe(false);
    expect((await cache.get(rows, '1')).ok).toBe(true);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});

describe('with a tracer provider', () => {
  it('is registered from here on', () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    expect(tracerProviderRegistered()).toBe(true);
  });

  it('a load, then an L1 hit, then an L2 hit from another pod: the tier of each read', async () => {
    const prefix = `tr${++seq}:`;
    const a = await newCache(prefix);
    await trace.getTracer('test').startActiveSpan('route', async (route) => {
      expect((await a.get(rows, '7')).ok).toBe(true);
      route.end();
    });
    const route = only('route');
    const read = only(SPAN.get);
    expect(read.attributes).toMatchObject({
      [ATTR.namespace]: 'rows',
      [ATTR.id]: '7',
      [ATTR.tier]: 'loader',
      [ATTR.hit]: false,
    });
    // The read belongs to the caller's trace, and the loader's call to the read.
    expect(read.spanContext().traceId).toBe(route.spanContext().traceId);
    expect(read.parentSpanContext?.spanId).toBe(route.spanContext().spanId);
    const load = only(SPAN.load);
    expect(load.parentSpanContext?.spanId).toBe(read.spanContext().spanId);
    expect(load.attributes).toMatchObject({ [ATTR.namespace]: 'rows', [ATTR.id]: '7' });

    exporter.reset();
    await a.get(rows, '7');
    expect(only(SPAN.get).attributes).toMatchObject({ [ATTR.tier]: 'l1', [ATTR.hit]: true });
    expect(named(SPAN.load)).toEqual([]);

    exporter.reset();
    const b = await newCache(prefix);
    await b.get(rows, '7');
    expect(only(SPAN.get).attributes).toMatchObject({ [ATTR.tier]: 'l2', [ATTR.hit]: true });
    expect(named(SPAN.load)).toEqual([]);
  });

  it('a read that waited for another pod’s load: tier l2, with the lock wait', async () => {
    const prefix = `tr${++seq}:`;
    const a = await newCache(prefix);
    const b = await newCache(prefix);
    source.slowMs = 300;
    const first = a.get(rows, '9');
    // a holds the fleet lock once its loader runs: b can only wait for it.
    await waitUntil('a loads', async () => (source.calls > 0 ? true : undefined));
    await b.get(rows, '9');
    await first;
    const reads = named(SPAN.get);
    expect(reads.map((s) => s.attributes[ATTR.tier]).sort()).toEqual(['l2', 'loader']);
    const waiter = reads.find((s) => s.attributes[ATTR.tier] === 'l2') as ReadableSpan;
    expect(waiter.attributes[ATTR.lockWaitMs]).toBeGreaterThan(0);
    expect(named(SPAN.load)).toHaveLength(1);
  });

  it('getMany counts the ids each tier answered; delete and invalidations have their spans', async () => {
    const prefix = `tr${++seq}:`;
    const a = await newCache(prefix);
    await a.get(rows, '1');
    const b = await newCache(prefix);
    await b.get(rows, '2');
    exporter.reset();
    expect((await b.getMany(rows, ['1', '2', '3'])).ok).toBe(true);
    expect(only(SPAN.getMany).attributes).toMatchObject({
      [ATTR.ids]: 3,
      [ATTR.tier]: 'loader',
      [ATTR.l1Hits]: 1,
      [ATTR.l2Hits]: 1,
      [ATTR.loaded]: 1,
    });
    expect(only(SPAN.load).attributes).toMatchObject({ [ATTR.ids]: 1 });

    exporter.reset();
    await b.getMany(rows, ['1', '2']);
    expect(only(SPAN.getMany).attributes).toMatchObject({ [ATTR.tier]: 'l1', [ATTR.l1Hits]: 2 });

    exporter.reset();
    expect((await b.delete(rows, '1', '2')).ok).toBe(true);
    expect((await b.invalidateNamespace(rows)).ok).toBe(true);
    expect(only(SPAN.delete).attributes).toMatchObject({ [ATTR.namespace]: 'rows', [ATTR.ids]: 2 });
    expect(only(SPAN.invalidate).attributes).toMatchObject({ [ATTR.invalidation]: 'namespace' });
  });

  it('a failing loader: the read and the load end in error, with the cache error code', async () => {
    const a = await newCache();
    source.fail = true;
    const r = await a.get(rows, '5');
    expect(r.ok).toBe(false);
    const read = only(SPAN.get);
    expect(read.status.code).toBe(2); // SpanStatusCode.ERROR
    expect(read.attributes[ATTR.error]).toBe('E_CACHE_LOADER_FAILED');
    expect(only(SPAN.load).events.map((e) => e.name)).toEqual(['exception']);
  });

  it('two reads of one key in one process: one loads, the other joins it (coalesced)', async () => {
    const a = await newCache();
    source.slowMs = 100;
    const [x, y] = await Promise.all([a.get(rows, '4'), a.get(rows, '4')]);
    expect(x.ok && y.ok).toBe(true);
    expect(named(SPAN.get).map((s) => s.attributes[ATTR.tier])).toEqual(
      expect.arrayContaining(['loader', 'coalesced']),
    );
    expect(named(SPAN.load)).toHaveLength(1);
  });

  it('tracing: false keeps a cache untraced even with a provider', async () => {
    const a = await newCache(undefined, { tracing: false });
    expect(Object.hasOwn(a, 'get')).toBe(false);
    await a.get(rows, '3');
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('a provider that samples nothing: reads are served as untraced, no span is exported', async () => {
    trace.disable();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({
        sampler: new AlwaysOffSampler(),
        spanProcessors: [new SimpleSpanProcessor(exporter)],
      }),
    );
    const a = await newCache();
    expect(Object.hasOwn(a, 'get')).toBe(true);
    expect(await a.get(rows, '6')).toMatchObject({ ok: true, value: { id: '6', n: 6 } });
    expect(await a.get(rows, '6')).toMatchObject({ ok: true, value: { id: '6', n: 6 } });
    expect(source.calls).toBe(1);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
