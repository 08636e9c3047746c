import { type AuditInput, type RedisNodeInfo, ROLLOUT_SETTING } from '@cachefleet/tiered-cache';
import type { TuneResult } from '../catalogue.js';
import { guardRollouts } from '../tune/guard.js';
import {
  type Decision,
  decide,
  EMPTY_MEMORY,
  type TuneMemory,
  tuneMemorySchema,
  windowOf,
} from '../tune/rules.js';
import { type JobContext, must } from './context.js';

/** Longer than a tick may take (the job's timeout is 50 s); released at its end. */
const LOCK_MS = 60_000;

/** Highest used / maxmemory over the masters that have a maxmemory (undefined: none has). */
export function pressureOf(nodes: readonly RedisNodeInfo[]): number | undefined {
  let p: number | undefined;
  for (const n of nodes) {
    if (n.role !== 'master' || n.maxMemoryBytes <= 0) continue;
    p = Math.max(p ?? 0, n.usedMemoryBytes / n.maxMemoryBytes);
  }
  return p;
}

function memoryOf(text: string | null): TuneMemory {
  if (text === null) return EMPTY_MEMORY;
  try {
    const parsed = tuneMemorySchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : EMPTY_MEMORY;
  } catch {
    return EMPTY_MEMORY;
  }
}

/**
 * One tick of the tuner (REQUIREMENTS E3, docs/tuning.md): the fleet's counters over the window
 * since the previous tick, Redis's memory pressure, the rules (a pure function), then — unless a
 * dry run — the settings and audit entries and the tuner's memory in one MULTI, a `config` event
 * per namespace changed (pods apply it live), and a hot warm per invalidation storm. A dry run
 * writes only its audit entries (marked dry-run).
 */
export async function tuneHandler(ctx: JobContext<'tune'>): Promise<TuneResult> {
  const dryRun = ctx.payload.dryRun;
  const store = must(ctx.cache.tuning);
  const token = ctx.job.id ?? `tune-${Date.now()}`;
  const none = { dryRun, windowSeconds: null, pressure: null, namespaces: 0, decisions: [], warmJobIds: [] };
  if (!must(await store.lock(token, LOCK_MS))) {
    ctx.log.info('another tune tick holds the lock: skipped');
    return { ...none, skipped: true };
  }
  try {
    const [view, stateText, settings, pins, rollouts] = await Promise.all([
      ctx.cache.fleetView(0),
      store.state(),
      store.settings(),
      store.pins(),
      store.rollouts(),
    ]);
    const fleet = must(view);
    const memory = memoryOf(must(stateText));
    const at = Date.now();
    const window = windowOf(
      memory,
      // Invalidations: ids deleted plus pattern, tag and namespace invalidations, each counted
      // once, by the process that issued it.
      fleet.pods.map((p) => ({
        pod: p.pod,
        startedAt: p.startedAt,
        namespaces: [
          ...p.namespaces.map((n) => ({
            namespace: n.namespace,
            l1Hits: n.l1Hits,
            l2Hits: n.l2Hits,
            misses: n.misses,
            invalidations: n.invalidations + n.deletes,
          })),
          // The rollout guard's input: the cache cohort's requests and 5xx (API pods only).
          ...(p.cohorts ?? [])
            .filter((c) => c.cohort === 'cache')
            .map((c) => ({
              namespace: c.namespace,
              l1Hits: 0,
              l2Hits: 0,
              misses: 0,
              invalidations: 0,
              cacheRequests: c.requests,
              cacheErrors: c.errors,
            })),
        ],
      })),
      at,
    );
    const pressure = pressureOf(fleet.redis);
    const namespaces = ctx.definitions.namespaces.map((ns) => ({
      namespace: ns.name,
      l1TtlMs: ns.ttl.l1 * 1000,
    }));
    // Several definitions may share a name (v1 and v2 in a rollout): tuned once.
    const unique = [...new Map(namespaces.map((n) => [n.namespace, n])).values()];
    const outcome = decide(
      memory,
      {
        at,
        namespaces: unique,
        window: window.namespaces,
        pressure,
        settings: must(settings),
        pins: must(pins),
      },
      ctx.tune.config,
    );
    const mode = dryRun ? 'dry-run' : 'applied';
    const by = `tuner:${ctx.job.id ?? '?'}`;
    const guard = guardRollouts(
      {
        at,
        windowFrom: memory.at,
        namespaces: unique.map((n) => n.namespace),
        stages: must(rollouts),
        window: window.namespaces,
        previousHitRates: memory.hitRates ?? {},
      },
      ctx.tune.config,
      by,
    );
    const decisions = [...outcome.decisions, ...guard.decisions];
    const audit: AuditInput[] = decisions.map((d) => auditOf(d, at, mode, by));
    for (const d of decisions) {
      ctx.tune.counted(d, mode);
      const line = `tune ${mode}: ${d.rule} ${d.action} ${d.namespace}`;
      // A rollback is an incident (the cache cohort is hurting): warn, with the stages in the line.
      if (d.action === 'rollback')
        ctx.log.warn({ tune: { ...d, mode } }, `${line} ${d.before}% -> ${d.after}%`);
      else ctx.log.info({ tune: { ...d, mode } }, line);
    }
    const warmJobIds: string[] = [];
    if (dryRun) {
      if (audit.length > 0) must(await store.commit(new Map(), audit));
    } else {
      const next: TuneMemory = { at, pods: window.pods, flags: outcome.flags, hitRates: guard.hitRates };
      must(
        await store.commit(outcome.settings, audit, { state: JSON.stringify(next), rollouts: guard.stages }),
      );
      for (const [namespace, tuning] of outcome.settings) {
        const r = await ctx.cache.applyTuning(namespace, tuning);
        // Stored already: a pod that misses the event reads the settings within its telemetry interval.
        if (!r.ok) ctx.log.warn({ namespace, code: r.error.code }, 'tune: config event not published');
      }
      for (const d of guard.decisions) {
        if (d.after === undefined) continue;
        // Stored already: API pods also read the stages every telemetry interval.
        const r = await ctx.cache.publishConfig(d.namespace, { [ROLLOUT_SETTING]: d.after });
        if (!r.ok)
          ctx.log.warn(
            { namespace: d.namespace, code: r.error.code },
            'rollback: config event not published',
          );
      }
      for (const d of outcome.decisions) {
        if (d.action !== 'prewarm') continue;
        const job = await ctx.jobs.enqueue('warm', { type: 'hot', namespaces: [d.namespace] });
        warmJobIds.push(job.id);
      }
    }
    return {
      dryRun,
      skipped: false,
      windowSeconds: window.seconds ?? null,
      pressure: pressure ?? null,
      namespaces: unique.length,
      decisions: decisions.map((d) => ({ ...d, inputs: { ...d.inputs } })),
      warmJobIds,
    };
  } finally {
    await store.unlock(token);
  }
}

function auditOf(d: Decision, at: number, mode: 'applied' | 'dry-run', by: string): AuditInput {
  return {
    at,
    namespace: d.namespace,
    rule: d.rule,
    action: d.action,
    ...(d.setting !== undefined ? { setting: d.setting } : {}),
    ...(d.before !== undefined ? { before: d.before } : {}),
    ...(d.after !== undefined ? { after: d.after } : {}),
    mode,
    by,
    inputs: { ...d.inputs },
  };
}
