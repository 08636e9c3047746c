import type { SweepResult, SweepState } from '../catalogue.js';
import { changedMasters, checkpoint, type JobContext, must } from './context.js';

/**
 * Unlinks the keys no pod can reach (older versions and generations) of one namespace or every
 * one, SCAN step by SCAN step on each master (docs/design-lifecycle.md); the cursor is saved
 * after each step, so a killed worker's sweep continues where it stopped (or walks the namespace
 * again when the masters it saved are not the ones this worker knows).
 */
export async function sweepHandler(ctx: JobContext<'sweep'>): Promise<SweepResult> {
  const p = ctx.payload;
  const names = p.namespace !== undefined ? [p.namespace] : ctx.definitions.namespaces.map((n) => n.name);
  for (const name of names) ctx.namespace(name); // an unknown one fails before any work
  let state: SweepState = ctx.state ?? {
    index: 0,
    masters: must(ctx.cache.fleet.masters()),
    master: 0,
    cursor: '0',
    scanned: 0,
    unlinked: 0,
  };
  while (state.index < names.length) {
    const ns = ctx.namespace(names[state.index] as string);
    while (state.master < state.masters.length) {
      checkpoint(ctx.signal);
      // Saved by a worker that knew the masters under other names (another network path, a
      // failover): its cursor means nothing here, so this namespace is walked again on every
      // master now known. UNLINK of what is already gone is harmless; the totals carry over.
      const now = changedMasters(ctx, state.masters);
      if (now !== undefined) state = { ...state, masters: now, master: 0, cursor: '0' };
      const step = must(
        await ctx.cache.fleet.sweepStep(ns, {
          master: state.masters[state.master] as string,
          cursor: state.cursor,
          count: p.count,
        }),
      );
      const masterDone = step.cursor === '0';
      state = {
        ...state,
        master: masterDone ? state.master + 1 : state.master,
        cursor: step.cursor,
        scanned: state.scanned + step.scanned,
        unlinked: state.unlinked + step.unlinked,
      };
      await ctx.save(state);
      await ctx.progress({
        namespace: ns.name,
        done: state.index * state.masters.length + state.master,
        total: names.length * state.masters.length,
        scanned: state.scanned,
        unlinked: state.unlinked,
      });
    }
    state = { ...state, index: state.index + 1, master: 0, cursor: '0' };
    await ctx.save(state);
  }
  return { namespaces: names, scanned: state.scanned, unlinked: state.unlinked };
}
