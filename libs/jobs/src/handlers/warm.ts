import type { Namespace, WarmBatchResult } from '@cachefleet/tiered-cache';
import type { WarmResult, WarmState, WarmTotals } from '../catalogue.js';
import { LISTED_IDS, usableIds } from '../namespaces.js';
import { checkpoint, type JobContext, must, PeriodicSave } from './context.js';

/** Ids per batch: one snapshot round trip, one loadMany, one script call per 500 entries. */
const WARM_BATCH = 1_000;

/**
 * Batches of a full warm in flight: Node encodes the next ones while Redis writes the oldest. A new
 * batch's snapshot waits behind the writes sent before it; with four, Node still has one to encode
 * meanwhile (3 → 4: 1.02× → 1.15× the ioredis floor's keys/s, docs/benchmarks.md "Warm into L2").
 */
const IN_FLIGHT = 4;

/**
 * How often a full warm saves its cursor and reports progress, ms (and at each namespace's end and
 * before an abort): two BullMQ round trips after every batch held the next batch back.
 */
const SAVE_EVERY_MS = 100;

/**
 * Warms namespaces batch by batch (docs/design-fleet.md): `all` pages ids from the definition,
 * `hot` takes the top ids pods counted (then decays the counts), `critical` the definitions' list
 * (and asks every pod to copy those into L1), `keys` the payload's ids. The cursor is saved after
 * every batch (the full warm: every SAVE_EVERY_MS), so a killed worker's job continues about where
 * it stopped (a batch warmed again is harmless: the same fence).
 */
export async function warmHandler(ctx: JobContext<'warm'>): Promise<WarmResult> {
  const p = ctx.payload;
  const names = planNamespaces(ctx);
  // `keys`: ids the namespace refuses are skipped and reported (counted once, at the start).
  const keys = p.type === 'keys' ? usableIds('warm', ctx.namespace(p.namespace), p.keys) : undefined;
  const refused = keys?.invalid.length ?? 0;
  let state: WarmState = ctx.state ?? {
    index: 0,
    totals: { ...zero(), requested: refused, invalid: refused },
  };
  const totals = { ...state.totals };
  let prewarmed = 0;
  // The full warm's total: every namespace's count, read once at the start (undefined when one
  // cannot count: the progress then counts without a total).
  const total = p.type === 'all' ? await countAll(ctx, names) : undefined;
  // The full warm's cursor and progress, written at most every SAVE_EVERY_MS (see below).
  const saves = new PeriodicSave(SAVE_EVERY_MS, async () => {
    await ctx.save(state);
    await ctx.progress({
      namespace: names[state.index] ?? '',
      done: totals.requested,
      ...(total !== undefined ? { total, percent: percentOf(totals.requested, total) } : {}),
      written: totals.written,
    });
  });
  for (let index = state.index; index < names.length; index++) {
    const ns = ctx.namespace(names[index] as string);
    if (state.index !== index) state = { index, totals };
    if (p.type === 'all') {
      if (ns.ids === undefined) {
        ctx.log.warn({ namespace: ns.name }, 'namespace cannot enumerate its ids: skipped by the full warm');
        continue;
      }
      // IN_FLIGHT batches at a time: Node loads and encodes the next ones while Redis writes the
      // oldest (one at a time, the two took turns: 5.8 µs of Node then 5.5 µs of Redis a key). The
      // cursor is the last id of a batch whose predecessors are all done, with the totals of exactly
      // those batches (a batch's counts are added when it is settled, in order); it is saved every
      // SAVE_EVERY_MS, at the namespace's end and before an abort (a batch redone is harmless).
      const fetchPage = (after: string | undefined): Promise<readonly string[]> => {
        const next = ns.ids?.(after, WARM_BATCH) ?? Promise.resolve([]);
        next.catch(() => undefined); // awaited below; a prefetch dropped by an abort must not go unhandled
        return next;
      };
      let page = fetchPage(state.after);
      type Batch = { readonly done: Promise<WarmBatchResult>; readonly last: string };
      const inFlight: Batch[] = [];
      const settle = async (batch: Batch) => {
        addTotals(totals, await batch.done);
        state = { index, after: batch.last, totals };
        saves.changed();
        if (saves.due) await saves.flush();
      };
      try {
        for (;;) {
          if (ctx.signal.aborted) await saves.flush();
          checkpoint(ctx.signal);
          const ids = await page;
          const last = ids[ids.length - 1];
          if (last === undefined) break;
          page = ids.length < WARM_BATCH ? Promise.resolve([]) : fetchPage(last);
          const done = ctx.cache.fleet.warm(ns, ids).then(must);
          done.catch(() => undefined); // awaited by settle(); handled meanwhile
          inFlight.push({ done, last });
          if (inFlight.length >= IN_FLIGHT) await settle(inFlight.shift() as Batch);
        }
        for (let batch = inFlight.shift(); batch !== undefined; batch = inFlight.shift()) await settle(batch);
      } finally {
        // On every way out (an abort included) the batches in flight end before the job does.
        await Promise.allSettled(inFlight.map((b) => b.done));
      }
      await saves.flush();
    } else {
      const list = state.hot ?? (await listOf(ctx, ns));
      if (p.type === 'hot' && state.hot === undefined) {
        state = { index, offset: 0, hot: list, totals };
        await ctx.save(state);
      }
      for (let offset = state.offset ?? 0; offset < list.length; offset += WARM_BATCH) {
        checkpoint(ctx.signal);
        const ids = list.slice(offset, offset + WARM_BATCH);
        await warmBatch(ctx, ns, ids, totals);
        state = { index, offset: offset + ids.length, ...(state.hot ? { hot: state.hot } : {}), totals };
        await ctx.save(state);
        await ctx.progress({
          namespace: ns.name,
          done: offset + ids.length,
          total: list.length,
          written: totals.written,
        });
      }
      if (p.type === 'hot') must(await ctx.cache.fleet.decayHotKeys(ns));
      if (p.type === 'critical' && list.length > 0) {
        must(await ctx.cache.prewarm(ns, list));
        prewarmed += list.length;
      }
    }
  }
  const listed = refused > 0 ? { invalidIds: keys?.invalid.slice(0, LISTED_IDS) ?? [] } : {};
  return { type: p.type, namespaces: names, prewarmed, ...totals, ...listed };
}

/** Sum of the namespaces' counts, or undefined when one that a full warm pages cannot count. */
async function countAll(ctx: JobContext<'warm'>, names: readonly string[]): Promise<number | undefined> {
  let sum = 0;
  for (const name of names) {
    const ns = ctx.namespace(name);
    if (ns.ids === undefined) continue; // skipped by the full warm
    if (ns.count === undefined) return undefined;
    try {
      sum += await ns.count();
    } catch (error) {
      // Only the progress needs it: the warm goes on (its paging meets the same fault, if any).
      ctx.log.warn(
        { namespace: name, err: error instanceof Error ? error.message : String(error) },
        'count failed',
      );
      return undefined;
    }
  }
  return sum;
}

/** Whole percent of `total` (capped at 100: rows added during the warm are pages past the count). */
function percentOf(done: number, total: number): number {
  return total === 0 ? 100 : Math.min(100, Math.floor((done / total) * 100));
}

async function warmBatch(
  ctx: JobContext<'warm'>,
  ns: Namespace<unknown>,
  ids: readonly string[],
  totals: WarmTotals,
): Promise<void> {
  addTotals(totals, must(await ctx.cache.fleet.warm(ns, ids)));
}

function addTotals(totals: WarmTotals, r: WarmBatchResult): void {
  totals.requested += r.requested;
  totals.loaded += r.loaded;
  totals.written += r.written;
  totals.changed += r.changed;
  totals.invalid += r.invalid;
}

function planNamespaces(ctx: JobContext<'warm'>): string[] {
  const p = ctx.payload;
  if (p.type === 'keys') return [p.namespace];
  const all = ctx.definitions.namespaces.map((ns) => ns.name);
  const chosen = p.namespaces?.length ? p.namespaces : all;
  for (const name of chosen) ctx.namespace(name); // unknown names fail before any work
  if (p.type === 'critical' && !p.namespaces?.length)
    return chosen.filter((n) => (ctx.definitions.critical[n]?.length ?? 0) > 0);
  return [...new Set(chosen)];
}

async function listOf(ctx: JobContext<'warm'>, ns: Namespace<unknown>): Promise<readonly string[]> {
  const p = ctx.payload;
  switch (p.type) {
    case 'keys':
      return usableIds('warm', ns, p.keys).valid;
    case 'critical':
      return ctx.definitions.critical[ns.name] ?? [];
    case 'hot':
      return must(await ctx.cache.fleet.hotKeys(ns, p.top)).map((h) => h.id);
    case 'all':
      return [];
  }
}

function zero(): WarmTotals {
  return { requested: 0, loaded: 0, written: 0, changed: 0, invalid: 0 };
}
