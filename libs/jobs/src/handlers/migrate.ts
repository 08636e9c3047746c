import type { CacheEvent, Namespace } from '@cachefleet/tiered-cache';
import type { MigrateResult, MigrateState, MigrateTotals } from '../catalogue.js';
import { JobError } from '../errors.js';
import { LISTED_IDS } from '../namespaces.js';
import { checkpoint, type JobContext, must } from './context.js';

/**
 * A version migration (docs/design-lifecycle.md): walks the `to - 1` entries of the namespace on
 * every master, step by step, converting and writing them at `to` fenced against invalidations;
 * the cursor is saved after each step. Then enqueues the sweep that removes the old version.
 */
export async function migrateHandler(ctx: JobContext<'migrate'>): Promise<MigrateResult> {
  const p = ctx.payload;
  const ns = ctx.namespace(p.namespace);
  if (ns.version !== p.to) {
    throw new JobError(
      'E_JOB_MIGRATION',
      `the worker's definition of ${ns.name} is at version ${ns.version}, not ${p.to}: deploy the definitions of version ${p.to} to the workers first`,
    );
  }
  const from = p.to - 1;
  // Invalidations heard while the walk runs, from pods still at the old version: their L2 effect
  // is on old keys only, so the new keys this job wrote for them are invalidated here too.
  const heard = listen(ctx, ns.name);
  try {
    let state: MigrateState = ctx.state ?? (await begin(ctx, ns, from));
    const pace = pacer(p.rate, ctx.signal);
    while (state.index < state.masters.length && !state.overtaken) {
      checkpoint(ctx.signal);
      const generation = must(await ctx.cache.fleet.generation(ns.name));
      if (generation !== state.generation) {
        // A whole-namespace invalidation: every entry of this generation is unreachable now.
        state = { ...state, overtaken: true };
        await ctx.save(state);
        break;
      }
      const master = state.masters[state.index] as string;
      const step = must(
        await ctx.cache.fleet.migrateStep(ns, {
          from,
          generation: state.generation,
          master,
          cursor: state.cursor,
          count: p.count,
          dryRun: p.dryRun,
        }),
      );
      if (!p.dryRun) await heard.apply(ns);
      const totals = addTotals(state.totals, step);
      const failures =
        state.failures.length < LISTED_IDS
          ? [...state.failures, ...step.failures].slice(0, LISTED_IDS)
          : state.failures;
      const done = !step.redo && step.cursor === '0';
      state = {
        ...state,
        index: done ? state.index + 1 : state.index,
        cursor: done ? '0' : step.cursor,
        totals,
        failures,
      };
      await ctx.save(state);
      await ctx.progress({
        namespace: ns.name,
        done: totals.scanned,
        total: Math.max(state.total, totals.scanned),
        migrated: totals.migrated,
        failed: totals.failed,
      });
      await pace(step.scanned);
    }
    if (!p.dryRun) await heard.apply(ns);
    const sweepJobId = p.dryRun ? undefined : (await ctx.jobs.enqueue('sweep', { namespace: ns.name })).id;
    return {
      namespace: ns.name,
      from,
      to: p.to,
      dryRun: p.dryRun,
      generation: state.generation,
      ...state.totals,
      failures: state.failures,
      overtaken: state.overtaken,
      ...(sweepJobId !== undefined ? { sweepJobId } : {}),
    };
  } finally {
    heard.stop();
  }
}

async function begin(
  ctx: JobContext<'migrate'>,
  ns: Namespace<unknown>,
  from: number,
): Promise<MigrateState> {
  const generation = must(await ctx.cache.fleet.generation(ns.name));
  const masters = must(ctx.cache.fleet.masters());
  const total = must(await ctx.cache.fleet.migrateTotal(ns, from, generation));
  const state: MigrateState = {
    generation,
    masters,
    index: 0,
    cursor: '0',
    total,
    totals: { scanned: 0, migrated: 0, present: 0, changed: 0, skipped: 0, failed: 0 },
    failures: [],
    overtaken: false,
  };
  await ctx.save(state);
  await ctx.progress({ namespace: ns.name, done: 0, total, migrated: 0, failed: 0 });
  return state;
}

function addTotals(t: MigrateTotals, s: MigrateTotals): MigrateTotals {
  return {
    scanned: t.scanned + s.scanned,
    migrated: t.migrated + s.migrated,
    present: t.present + s.present,
    changed: t.changed + s.changed,
    skipped: t.skipped + s.skipped,
    failed: t.failed + s.failed,
  };
}

interface Heard {
  /** Invalidates at the new version what the invalidations heard so far named. */
  apply(ns: Namespace<unknown>): Promise<void>;
  stop(): void;
}

/** Collects the ids and patterns of the namespace's invalidations and updates from other pods. */
function listen(ctx: JobContext<'migrate'>, name: string): Heard {
  let ids = new Set<string>();
  let patterns = new Set<string>();
  const stop = ctx.cache.onEvent((e: CacheEvent) => {
    if (e.namespace !== name) return;
    if (e.event_type === 'update' || (e.event_type === 'invalidate' && e.keys !== undefined)) {
      for (const id of e.keys ?? []) ids.add(id);
    } else if (e.event_type === 'invalidate' && e.key_pattern !== undefined && e.generation === undefined) {
      patterns.add(e.key_pattern);
    }
  });
  return {
    async apply(ns) {
      if (ids.size > 0) {
        const now = [...ids];
        ids = new Set();
        for (let at = 0; at < now.length; at += 1_000)
          must(await ctx.cache.delete(ns, ...now.slice(at, at + 1_000)));
      }
      if (patterns.size > 0) {
        const now = [...patterns];
        patterns = new Set();
        for (const pattern of now) must(await ctx.cache.invalidatePattern(ns, pattern));
      }
    },
    stop,
  };
}

/** Keeps a walk under `rate` keys/s (0: no limit): sleeps after a step until the keys fit. */
function pacer(rate: number, signal: AbortSignal): (keys: number) => Promise<void> {
  const started = performance.now();
  let done = 0;
  return async (keys) => {
    if (rate <= 0) return;
    done += keys;
    const ahead = (done / rate) * 1000 - (performance.now() - started);
    if (ahead > 0) await sleep(Math.min(ahead, 5_000), signal);
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
