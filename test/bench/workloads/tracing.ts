import { type Cache, type CacheDeps, createCache, defineNamespace } from '@cachefleet/tiered-cache';
import { context, propagation, trace } from '@opentelemetry/api';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  type Sampler,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { errorMessage, isBenchValue, itemDefinition, makeValue } from '../data.js';
import { bestOf, errorRow, type LoopResult } from '../measure.js';
import type { Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'tracing';
const DEFAULT_N = 1_000_000;
const RUNS = 3;
const KEY = 'hot-1';

/** Takes every batch and sends nothing: the row measures the pod's own cost of a span, not a network. */
const DISCARD: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};

interface Variant {
  readonly name: string;
  /** The SDK registered before the cache is built (none: tracing off, as without OTEL_* settings). */
  readonly sampler?: Sampler;
  readonly deps?: CacheDeps;
  readonly note: string;
}

const VARIANTS: readonly Variant[] = [
  { name: 'tracing off (no SDK)', note: 'the default: no OTEL_* endpoint' },
  {
    name: 'SDK on, cache tracing: false',
    sampler: new AlwaysOnSampler(),
    deps: { tracing: false },
    note: 'a provider registered, this cache opted out',
  },
  {
    name: 'traced, sampled out',
    sampler: new AlwaysOffSampler(),
    note: 'span started and ended, not recorded',
  },
  { name: 'traced, every span', sampler: new AlwaysOnSampler(), note: 'recorded, batched, discarded' },
];

async function hitLoop(cache: Cache, ns: ReturnType<typeof items>, n: number): Promise<LoopResult> {
  let bad = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await cache.get(ns, KEY);
    if (!r.ok || r.value === undefined) bad++;
  }
  return { opsPerSec: n / ((performance.now() - t0) / 1000), bad };
}

function items() {
  return defineNamespace(itemDefinition(async (id) => makeValue(id)));
}

async function measure(v: Variant, ctx: WorkloadContext, n: number): Promise<Row> {
  // Registered globally, as the entry points do: only for this row, then unregistered.
  const provider =
    v.sampler === undefined
      ? undefined
      : new NodeTracerProvider({ sampler: v.sampler, spanProcessors: [new BatchSpanProcessor(DISCARD)] });
  provider?.register();
  const ns = items();
  const cache = createCache(
    {
      impl: 'tiered',
      redis: { mode: 'single', url: `redis://127.0.0.1:${ctx.port}` },
      prefix: `${ctx.runId}:${NAME}:${v.name.replace(/\W+/g, '-')}:`,
      l1: { maxEntries: 100_000 },
    },
    v.deps,
  );
  try {
    await cache.start();
    const w = await cache.set(ns, KEY, makeValue(KEY));
    if (!w.ok) throw w.error;
    const first = await cache.get(ns, KEY);
    if (!first.ok || !isBenchValue(first.value)) throw new Error('pre-filled key did not read back');
    await hitLoop(cache, ns, Math.max(1_000, Math.floor(n / 4)));
    const { best, bad, all } = await bestOf(RUNS, () => hitLoop(cache, ns, n));
    const traced = Object.hasOwn(cache, 'get') ? 'traced get' : 'class get';
    const extra = `${v.note}; ${traced}${bad > 0 ? `, ${bad} MISSES (invalid)` : ''}`;
    return {
      workload: NAME,
      name: v.name,
      role: v.sampler === undefined ? 'floor' : 'project',
      opsPerSec: best.opsPerSec,
      extra,
      runs: all,
    };
  } finally {
    await cache.close();
    if (provider !== undefined) {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    }
  }
}

/** The L1 hit path with tracing off and on (docs/tracing.md): off must cost nothing. */
export const tracing: Workload = {
  name: NAME,
  describe: `1 caller, await get() of one L1 key, cachefleet with tracing off and on, best of ${RUNS}`,
  async run(ctx) {
    const n = ctx.n ?? DEFAULT_N;
    const rows: Row[] = [];
    for (const v of VARIANTS) {
      ctx.log(`${NAME}: ${v.name} (n=${n})`);
      try {
        rows.push(await measure(v, ctx, n));
      } catch (err) {
        rows.push(errorRow(NAME, v.name, v.sampler === undefined ? 'floor' : 'project', errorMessage(err)));
      }
    }
    return rows;
  },
};
