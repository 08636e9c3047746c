import { scanFraction } from '@cachefleet/redis';
import type { CacheEvent, MigratePrepared, Namespace, Result } from '@cachefleet/tiered-cache';
import type { MigrateResult, MigrateState, MigrateTotals } from '../catalogue.js';
import { JobError } from '../errors.js';
import { LISTED_IDS } from '../namespaces.js';
import { changedMasters, checkpoint, type JobContext, must, PeriodicSave } from './context.js';

/** How often the cursor is saved and progress reported while the walk runs, ms (and at each pause). */
const SAVE_EVERY_MS = 100;

/** Steps read (and converted) ahead of the one being written, unthrottled: see `readAhead`. */
const READ_AHEAD = 2;

interface Prepared {
  readonly prepared: Result<MigratePrepared>;
  readonly generation: Result<number>;
  readonly next: { readonly index: number; readonly cursor: string } | undefined;
}

/**
 * A version migration (docs/design-lifecycle.md): walks the `to - 1` entries of the namespace on
 * every master, step by step, converting and writing them at `to` fenced against invalidations.
 * The next step is read (and converted) while this one is written; the cursor is saved every
 * `SAVE_EVERY_MS`, at each pause of the throttle, at each master's end and before an abort (a step
 * done again after a SIGKILL is harmless). Then enqueues the sweep that removes the old version.
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
  const fleet = ctx.cache.fleet;
  // Invalidations heard while the walk runs, from pods still at the old version: their L2 effect
  // is on old keys only, so the new keys this job wrote for them are invalidated here too.
  const heard = listen(ctx, ns.name);
  try {
    let state: MigrateState = ctx.state ?? (await begin(ctx, ns));
    const pace = pacer(p.rate);
    const saves = new PeriodicSave(SAVE_EVERY_MS, async () => {
      await ctx.save(state);
      await ctx.progress({
        namespace: ns.name,
        done: state.totals.scanned,
        total: Math.max(state.total, state.totals.scanned),
        migrated: state.totals.migrated,
        failed: state.totals.failed,
      });
    });
    /**
     * Reads (and converts) the step at `index`/`cursor`, and the namespace's generation beside it;
     * `next` is where the step after it begins (undefined: the walk ends with it, or it failed).
     */
    const prepare = (index: number, cursor: string): Promise<Prepared> => {
      const read = Promise.all([
        fleet.migratePrepare(ns, {
          from,
          generation: state.generation,
          master: state.masters[index] as string,
          cursor,
          count: p.count,
        }),
        fleet.generation(ns.name),
      ]).then(([prepared, generation]): Prepared => {
        if (!prepared.ok) return { prepared, generation, next: undefined };
        const done = prepared.value.cursor === '0';
        const at = done ? { index: index + 1, cursor: '0' } : { index, cursor: prepared.value.cursor };
        return { prepared, generation, next: at.index < state.masters.length ? at : undefined };
      });
      read.catch(() => {}); // a read dropped unawaited (its step redone) must not go unhandled
      return read;
    };
    /**
     * Unthrottled, the steps read ahead, in walk order, each begun where the one before it ends:
     * READ_AHEAD of them, so that when a write returns the next step is converted already and
     * Redis is given it at once (with one, the next read's MGET queued behind this write's
     * scripts and Redis idled while Node converted it: 20–40% of the walk). A throttled walk
     * reads each step after its pause, so what it writes is as fresh as before.
     */
    let ahead: Promise<Prepared | undefined>[] = [];
    let tail: Promise<Prepared | undefined> | undefined;
    /** Bumped when the reads ahead are dropped: a chained read of a dropped one is not begun. */
    let epoch = 0;
    const readAhead = () => {
      if (p.rate > 0) return;
      const mine = epoch;
      while (ahead.length < READ_AHEAD && tail !== undefined) {
        tail = tail.then((prev) =>
          prev?.next !== undefined && mine === epoch ? prepare(prev.next.index, prev.next.cursor) : undefined,
        );
        tail.catch(() => {});
        ahead.push(tail);
      }
    };
    while (state.index < state.masters.length && !state.overtaken) {
      if (ctx.signal.aborted) await saves.flush();
      checkpoint(ctx.signal);
      if (ahead.length === 0) {
        // Saved by a worker that knew the masters under other names, or before a failover: the
        // walk starts again on the masters known now (a step done again is harmless).
        const now = changedMasters(ctx, state.masters);
        if (now !== undefined) {
          state = { ...state, masters: now, index: 0, cursor: '0', atMaster: state.totals.scanned };
          saves.changed();
        }
        tail = prepare(state.index, state.cursor);
        ahead.push(tail);
      }
      const got = await ahead.shift();
      if (got === undefined) {
        // Dropped (or after a failed read): read again from the state.
        ahead = [];
        epoch++;
        continue;
      }
      const { prepared, generation } = got;
      if (must(generation) !== state.generation) {
        // A whole-namespace invalidation: every entry of this generation is unreachable now.
        state = { ...state, overtaken: true };
        saves.changed();
        break;
      }
      const read = must(prepared);
      const done = read.cursor === '0';
      const index = done ? state.index + 1 : state.index;
      const cursor = done ? '0' : read.cursor;
      readAhead();
      const step = must(await fleet.migrateCommit(ns, read, p.dryRun));
      if (!p.dryRun) await heard.apply(ns);
      if (step.redo) {
        // A pattern or tag walk overtook the write: the reads ahead are dropped, the step done again.
        ahead = [];
        tail = undefined;
        epoch++;
        continue;
      }
      const totals = addTotals(state.totals, step);
      const failures =
        state.failures.length < LISTED_IDS
          ? [...state.failures, ...step.failures].slice(0, LISTED_IDS)
          : state.failures;
      const atMaster = done ? totals.scanned : state.atMaster;
      state = { ...state, index, cursor, totals, failures, atMaster };
      state = { ...state, total: estimateTotal(state) };
      saves.changed();
      const pause = pace(step.scanned);
      if (done || pause > 0 || saves.due) await saves.flush();
      if (pause > 0) await sleep(pause, ctx.signal);
    }
    await saves.flush();
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

async function begin(ctx: JobContext<'migrate'>, ns: Namespace<unknown>): Promise<MigrateState> {
  const generation = must(await ctx.cache.fleet.generation(ns.name));
  const masters = must(ctx.cache.fleet.masters());
  // No counting pass (it was a SCAN of the whole keyspace: ~1.3 µs of Redis CPU per migrated key,
  // a tenth of the migration's Redis time): the keys of the database, refined as the walk goes.
  const total = must(await ctx.cache.fleet.keyCount());
  const state: MigrateState = {
    generation,
    masters,
    index: 0,
    cursor: '0',
    total,
    atMaster: 0,
    totals: { scanned: 0, migrated: 0, present: 0, changed: 0, skipped: 0, failed: 0 },
    failures: [],
    overtaken: false,
  };
  await ctx.save(state);
  await ctx.progress({ namespace: ns.name, done: 0, total, migrated: 0, failed: 0 });
  return state;
}

/**
 * The progress total as the walk knows it now: the masters done count exactly; the current one is
 * its entries so far over the share of its keyspace walked (`scanFraction`: SCAN goes through the
 * hash table's buckets, and keys spread evenly over them); the masters not begun count as the
 * current one (a Cluster's masters hold even shares of the slots). Before a master has been
 * sampled, the DBSIZE bound the walk began with is kept.
 */
export function estimateTotal(state: MigrateState): number {
  if (state.index >= state.masters.length) return state.totals.scanned;
  const here = state.totals.scanned - state.atMaster;
  const share = scanFraction(state.cursor);
  let perMaster: number;
  if (share > 0) perMaster = Math.max(here, here / share);
  else if (state.index > 0) perMaster = state.atMaster / state.index;
  else return state.total;
  const notBegun = state.masters.length - state.index - 1;
  return Math.round(state.atMaster + perMaster * (1 + notBegun));
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

/** Keeps a walk under `rate` keys/s (0: no limit): after a step, how long to pause until the keys fit, ms. */
function pacer(rate: number): (keys: number) => number {
  const started = performance.now();
  let done = 0;
  return (keys) => {
    if (rate <= 0) return 0;
    done += keys;
    const ahead = (done / rate) * 1000 - (performance.now() - started);
    return ahead > 0 ? Math.min(ahead, 5_000) : 0;
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
