/**
 * Rendered Kubernetes objects, validated against their schemas (the npm `kubernetes-models` family,
 * offline) and typed by them: what `cachefleet deploy` checks before it applies anything, and what
 * the deploy tests (test/deploy) check their policy on.
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
import { ConfigMap, type IPodSpec, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
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
export const HASH_SUFFIX = /-[2456789bcdfghkmt]{10}$/;
export function unhashed(name: string): string {
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
