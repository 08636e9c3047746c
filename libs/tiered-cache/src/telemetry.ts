import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EventBus } from './bus/event-bus.js';
import type { RedisStore } from './drivers/redis/store.js';
import type { L2Sample, RedisNodeInfo } from './drivers/redis/telemetry.js';
import { ok, type Result } from './result.js';
import type { NamespaceState } from './stack/state.js';
import type { TierStats } from './stats.js';

/**
 * The fleet's own telemetry (issue 13, docs/telemetry.md): every process with a cache writes a
 * compact snapshot of its counters to the cache Redis every few seconds (node-cron, a per-process
 * duty) with a TTL of three intervals, so a dead process leaves the view by itself; any process
 * reads the fleet back and adds Redis's INFO and a sampled size of each namespace.
 */

const count = z.number().int().nonnegative();

export const podSnapshotSchema = z.object({
  pod: z.string().min(1).max(128),
  /** What the process is: `api`, `worker`, `app` (a library user), … */
  role: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  host: z.string().max(255),
  pid: count,
  startedAt: count,
  /** When the snapshot was taken, ms since the epoch. */
  at: count,
  intervalMs: z.number().int().positive(),
  /** The active implementation (`tiered`, `redis`, …; `null` when the cache is switched off). */
  impl: z.string().max(32),
  l1: z
    .object({ entries: count, bytes: count, maxEntries: count, maxBytes: count, evictions: count })
    .optional(),
  l2: z
    .object({ available: z.boolean(), breaker: z.string().max(16), pendingDeletes: count, failovers: count })
    .optional(),
  bus: z
    .object({ connected: z.boolean(), lagMs: count, applied: count, gaps: count, flushes: count })
    .optional(),
  namespaces: z
    .array(
      z.object({
        namespace: z.string().min(1).max(64),
        version: z.number().int().positive(),
        l1Hits: count,
        l2Hits: count,
        /** Reads neither tier served. */
        misses: count,
        loads: count,
        sets: count,
        deletes: count,
        invalidations: count,
        staleServed: count,
        /** Over the interval since this process's previous snapshot (0 in its first). */
        readsPerSecond: z.number().nonnegative(),
        loadsPerSecond: z.number().nonnegative(),
        /** The tuner's factors in force in this process (docs/tuning.md); absent from older versions. */
        l1TtlFactor: z.number().positive().optional(),
        l2TtlFactor: z.number().positive().optional(),
      }),
    )
    .max(1_000),
  /**
   * Requests and errors (5xx answered) per namespace and rollout cohort since the process started
   * (REQUIREMENTS A8): only API pods report them (`Cache#reportCohorts`); the tuner's rollout guard
   * reads the `cache` cohort's error rate from them.
   */
  cohorts: z
    .array(
      z.object({
        namespace: z.string().min(1).max(64),
        cohort: z.enum(['cache', 'control']),
        requests: count,
        errors: count,
      }),
    )
    .max(2_000)
    .optional(),
});
export type PodSnapshot = z.output<typeof podSnapshotSchema>;
export type CohortCount = NonNullable<PodSnapshot['cohorts']>[number];

export interface TierRates {
  readonly hits: number;
  readonly misses: number;
  readonly hitRate: number;
}

export interface FleetNamespace {
  readonly namespace: string;
  /** Versions the processes run (more than one: a rollout in progress). */
  readonly versions: readonly number[];
  readonly pods: number;
  readonly l1: TierRates;
  readonly l2: TierRates;
  readonly combinedHitRate: number;
  readonly loads: number;
  readonly deletes: number;
  readonly invalidations: number;
  readonly staleServed: number;
  /** Summed over the processes, each over its last interval. */
  readonly readsPerSecond: number;
  readonly loadsPerSecond: number;
  /** Sampled estimate of the namespace's keys and bytes in L2 (absent: not seen in the sample). */
  readonly l2Entries: number | undefined;
  readonly l2Bytes: number | undefined;
}

export interface FleetView {
  readonly at: number;
  /** Live processes, by role then pod id. */
  readonly pods: readonly PodSnapshot[];
  /** Counters summed over the processes (each since its own start). */
  readonly namespaces: readonly FleetNamespace[];
  readonly redis: readonly RedisNodeInfo[];
  readonly sample: L2Sample | undefined;
  /** Snapshots found that did not validate (another version's, or damaged): counted, not shown. */
  readonly invalid: number;
}

function rate(hits: number, misses: number): number {
  return hits + misses === 0 ? 0 : hits / (hits + misses);
}

/** This process's snapshot, from its per-namespace counters and tiers. */
export function takeSnapshot(s: {
  readonly pod: string;
  readonly role: string;
  readonly startedAt: number;
  readonly intervalMs: number;
  readonly impl: string;
  readonly states: readonly (NamespaceState | undefined)[];
  readonly tiers: TierStats;
  readonly l2: RedisStore | undefined;
  readonly bus: EventBus | undefined;
  readonly cohorts?: readonly CohortCount[] | undefined;
}): PodSnapshot {
  const { tiers, l2, bus } = s;
  return {
    pod: s.pod,
    role: s.role,
    host: hostname(),
    pid: process.pid,
    startedAt: s.startedAt,
    at: Date.now(),
    intervalMs: s.intervalMs,
    impl: s.impl,
    ...(tiers.l1 ? { l1: tiers.l1 } : {}),
    ...(tiers.l2 && l2
      ? {
          l2: {
            available: tiers.l2.available,
            breaker: tiers.l2.breaker,
            pendingDeletes: tiers.l2.pendingDeletes,
            failovers: l2.failovers,
          },
        }
      : {}),
    ...(bus
      ? {
          bus: {
            connected: bus.connected,
            lagMs: Math.round(bus.lagMs),
            applied: bus.stats.applied,
            gaps: bus.stats.gaps,
            flushes: bus.stats.flushes,
          },
        }
      : {}),
    namespaces: s.states
      .filter((st): st is NamespaceState => st !== undefined)
      .map((st) => ({
        namespace: st.ns.name,
        version: st.ns.version,
        l1Hits: st.l1Hits,
        l2Hits: st.l2Hits,
        misses: st.misses,
        loads: st.loads,
        sets: st.sets,
        deletes: st.dels,
        invalidations: st.invalidations,
        staleServed: st.staleServed,
        readsPerSecond: 0,
        loadsPerSecond: 0,
        l1TtlFactor: st.l1TtlFactor,
        l2TtlFactor: st.l2TtlFactor,
      })),
    ...(s.cohorts !== undefined ? { cohorts: [...s.cohorts] } : {}),
  };
}

/** Sums the snapshots per namespace and joins the sampled L2 sizes. */
export function fleetView(
  pods: readonly PodSnapshot[],
  redis: readonly RedisNodeInfo[],
  sample: L2Sample | undefined,
  invalid: number,
): FleetView {
  const byName = new Map<
    string,
    {
      versions: Set<number>;
      pods: number;
      l1: number;
      l2: number;
      misses: number;
      loads: number;
      deletes: number;
      invalidations: number;
      stale: number;
      rps: number;
      lps: number;
    }
  >();
  for (const p of pods) {
    for (const n of p.namespaces) {
      const into = byName.get(n.namespace) ?? {
        versions: new Set<number>(),
        pods: 0,
        l1: 0,
        l2: 0,
        misses: 0,
        loads: 0,
        deletes: 0,
        invalidations: 0,
        stale: 0,
        rps: 0,
        lps: 0,
      };
      into.versions.add(n.version);
      into.pods++;
      into.l1 += n.l1Hits;
      into.l2 += n.l2Hits;
      into.misses += n.misses;
      into.loads += n.loads;
      into.deletes += n.deletes;
      into.invalidations += n.invalidations;
      into.stale += n.staleServed;
      into.rps += n.readsPerSecond;
      into.lps += n.loadsPerSecond;
      byName.set(n.namespace, into);
    }
  }
  const sizes = new Map(sample?.namespaces.map((n) => [n.namespace, n]) ?? []);
  const namespaces = [...byName]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([namespace, t]): FleetNamespace => {
      const l1Misses = t.l2 + t.misses;
      const size = sizes.get(namespace);
      return {
        namespace,
        versions: [...t.versions].sort((a, b) => a - b),
        pods: t.pods,
        l1: { hits: t.l1, misses: l1Misses, hitRate: rate(t.l1, l1Misses) },
        l2: { hits: t.l2, misses: t.misses, hitRate: rate(t.l2, t.misses) },
        combinedHitRate: rate(t.l1 + t.l2, t.misses),
        loads: t.loads,
        deletes: t.deletes,
        invalidations: t.invalidations,
        staleServed: t.stale,
        readsPerSecond: t.rps,
        loadsPerSecond: t.lps,
        l2Entries: size?.entries,
        l2Bytes: size?.bytes,
      };
    });
  const sorted = [...pods].sort((a, b) => a.role.localeCompare(b.role) || a.pod.localeCompare(b.pod));
  return { at: Date.now(), pods: sorted, namespaces, redis, sample, invalid };
}

/** Reads every live snapshot and validates it (a boundary: other processes wrote them). */
export async function readFleet(l2: RedisStore, samples: number): Promise<Result<FleetView>> {
  const [stored, info, sample] = await Promise.all([
    l2.telemetry.read(),
    l2.telemetry.info(),
    samples > 0 ? l2.telemetry.sample(samples) : Promise.resolve(undefined),
  ]);
  if (!stored.ok) return stored;
  if (!info.ok) return info;
  if (sample !== undefined && !sample.ok) return sample;
  const pods: PodSnapshot[] = [];
  let invalid = 0;
  for (const text of stored.value) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      invalid++;
      continue;
    }
    const parsed = podSnapshotSchema.safeParse(raw);
    if (parsed.success) pods.push(parsed.data);
    else invalid++;
  }
  return ok(fleetView(pods, info.value, sample?.value, invalid));
}

/** What a fleet-acknowledged invalidation needs of a snapshot: the pod, whether it holds an L1 and hears the bus. */
const memberSchema = z.object({
  pod: z.string().min(1).max(128),
  l1: z.object({}).optional(),
  bus: z.object({}).optional(),
});

/**
 * The live processes that must acknowledge a fleet-acknowledged invalidation: those whose snapshot
 * (the heartbeat) says they hold an L1 and hear the bus, but `self` (docs/design-fleet-ack.md).
 */
export async function ackingPods(l2: RedisStore, self: string): Promise<Result<string[]>> {
  const stored = await l2.telemetry.read();
  if (!stored.ok) return stored;
  const pods: string[] = [];
  for (const text of stored.value) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      continue;
    }
    const m = memberSchema.safeParse(raw);
    if (m.success && m.data.pod !== self && m.data.l1 !== undefined && m.data.bus !== undefined)
      pods.push(m.data.pod);
  }
  return ok(pods);
}

const fencedSchema = z.array(z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/));

/** Takes the namespaces this pod was fenced for; what is not a namespace name is dropped. */
export async function takeFences(l2: RedisStore, pod: string): Promise<Result<string[]>> {
  const r = await l2.telemetry.takeFences(pod);
  if (!r.ok) return r;
  const parsed = fencedSchema.safeParse(r.value);
  return ok(parsed.success ? parsed.data : []);
}

/** Reads and loads per second of each namespace since `previous` (this process's last snapshot). */
function withRates(now: PodSnapshot, previous: PodSnapshot | undefined): PodSnapshot {
  if (previous === undefined) return now;
  const seconds = (now.at - previous.at) / 1000;
  if (seconds <= 0) return now;
  const before = new Map(previous.namespaces.map((n) => [`${n.namespace}:${n.version}`, n]));
  const reads = (n: PodSnapshot['namespaces'][number]) => n.l1Hits + n.l2Hits + n.misses;
  return {
    ...now,
    namespaces: now.namespaces.map((n) => {
      const b = before.get(`${n.namespace}:${n.version}`);
      if (b === undefined) return n;
      return {
        ...n,
        readsPerSecond: Math.max(0, (reads(n) - reads(b)) / seconds),
        loadsPerSecond: Math.max(0, (n.loads - b.loads) / seconds),
      };
    }),
  };
}

/** The cron expression of a snapshot every `seconds` (a divisor of 60: evenly spaced ticks). */
export function telemetryCron(seconds: number): string {
  return seconds === 60 ? '0 * * * * *' : `*/${seconds} * * * * *`;
}

export interface TelemetryPublisherOptions {
  readonly pod: string;
  readonly intervalSeconds: number;
  readonly snapshot: () => PodSnapshot;
  readonly l2: RedisStore;
  readonly logger: Logger | undefined;
  /** Run after every tick's publish: the heartbeat is when a pod takes its fences. */
  readonly afterPublish?: () => Promise<void>;
}

/**
 * Publishes this process's snapshot on a node-cron schedule (unref'd: it never keeps a process
 * alive; no overlap: a slow Redis skips ticks rather than piling them up). The TTL is three
 * intervals: a process that stops publishing leaves the fleet view within them.
 */
export class TelemetryPublisher {
  readonly #o: TelemetryPublisherOptions;
  readonly #ttlMs: number;
  #task: ScheduledTask | undefined;
  #failing = false;
  #last: PodSnapshot | undefined;

  constructor(o: TelemetryPublisherOptions) {
    this.#o = o;
    this.#ttlMs = o.intervalSeconds * 3_000;
  }

  /** Publishes once now, then on every tick. */
  async start(): Promise<void> {
    await this.publish();
    this.#task = cron.schedule(telemetryCron(this.#o.intervalSeconds), () => this.publish(), {
      name: `cachefleet-telemetry-${this.#o.pod}`,
      noOverlap: true,
      unref: true,
    });
  }

  async publish(): Promise<Result<void>> {
    const o = this.#o;
    o.l2.noteMasters();
    const snapshot = withRates(o.snapshot(), this.#last);
    this.#last = snapshot;
    const r = await o.l2.telemetry.publish(o.pod, JSON.stringify(snapshot), this.#ttlMs);
    // One line when publishing starts failing and one when it works again, not one per tick.
    if (!r.ok && !this.#failing) o.logger?.warn({ code: r.error.code }, 'telemetry snapshot not published');
    if (r.ok && this.#failing) o.logger?.info('telemetry snapshot published again');
    this.#failing = !r.ok;
    await o.afterPublish?.();
    return r;
  }

  /** Stops the schedule and takes the snapshot out of the view. */
  async stop(): Promise<void> {
    const task = this.#task;
    this.#task = undefined;
    if (task !== undefined) await task.destroy();
    await this.#o.l2.telemetry.remove(this.#o.pod);
  }
}
