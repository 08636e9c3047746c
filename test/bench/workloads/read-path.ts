/**
 * Issue 11: the read path's resilience options, each beside the same run without it. Four pods
 * (tiered caches in this process, one shared prefix, on the bench's private Redis) read a small key
 * space under steady load; the "database" is the loader, made to fail or to be slow on cue.
 *
 * - outage: entries of 1 s, the database fails for OUTAGE_MS; grace 60 s (back-off 1 s) vs none.
 *   Counts reads that failed and loader calls during the outage.
 * - slow: entries of 1 s, every load takes SLOW_MS (a pg_sleep); soft timeout 50 ms vs none.
 *   Read latency p50/p99 over the run.
 * - early refresh: 20 hot keys of 1 s read for 4 s; earlyRefresh 0.2 vs none. Synchronous misses
 *   after the first load (reads that waited for the loader) and read p99.
 * - immutable: the fill cost of deep-freezing ~1 KB values (memory impl, no Redis), and L1 hits.
 *
 * In-process pods share one event loop: absolute latencies include the other pods' work. The
 * comparisons within a pair are what the rows are for.
 */
import { randomBytes } from 'node:crypto';
import {
  type Cache,
  createCache,
  deepFreeze,
  defineNamespace,
  type NamespaceDefinition,
} from '@cachefleet/tiered-cache';
import { benchValueSchema, errorMessage, makeValue, sleep } from '../data.js';
import { errorRow, percentile } from '../measure.js';
import type { BenchValue, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'read-path';
const PODS = 4;
const KEYS = 200;
const LOOPS_PER_POD = 8;
const WARM_MS = 1_500;
const OUTAGE_MS = 5_000;
const SLOW_MS = 300;
const SLOW_RUN_MS = 4_000;
const HOT_KEYS = 20;
const HOT_RUN_MS = 4_000;
const FREEZE_N = 20_000;

interface Db {
  down: boolean;
  delayMs: number;
  calls: number;
}

type Options = Partial<Pick<NamespaceDefinition<BenchValue>, 'grace' | 'timeouts' | 'earlyRefresh'>>;

function namespace(name: string, db: Db, options: Options) {
  return defineNamespace<BenchValue>({
    name,
    version: 1,
    ttl: { l1: 0.25, l2: 1 },
    schema: benchValueSchema,
    load: async (id) => {
      db.calls++;
      if (db.delayMs > 0) await sleep(db.delayMs);
      if (db.down) throw new Error('database down');
      return makeValue(id);
    },
    ...options,
  });
}

async function pods(ctx: WorkloadContext, prefix: string): Promise<Cache[]> {
  const out: Cache[] = [];
  for (let i = 0; i < PODS; i++) {
    const c = createCache({
      impl: 'tiered',
      redis: { mode: 'single', url: `redis://127.0.0.1:${ctx.port}` },
      prefix,
      hotKeys: { enabled: false },
    });
    await c.start();
    out.push(c);
  }
  return out;
}

interface Phase {
  reads: number;
  errors: number;
  stale: number;
  latencies: number[];
}

/** Every pod runs LOOPS_PER_POD loops of random reads over `keys` until `until`. */
async function load(
  caches: readonly Cache[],
  ns: ReturnType<typeof namespace>,
  keys: number,
  until: number,
): Promise<Phase> {
  const phase: Phase = { reads: 0, errors: 0, stale: 0, latencies: [] };
  const loop = async (cache: Cache) => {
    while (performance.now() < until) {
      const id = `k${Math.floor(Math.random() * keys)}`;
      const t0 = performance.now();
      const r = await cache.get(ns, id);
      phase.latencies.push(performance.now() - t0);
      phase.reads++;
      if (!r.ok) phase.errors++;
      else if (r.stale) phase.stale++;
      await sleep(2);
    }
  };
  await Promise.all(caches.flatMap((c) => Array.from({ length: LOOPS_PER_POD }, () => loop(c))));
  return phase;
}

function pct(latencies: number[], p: number): string {
  const sorted = Float64Array.from(latencies).sort();
  return percentile(sorted, p).toFixed(1);
}

async function outage(ctx: WorkloadContext, label: string, options: Options): Promise<Row> {
  const db: Db = { down: false, delayMs: 2, calls: 0 };
  const caches = await pods(ctx, `${ctx.runId}-rp-out-${randomBytes(2).toString('hex')}:`);
  try {
    const ns = namespace('outage', db, options);
    await load(caches, ns, KEYS, performance.now() + WARM_MS);
    db.down = true;
    const before = db.calls;
    const during = await load(caches, ns, KEYS, performance.now() + OUTAGE_MS);
    const calls = db.calls - before;
    return {
      workload: NAME,
      name: `outage ${OUTAGE_MS / 1000} s, ${label}`,
      role: 'project',
      opsPerSec: during.reads / (OUTAGE_MS / 1000),
      extra:
        `failed reads ${during.errors}/${during.reads}, stale served ${during.stale}, ` +
        `loader calls during the outage ${calls}`,
    };
  } finally {
    await Promise.all(caches.map((c) => c.close()));
  }
}

async function slow(ctx: WorkloadContext, label: string, options: Options): Promise<Row> {
  const db: Db = { down: false, delayMs: 0, calls: 0 };
  const caches = await pods(ctx, `${ctx.runId}-rp-slow-${randomBytes(2).toString('hex')}:`);
  try {
    const ns = namespace('slow', db, options);
    await load(caches, ns, KEYS, performance.now() + WARM_MS);
    db.delayMs = SLOW_MS;
    const p = await load(caches, ns, KEYS, performance.now() + SLOW_RUN_MS);
    return {
      workload: NAME,
      name: `slow database (${SLOW_MS} ms loads), ${label}`,
      role: 'project',
      opsPerSec: p.reads / (SLOW_RUN_MS / 1000),
      extra: `read p50 ${pct(p.latencies, 50)} ms, p99 ${pct(p.latencies, 99)} ms, stale served ${p.stale}, errors ${p.errors}`,
    };
  } finally {
    await Promise.all(caches.map((c) => c.close()));
  }
}

async function early(ctx: WorkloadContext, label: string, options: Options): Promise<Row> {
  const db: Db = { down: false, delayMs: 20, calls: 0 };
  const caches = await pods(ctx, `${ctx.runId}-rp-early-${randomBytes(2).toString('hex')}:`);
  try {
    const ns = namespace('early', db, options);
    for (let i = 0; i < HOT_KEYS; i++) await (caches[0] as Cache).get(ns, `k${i}`);
    const first = sum(caches, ns.name, (s) => s.l2.misses);
    const p = await load(caches, ns, HOT_KEYS, performance.now() + HOT_RUN_MS);
    const waits = sum(caches, ns.name, (s) => s.l2.misses) - first;
    const refreshes = sum(caches, ns.name, (s) => s.earlyRefreshes);
    // Loads a reader waited for: every loader call but the first fills and the background refreshes.
    const synchronous = db.calls - HOT_KEYS - refreshes;
    return {
      workload: NAME,
      name: `${HOT_KEYS} hot keys across their TTL, ${label}`,
      role: 'project',
      opsPerSec: p.reads / (HOT_RUN_MS / 1000),
      extra:
        `synchronous loads ${synchronous}, background refreshes ${refreshes}, reads past L1 ${waits}, ` +
        `read p50 ${pct(p.latencies, 50)} ms, p99 ${pct(p.latencies, 99)} ms, max ${pct(p.latencies, 100)} ms`,
    };
  } finally {
    await Promise.all(caches.map((c) => c.close()));
  }
}

function sum(caches: readonly Cache[], name: string, f: (s: ReturnType<Cache['stats']>[number]) => number) {
  let n = 0;
  for (const c of caches) for (const s of c.stats()) if (s.namespace === name) n += f(s);
  return n;
}

/** A product-like value with nesting (what deep freezing walks), about 2 KB of JSON. */
function nested(i: number) {
  return {
    id: String(i),
    name: `product ${i}`,
    price: { cents: i, currency: 'EUR' },
    tags: ['a', 'b', 'c'],
    variants: Array.from({ length: 10 }, (_, v) => ({ sku: `${i}-${v}`, stock: v, dims: { w: v, h: v } })),
    description: 'x'.repeat(600),
  };
}

/** Deep freezing alone, µs per value (best of 3 runs of FREEZE_N). */
function freezeMicro(make: (i: number) => object): number {
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 3; run++) {
    const values = Array.from({ length: FREEZE_N }, (_, i) => make(i));
    const t0 = performance.now();
    for (const v of values) deepFreeze(v);
    best = Math.min(best, ((performance.now() - t0) * 1000) / FREEZE_N);
  }
  return best;
}

async function freeze(label: string, immutable: boolean): Promise<Row> {
  let best: Row | undefined;
  for (let run = 0; run < 3; run++) {
    const row = await freezeOnce(label, immutable, run);
    if (best === undefined || (row.opsPerSec ?? 0) > (best.opsPerSec ?? 0)) best = row;
  }
  if (best === undefined) throw new Error('no run');
  if (!immutable) return best;
  const flat = freezeMicro((i) => makeValue(`m${i}`));
  const deep = freezeMicro(nested);
  return {
    ...best,
    extra: `${best.extra}; deepFreeze alone: ${flat.toFixed(2)} µs (this value), ${deep.toFixed(2)} µs (nested ~2 KB product)`,
  };
}

async function freezeOnce(label: string, immutable: boolean, run: number): Promise<Row> {
  const cache = createCache({ impl: 'memory', l1: { maxEntries: FREEZE_N * 2 } });
  await cache.start();
  try {
    const ns = defineNamespace<BenchValue>({
      name: `freeze-${immutable}-${run}`,
      version: 1,
      ttl: { l1: 600, l2: 600 },
      schema: benchValueSchema,
      immutable,
      load: async (id) => makeValue(id),
    });
    const t0 = performance.now();
    for (let i = 0; i < FREEZE_N; i++) await cache.get(ns, `f${i}`);
    const fillMs = performance.now() - t0;
    const t1 = performance.now();
    for (let round = 0; round < 10; round++) for (let i = 0; i < FREEZE_N; i++) await cache.get(ns, `f${i}`);
    const hitMs = performance.now() - t1;
    return {
      workload: NAME,
      name: `fills of ~1 KB values (memory impl), ${label}`,
      role: 'project',
      opsPerSec: FREEZE_N / (fillMs / 1000),
      extra: `fill ${((fillMs * 1000) / FREEZE_N).toFixed(2)} µs each; L1 hit ${((hitMs * 1e6) / (FREEZE_N * 10)).toFixed(0)} ns each`,
    };
  } finally {
    await cache.close();
  }
}

export const readPath: Workload = {
  name: NAME,
  describe:
    'grace, soft timeouts, early refresh and immutable values, each beside the same run without it (4 pods in one process)',
  async run(ctx) {
    const rows: Row[] = [];
    const attempt = async (name: string, f: () => Promise<Row>) => {
      ctx.log(`${NAME}: ${name}`);
      try {
        rows.push(await f());
      } catch (err) {
        rows.push(errorRow(NAME, name, 'project', errorMessage(err)));
      }
    };
    await attempt('outage without grace', () => outage(ctx, 'no grace', {}));
    await attempt('outage with grace', () =>
      outage(ctx, 'grace 60 s, back-off 1 s', { grace: { seconds: 60, backoffSeconds: 1 } }),
    );
    await attempt('slow without timeouts', () => slow(ctx, 'no timeout', { grace: { seconds: 60 } }));
    await attempt('slow with soft timeout', () =>
      slow(ctx, 'soft timeout 50 ms', { grace: { seconds: 60 }, timeouts: { softMs: 50 } }),
    );
    await attempt('early refresh off', () => early(ctx, 'no early refresh', {}));
    await attempt('early refresh on', () => early(ctx, 'earlyRefresh 0.2', { earlyRefresh: 0.2 }));
    await attempt('freeze off', () => freeze('immutable: false', false));
    await attempt('freeze on', () => freeze('immutable: true (deep freeze)', true));
    // Best of 3 each; run once more in the other order so JIT warm-up favours neither.
    await attempt('freeze on (again)', () => freeze('immutable: true (deep freeze), second', true));
    await attempt('freeze off (again)', () => freeze('immutable: false, second', false));
    return rows;
  },
};
