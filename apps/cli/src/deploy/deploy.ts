import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { z } from 'zod';
import { CliError } from '../errors.js';
import type { ClusterVerbs, Kubectl } from './kubectl.js';
import { type Manifests, parseManifests } from './manifests.js';

/** The overlays a deploy may name: the folders under deploy/k8s/overlays, nothing else. */
export function overlaysIn(root: string): string[] {
  const dir = join(root, 'deploy', 'k8s', 'overlays');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'kustomization.yaml')))
    .map((e) => e.name)
    .sort();
}

export interface RenderedOverlay {
  /** kubectl's output as it is: what `apply` is given. */
  readonly yaml: string;
  readonly manifests: Manifests;
}

/** Renders an overlay with the real kubectl and validates every object against its schema. */
export async function renderOverlay(
  kubectl: Kubectl,
  root: string,
  overlay: string,
): Promise<RenderedOverlay> {
  const yaml = await kubectl.kustomize(join(root, 'deploy', 'k8s', 'overlays', overlay));
  try {
    return { yaml, manifests: parseManifests(yaml) };
  } catch (error) {
    throw new CliError('E_CLI_DEPLOY', `overlay ${overlay}: ${(error as Error).message}`, { cause: error });
  }
}

const fleetStats = z.looseObject({
  namespaces: z.array(
    z.looseObject({
      namespace: z.string(),
      l1: z.looseObject({ hits: z.number().min(0) }),
      l2: z.looseObject({ hits: z.number().min(0), misses: z.number().min(0) }),
    }),
  ),
});

export interface FleetHitRate {
  /** Hits (L1 + L2) over reads, every namespace and process together; undefined: no reads yet. */
  readonly rate: number | undefined;
  readonly reads: number;
}

/**
 * One call to the admin API with the admin token: the status and the JSON body (undefined when
 * none). No answer in 10 s is E_CLI_API (exit 3), a refused token E_CLI_API_TOKEN (exit 2).
 */
async function adminCall(
  method: 'GET' | 'POST',
  apiUrl: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ what: string; status: number; json: unknown }> {
  const url = new URL(path, apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`);
  const what = `${method} ${url.href}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    const cause = (error as Error).cause;
    throw new CliError('E_CLI_API', `${what}: ${cause instanceof Error ? cause.message : String(error)}`);
  }
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    throw new CliError('E_CLI_API_TOKEN', `${what}: ${response.status}: CACHEFLEET_ADMIN_TOKEN refused`);
  }
  return { what, status: response.status, json: await response.json().catch(() => undefined) };
}

/** The fleet's hit rate from `GET /cache/stats?scope=fleet`. */
export async function fleetHitRate(apiUrl: string, token: string | undefined): Promise<FleetHitRate> {
  const r = await adminCall('GET', apiUrl, 'cache/stats?scope=fleet&samples=0', token);
  const parsed = fleetStats.safeParse(r.status === 200 ? r.json : undefined);
  if (!parsed.success) throw new CliError('E_CLI_API', `${r.what}: ${r.status}, no fleet view`);
  let hits = 0;
  let misses = 0;
  for (const n of parsed.data.namespaces) {
    hits += n.l1.hits + n.l2.hits;
    misses += n.l2.misses;
  }
  const reads = hits + misses;
  return { rate: reads === 0 ? undefined : hits / reads, reads };
}

const enqueued = z.looseObject({ jobId: z.string().min(1) });

/** `POST /cache/prewarm {type}` (asynchronous: the warm job's id, not its end). */
export async function requestPrewarm(
  apiUrl: string,
  token: string | undefined,
  type: 'critical' | 'hot' | 'all',
): Promise<string> {
  const r = await adminCall('POST', apiUrl, 'cache/prewarm', token, { type });
  const parsed = enqueued.safeParse(r.json);
  if (r.status !== 202 || !parsed.success)
    throw new CliError('E_CLI_API', `${r.what}: ${r.status}, no job id`);
  return parsed.data.jobId;
}

export interface DeployPlan {
  readonly manifests: Manifests;
  readonly yaml: string;
  readonly warmupMs: number;
  readonly minHitRate: number;
  readonly rolloutTimeoutSeconds: number;
  /** Reads the fleet hit rate after the warm-up. */
  readonly hitRate: () => Promise<FleetHitRate>;
  /** Starts a prewarm once the deploy is kept (G4); its job id. None: no prewarm. */
  readonly prewarm?: () => Promise<string>;
  readonly sleep: (ms: number) => Promise<void>;
  readonly say: (line: string) => void;
}

export type DeployOutcome =
  | { readonly ok: true; readonly rate: number; readonly prewarmJob?: string }
  | { readonly ok: false; readonly rate: number | undefined; readonly rolledBack: readonly string[] };

/**
 * apply → rollout status of every Deployment and StatefulSet (Redis first: the apps wait for it) →
 * warm-up → the hit-rate gate → a prewarm when it passes, `rollout undo` of the Deployments when not. A rollout
 * that does not finish rejects before the gate (nothing is undone: kubectl says what is stuck).
 */
export async function deploy(cluster: ClusterVerbs, plan: DeployPlan): Promise<DeployOutcome> {
  const { manifests, say } = plan;
  say(`applying ${manifests.objects.length} objects`);
  const applied = await cluster.apply(plan.yaml);
  for (const line of applied.trim().split('\n').filter(Boolean)) say(`  ${line}`);
  const statefulSets = manifests.all(StatefulSet);
  const deployments = manifests.all(Deployment);
  for (const w of [...statefulSets, ...deployments]) {
    const name = w.metadata?.name ?? '';
    say(`waiting for ${w.kind} ${name} (at most ${plan.rolloutTimeoutSeconds} s)`);
    await cluster.rolloutStatus(w.kind, name, w.metadata?.namespace ?? 'default', plan.rolloutTimeoutSeconds);
  }
  if (plan.warmupMs > 0) {
    say(`rolled out; warming up for ${Math.round(plan.warmupMs / 1000)} s before the hit-rate check`);
    await plan.sleep(plan.warmupMs);
  }
  const { rate, reads } = await plan.hitRate();
  const shown = rate === undefined ? 'no reads yet' : `${(rate * 100).toFixed(1)}% of ${reads} reads`;
  if (rate !== undefined && rate >= plan.minHitRate) {
    say(`fleet hit rate ${shown}: at least ${plan.minHitRate}, deploy kept`);
    if (plan.prewarm === undefined) return { ok: true, rate };
    const prewarmJob = await plan.prewarm();
    say(`prewarm enqueued: job ${prewarmJob} (cachefleet jobs show ${prewarmJob})`);
    return { ok: true, rate, prewarmJob };
  }
  say(`fleet hit rate ${shown}: below ${plan.minHitRate}, rolling the Deployments back`);
  const rolledBack: string[] = [];
  for (const d of deployments) {
    const name = d.metadata?.name ?? '';
    await cluster.rolloutUndo('Deployment', name, d.metadata?.namespace ?? 'default');
    rolledBack.push(name);
    say(`  rolled back deployment/${name}`);
  }
  return { ok: false, rate, rolledBack };
}
