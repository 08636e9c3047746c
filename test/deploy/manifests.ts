/**
 * Rendered Kubernetes objects, validated against their schemas (the npm `kubernetes-models` family,
 * offline) and typed by them, plus what the kubelet would make of a container's environment.
 */

import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import {
  ConfigMap,
  type IContainer,
  type IPodSpec,
  PersistentVolumeClaim,
  Service,
} from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** The kinds the tree may contain, each with its schema. Another kind is an error, not a pass. */
const MODELS = [
  ConfigMap,
  Service,
  PersistentVolumeClaim,
  Deployment,
  StatefulSet,
  PodDisruptionBudget,
  HorizontalPodAutoscaler,
  NetworkPolicy,
  ScaledObject,
  TriggerAuthentication,
  ServiceMonitor,
  PodMonitor,
  PrometheusRule,
] as const;
type Model = InstanceType<(typeof MODELS)[number]>;
type ModelClass = (typeof MODELS)[number];

const typeMeta = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({ name: z.string().min(1), namespace: z.string().optional() }),
});

/** Parses `kubectl kustomize` output; every object must be of a known kind and valid. */
export function parseManifests(text: string): Manifests {
  const objects: Model[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`YAML: ${doc.errors[0]?.message}`);
    const data: unknown = doc.toJS();
    if (data === null) continue;
    const meta = typeMeta.parse(data);
    const model = MODELS.find((m) => m.apiVersion === meta.apiVersion && m.kind === meta.kind);
    if (model === undefined)
      throw new Error(`${meta.apiVersion} ${meta.kind} ${meta.metadata.name}: no schema known`);
    const object = new (model as new (data: unknown) => Model)(data);
    try {
      object.validate();
    } catch (error) {
      throw new Error(`${meta.kind} ${meta.metadata.name}: ${(error as Error).message}`);
    }
    objects.push(object);
  }
  return new Manifests(objects);
}

export type Workload = Deployment | StatefulSet;

export class Manifests {
  constructor(readonly objects: readonly Model[]) {}

  all<C extends ModelClass>(model: C): InstanceType<C>[] {
    return this.objects.filter((o): o is InstanceType<C> => o instanceof model);
  }

  one<C extends ModelClass>(model: C, name: string): InstanceType<C> {
    const found = this.all(model).filter((o) => o.metadata?.name === name);
    if (found.length !== 1) throw new Error(`expected one ${model.kind} ${name}, found ${found.length}`);
    return found[0] as InstanceType<C>;
  }

  workloads(): Workload[] {
    return [...this.all(Deployment), ...this.all(StatefulSet)];
  }

  /** A ConfigMap by the name it had before kustomize appended its content hash. */
  configMap(name: string): ConfigMap {
    const found = this.all(ConfigMap).filter((c) => unhashed(c.metadata?.name ?? '') === name);
    if (found.length !== 1) throw new Error(`expected one ConfigMap ${name}-<hash>, found ${found.length}`);
    return found[0] as ConfigMap;
  }
}

/** kustomize's hash suffix: `-` and ten characters of its alphabet. */
const HASH_SUFFIX = /-[2456789bcdfghkmt]{10}$/;
function unhashed(name: string): string {
  return name.replace(HASH_SUFFIX, '');
}

export function podSpec(w: Workload): IPodSpec {
  const spec = w.spec?.template.spec;
  if (spec === undefined) throw new Error(`${w.kind} ${w.metadata?.name}: no pod spec`);
  return spec;
}

export function name(o: { metadata?: { name?: string } }): string {
  return o.metadata?.name ?? '';
}

/** Stands in for a Secret's value when a container's environment is parsed by the app's loaders. */
function fakeSecret(secret: string, key: string): string {
  if (key === 'url') return `postgres://cachefleet:0123456789abcdef@${secret}.example:5432/cachefleet`;
  // AES-256: 32 bytes as 64 hex digits.
  if (key === 'encryption-key') return '0123456789abcdef'.repeat(4);
  return `${secret}-${key}-0123456789abcdef`.replace(/[^A-Za-z0-9-]/g, '-');
}

interface ContainerEnv {
  /** Name → value as the process sees it (secrets replaced by fakeSecret). */
  readonly env: Record<string, string>;
  /** The container's args after `$(VAR)` expansion. */
  readonly args: string[];
  /** `$(VAR)` references to variables not defined before them (the kubelet leaves them as text). */
  readonly unresolved: string[];
}

/**
 * The environment the kubelet gives a container: envFrom ConfigMaps first, then `env` in order,
 * each value expanded against what is defined before it; args expanded against all of it.
 */
export function containerEnv(m: Manifests, w: Workload, c: IContainer): ContainerEnv {
  const env: Record<string, string> = {};
  const unresolved: string[] = [];
  const expand = (text: string) =>
    text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, ref?: string) => {
      if (ref === undefined) return '$';
      const value = env[ref];
      if (value === undefined) {
        unresolved.push(ref);
        return whole;
      }
      return value;
    });
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef?.name;
    if (ref === undefined) throw new Error(`${name(w)}/${c.name}: envFrom other than a ConfigMap`);
    const cm = m.all(ConfigMap).find((x) => name(x) === ref);
    if (cm === undefined) throw new Error(`${name(w)}/${c.name}: envFrom ConfigMap ${ref} is not rendered`);
    Object.assign(env, cm.data ?? {});
  }
  for (const e of c.env ?? []) {
    const secret = e.valueFrom?.secretKeyRef;
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (secret !== undefined) env[e.name] = fakeSecret(secret.name ?? '', secret.key);
    else if (field === 'metadata.name') env[e.name] = `${name(w)}-0`;
    else if (field === 'metadata.namespace') env[e.name] = w.metadata?.namespace ?? '';
    else throw new Error(`${name(w)}/${c.name}: env ${e.name} has a source this test does not model`);
  }
  return { env, args: (c.args ?? []).map(expand), unresolved };
}

interface LabelSelector {
  readonly matchLabels?: Record<string, string>;
  readonly matchExpressions?: readonly { key: string; operator: string; values?: string[] }[];
}

/** Whether a label selector selects these labels (an empty selector selects everything). */
export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const value = labels[e.key];
    const ok =
      e.operator === 'In'
        ? value !== undefined && (e.values ?? []).includes(value)
        : e.operator === 'NotIn'
          ? value === undefined || !(e.values ?? []).includes(value)
          : e.operator === 'Exists'
            ? value !== undefined
            : value === undefined;
    if (!ok) return false;
  }
  return true;
}

/**
 * The objects with what legitimately differs between kustomize versions taken out: content hashes
 * of generated names, the place of an env entry a patch changed, empty label/annotation maps.
 */
export function normalized(m: Manifests): unknown[] {
  const generated = new Set(
    m
      .all(ConfigMap)
      .map(name)
      .filter((n) => n !== unhashed(n)),
  );
  const walk = (value: unknown, key = ''): unknown => {
    if (typeof value === 'string') return generated.has(value) ? unhashed(value) : value;
    if (Array.isArray(value)) {
      const items = value.map((v) => walk(v));
      if (key !== 'env') return items;
      const byName = (v: unknown) => JSON.stringify((v as { name?: unknown }).name);
      return items.sort((a, b) => byName(a).localeCompare(byName(b)));
    }
    if (value !== null && typeof value === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        const empty = v !== null && typeof v === 'object' && Object.keys(v).length === 0;
        if ((k === 'labels' || k === 'annotations') && empty) continue;
        out[k] = walk(v, k);
      }
      return out;
    }
    return value;
  };
  return m.objects
    .map((o) => ({ id: `${o.kind}/${unhashed(name(o))}`, object: walk(o.toJSON()) }))
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((o) => o.object);
}
