import type { Logger } from 'pino';
import type { BusHandlers } from '../bus/event-bus.js';
import type { CacheEvent } from '../bus/events.js';
import { ok, type Result } from '../result.js';
import { applyToL1 } from './coherence.js';
import type { ReadThrough } from './read-through.js';

interface BusHandlingDeps {
  readonly rt: ReadThrough;
  /** While cut off from the bus, L1 keeps nothing longer than this, ms. */
  readonly disconnectedTtlMs: number;
  /** Told every event from another pod, after it was applied here. */
  readonly listeners: ReadonlySet<(event: CacheEvent) => void>;
  readonly logger: Logger | undefined;
  /** Back on the bus: the pod takes the fences other pods left it (docs/design-fleet-ack.md). */
  readonly reconnected?: () => void;
}

/** What this pod does with the bus: apply other pods' events, flush L1 when it lost some, cap L1 while cut off. */
export function busHandlers(deps: BusHandlingDeps): BusHandlers {
  const { rt } = deps;
  return {
    apply: (event, own) => {
      if (own) return;
      let across: Promise<void> | undefined;
      if (event.event_type === 'prewarm') void prewarmHere(rt, event.namespace, event.keys);
      else {
        applyToL1(rt, event);
        across = acrossVersions(rt, event, deps.logger);
      }
      for (const listener of deps.listeners) listener(event);
      return across;
    },
    flush: (reason) => {
      deps.logger?.warn({ reason }, 'bus events were lost: L1 flushed');
      rt.invalidated();
      rt.l1?.removeAll();
      void loadGenerations(rt);
    },
    disconnected: (cut) => {
      rt.capL1Ttl(cut ? deps.disconnectedTtlMs : Number.POSITIVE_INFINITY);
      // Back on the bus (or on it for the first time after a degraded start): catch up on
      // whole-namespace invalidations too.
      if (!cut) {
        void loadGenerations(rt);
        deps.reconnected?.();
      }
    },
  };
}

/**
 * An invalidation or update of ids from a pod at another version of the namespace (a rollout: vN
 * and vN+1 pods side by side): its L2 effect is on its version's keys only, so this pod tombstones
 * the ids at its own version too, or it and its peers would read the old value back from L2. Every
 * pod at the other version does so (idempotent tombstones, and only while versions are mixed).
 */
async function acrossVersions(rt: ReadThrough, event: CacheEvent, logger: Logger | undefined): Promise<void> {
  if (event.event_type !== 'invalidate' && event.event_type !== 'update') return;
  const { keys, version } = event;
  if (keys === undefined || version === undefined || rt.l2 === undefined) return;
  for (const st of rt.statesNamed(event.namespace)) {
    if (st.ns.version === version) continue;
    const r = await rt.delete(st.ns, keys);
    if (!r.ok) {
      logger?.warn(
        { namespace: event.namespace, version: st.ns.version, from: version, code: r.error.code },
        'an invalidation from another version could not be applied to this version in L2',
      );
    }
  }
}

/** Namespaces invalidated as a whole before this pod started (or while it was cut off). */
export async function loadGenerations(rt: ReadThrough): Promise<void> {
  const l2 = rt.l2;
  if (!l2) return;
  const r = await l2.fence.generations();
  if (r.ok) for (const [name, g] of r.value) rt.setGeneration(name, g);
}

/** Copies ids of a namespace from L2 into this pod's L1 (a prewarm event, or this pod's own prewarm). */
export async function prewarmHere(
  rt: ReadThrough,
  name: string,
  ids: readonly string[],
): Promise<Result<number>> {
  const l2 = rt.l2;
  if (!l2 || !rt.l1) return ok(0);
  let filled = 0;
  for (const st of rt.statesNamed(name)) {
    const epoch = rt.epoch;
    const keys = ids.map((id) => st.keyBase + id);
    const r = await l2.readMany(keys);
    if (!r.ok) return r;
    const now = Date.now();
    r.value.forEach((e, i) => {
      if (e === undefined) return;
      // An entry past its TTL (within its grace) is not copied: the next read reloads it.
      if (st.timed && e.times !== undefined && now >= e.times.expiresAt) return;
      rt.putL1(
        st,
        keys[i] as string,
        ok(rt.frozen(st, e.value)),
        e.size,
        epoch,
        st.timed ? e.times : undefined,
      );
      filled++;
    });
  }
  return ok(filled);
}

/**
 * Drops namespace `name` from this pod's L1, as the bus does for everything after a gap: a pod that
 * did not acknowledge a fleet-acknowledged invalidation in time was fenced for it.
 */
export function dropNamespaceL1(rt: ReadThrough, name: string): number {
  rt.invalidated();
  let removed = 0;
  for (const st of rt.statesNamed(name)) {
    rt.dropInflight(st.keyBase);
    removed += rt.l1?.removeWhere(st.keyBase, () => true) ?? 0;
  }
  return removed;
}
