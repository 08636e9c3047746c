import { CacheError } from '@cachefleet/tiered-cache';
import { WaitingChildrenError } from 'bullmq';
import type { InvalidatePayload, InvalidateResult, SliceResult, SliceState } from '../catalogue.js';
import { LISTED_IDS, usableIds } from '../namespaces.js';
import { addSlices, countSlices } from '../slices.js';
import { checkpoint, type JobContext, must } from './context.js';

/** Ids per `delete` call of a keys invalidation. */
const KEYS_BATCH = 1_000;

export async function invalidateHandler(ctx: JobContext<'invalidate'>): Promise<InvalidateResult> {
  const p = ctx.payload;
  const ns = ctx.namespace(p.namespace);
  switch (p.scope) {
    case 'keys': {
      // The cache refuses a whole delete for one bad id: those are left out and reported.
      const { valid, invalid } = usableIds('invalidate', ns, p.keys);
      const saved = ctx.state?.step === 'keys' ? ctx.state : undefined;
      let removed = saved?.removed ?? 0;
      for (let offset = saved?.offset ?? 0; offset < valid.length; offset += KEYS_BATCH) {
        checkpoint(ctx.signal);
        const ids = valid.slice(offset, offset + KEYS_BATCH);
        removed += must(await ctx.cache.delete(ns, ...ids));
        await ctx.save({ step: 'keys', offset: offset + ids.length, removed });
        await ctx.progress({ done: offset + ids.length, total: valid.length });
      }
      const refused =
        invalid.length > 0 ? { invalid: invalid.length, invalidIds: invalid.slice(0, LISTED_IDS) } : {};
      return { scope: p.scope, namespace: ns.name, removed, ...refused };
    }
    case 'tags':
      return {
        scope: p.scope,
        namespace: ns.name,
        removed: must(await ctx.cache.invalidateTags(ns, p.tags)),
      };
    case 'namespace': {
      const generation = must(await ctx.cache.invalidateNamespace(ns));
      // The old generation's keys are unreachable now: unlinked in steps rather than left to expire.
      const sweep = await ctx.jobs.enqueue('sweep', { namespace: ns.name });
      return { scope: p.scope, namespace: ns.name, removed: 0, generation, sweepJobId: sweep.id };
    }
    case 'pattern':
      return patternSteps(ctx, p);
  }
}

/**
 * fence → fan-out → wait → announce. Each step is saved before the next begins; re-running a step
 * after a crash is harmless (one more counter bump; children added again under the same ids are
 * ignored by BullMQ; `moveToWaitingChildren` is asked again).
 */
async function patternSteps(
  ctx: JobContext<'invalidate'>,
  p: Extract<InvalidatePayload, { scope: 'pattern' }>,
): Promise<InvalidateResult> {
  const ns = ctx.namespace(p.namespace);
  let state = ctx.state;
  if (state === undefined || state.step === 'keys') {
    const match = must(await ctx.cache.fleet.beginWalk(ns, p.pattern));
    const masters = must(ctx.cache.fleet.masters());
    state = { step: 'fan-out', match, masters };
    await ctx.save(state);
  }
  if (state.step === 'fan-out') {
    const { match, masters } = state;
    await addSlices(
      ctx.jobs,
      ctx.job,
      masters.map((master) => ({
        namespace: p.namespace,
        pattern: p.pattern,
        match,
        master,
        // SCAN + UNLINK of 1,000 a step took 1–5 ms of Redis each (reader p99 3.4–5 ms in the
        // bench); 200 a step kept the same keys/s with a reader p99 of ~1 ms.
        count: 200,
      })),
    );
    await ctx.save({ step: 'wait', masters });
    await ctx.progress({ step: 'wait', slices: masters.length });
  }
  if (ctx.token !== undefined && (await ctx.job.moveToWaitingChildren(ctx.token))) {
    throw new WaitingChildrenError();
  }
  const values = Object.values(await ctx.job.getChildrenValues<SliceResult>());
  const { unlinked: removed, scanned } = countSlices(values);
  // Every master is walked: one event makes every pod drop the pattern from its L1.
  must(await ctx.cache.fleet.endWalk(ns, p.pattern));
  await ctx.progress({ step: 'done', slices: values.length, removed });
  return { scope: 'pattern', namespace: ns.name, removed, slices: values.length, scanned };
}

/**
 * SCAN + UNLINK one master in batches; the cursor is saved after each (resumable after SIGKILL).
 * If the master is no longer one (a Cluster failover promoted its replica, under another address),
 * its slots are now served by some master of the new topology: the slice walks every current master
 * instead, in turn (UNLINK is idempotent; the others are walked twice, failovers are rare). Until the
 * client has learnt the new topology, a step on the dead master fails and the job is retried.
 */
export async function invalidateSliceHandler(ctx: JobContext<'invalidate-slice'>): Promise<SliceResult> {
  const p = ctx.payload;
  let state: SliceState = ctx.state ?? { cursor: '0', scanned: 0, unlinked: 0 };
  // A saved cursor of '0' means the current target was walked to its end; a fresh target has none.
  let fresh = ctx.state === undefined;
  for (;;) {
    checkpoint(ctx.signal);
    const target = state.rewalk === undefined ? p.master : state.rewalk.masters[state.rewalk.index];
    const now = must(ctx.cache.fleet.masters());
    if (target === undefined || !now.includes(target)) {
      if (now.length === 0)
        throw new CacheError('E_CACHE_L2_UNAVAILABLE', 'no cache master known yet (a failover?): retried');
      // Not saved until its first step: a restart before it finds the master gone again.
      state = { ...state, cursor: '0', rewalk: { masters: now, index: 0 } };
      fresh = true;
      continue;
    }
    if (!fresh && state.cursor === '0') {
      const rewalk = state.rewalk;
      if (rewalk === undefined || rewalk.index + 1 >= rewalk.masters.length) break;
      state = { ...state, rewalk: { ...rewalk, index: rewalk.index + 1 } };
      fresh = true;
      continue;
    }
    fresh = false;
    const step = must(await ctx.cache.fleet.unlinkStep(target, p.match, state.cursor, p.count));
    state = {
      ...state,
      cursor: step.cursor,
      scanned: state.scanned + step.scanned,
      unlinked: state.unlinked + step.unlinked,
    };
    await ctx.save(state);
    await ctx.progress({ master: target, scanned: state.scanned, unlinked: state.unlinked });
  }
  return { master: p.master, scanned: state.scanned, unlinked: state.unlinked };
}
