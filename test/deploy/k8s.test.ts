/**
 * deploy/k8s: both overlays render with every kustomize this machine has (kustomize.ts), every
 * object validates against the Kubernetes, KEDA and prometheus-operator schemas, and what would be
 * applied keeps the deployment's promises: non-root pods, probes, resources, secrets by reference
 * only, network policies, monitors. The fleet's own settings (queues, Redis roles, ACLs, the apps'
 * environment) are checked in fleet-policy.ts, on the same renderings.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PodMonitor,
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { fleetPolicy } from './fleet-policy.js';
import { findKustomizers, kustomize } from './kustomize.js';
import {
  containerEnv,
  type Manifests,
  name,
  normalized,
  parseManifests,
  podSpec,
  selects,
} from './manifests.js';
import { SECRET_NAME, URL_WITH_PASSWORD } from './settings.js';

const ROOT = join(import.meta.dirname, '..', '..');
const OVERLAYS = { dev: 'cachefleet-dev', prod: 'cachefleet' } as const;
type Overlay = keyof typeof OVERLAYS;

interface Rendering {
  readonly overlay: Overlay;
  readonly source: string;
  readonly manifests: Manifests;
}
const renderings: Rendering[] = [];
const of = (overlay: Overlay) => renderings.filter((r) => r.overlay === overlay);

beforeAll(async () => {
  // The first run on a new machine may fetch Debian's kubectl (apt-get): up to a few minutes.
  const kustomizers = await findKustomizers();
  for (const overlay of Object.keys(OVERLAYS) as Overlay[]) {
    for (const k of kustomizers) {
      const text = await kustomize(k, join(ROOT, 'deploy', 'k8s', 'overlays', overlay));
      renderings.push({ overlay, source: `${k.source} (${k.version})`, manifests: parseManifests(text) });
    }
  }
}, 600_000);

/** The Secrets and keys docs/deploy.md tells the operator to create (`--from-literal=key=`). */
function documentedSecrets(): Set<string> {
  const docs = readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8');
  const out = new Set<string>();
  for (const block of docs.matchAll(/create secret generic (\S+)((?:[^\n]*\\\n)*[^\n]*)/g)) {
    for (const key of (block[2] ?? '').matchAll(/--from-literal=([a-z0-9-]+)=/g))
      out.add(`${block[1]}/${key[1]}`);
  }
  return out;
}

describe.each(Object.keys(OVERLAYS) as Overlay[])('overlay %s', (overlay) => {
  test('renders the same objects with every kustomize found, all valid against their schemas', () => {
    const [first, ...others] = of(overlay);
    expect(first).toBeDefined();
    for (const other of others) {
      // kustomize versions differ in content hashes, env order after a patch, and empty maps.
      expect(normalized(other.manifests), `${other.source} vs ${first?.source}`).toEqual(
        normalized(first?.manifests as Manifests),
      );
    }
  });

  test('everything lands in the overlay namespace, one object per kind and name', () => {
    for (const { manifests } of of(overlay)) {
      const seen = new Set<string>();
      for (const o of manifests.objects) {
        expect(o.metadata?.namespace, `${o.kind} ${name(o)}`).toBe(OVERLAYS[overlay]);
        const id = `${o.kind}/${name(o)}`;
        expect(seen.has(id), id).toBe(false);
        seen.add(id);
      }
    }
  });

  test('pods run as non-root, without privilege escalation, on a read-only root, with no capabilities', () => {
    for (const { manifests } of of(overlay)) {
      for (const w of manifests.workloads()) {
        const spec = podSpec(w);
        const where = `${w.kind} ${name(w)}`;
        expect(spec.securityContext?.runAsNonRoot, where).toBe(true);
        expect(spec.securityContext?.runAsUser, where).toBeGreaterThan(0);
        expect(spec.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const sc = c.securityContext;
          expect(sc?.allowPrivilegeEscalation, `${where}/${c.name}`).toBe(false);
          expect(sc?.readOnlyRootFilesystem, `${where}/${c.name}`).toBe(true);
          expect(sc?.capabilities?.drop, `${where}/${c.name}`).toContain('ALL');
          expect(sc?.privileged ?? false, `${where}/${c.name}`).toBe(false);
        }
      }
    }
  });

  test('every container requests CPU and memory, has a memory limit, and runs a pinned image', () => {
    for (const { manifests } of of(overlay)) {
      for (const w of manifests.workloads()) {
        const spec = podSpec(w);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          const where = `${name(w)}/${c.name}`;
          expect(c.resources?.requests?.cpu, where).toBeDefined();
          expect(c.resources?.requests?.memory, where).toBeDefined();
          expect(c.resources?.limits?.memory, where).toBeDefined();
          expect(c.image, where).toMatch(/^[^:@]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/);
          expect(c.image, where).not.toMatch(/:latest$/);
        }
      }
    }
  });

  test('every long-running container has a readiness and a liveness probe', () => {
    for (const { manifests } of of(overlay)) {
      for (const w of manifests.workloads()) {
        for (const c of podSpec(w).containers) {
          expect(c.readinessProbe, `${name(w)}/${c.name}`).toBeDefined();
          expect(c.livenessProbe, `${name(w)}/${c.name}`).toBeDefined();
        }
      }
    }
  });

  // A Secret object is no kind parseManifests knows: rendering one already fails.
  test('secrets reach containers by secretKeyRef only, all of them documented', () => {
    const documented = documentedSecrets();
    expect(documented.size).toBeGreaterThan(0);
    for (const { manifests } of of(overlay)) {
      for (const cm of manifests.all(ConfigMap)) {
        for (const [key, value] of Object.entries(cm.data ?? {})) {
          expect(SECRET_NAME.test(key), `ConfigMap ${name(cm)} key ${key}`).toBe(false);
          expect(value, `ConfigMap ${name(cm)} ${key}`).not.toMatch(URL_WITH_PASSWORD);
        }
      }
      for (const w of manifests.workloads()) {
        const spec = podSpec(w);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const e of c.env ?? []) {
            const where = `${name(w)}/${c.name} ${e.name}`;
            const ref = e.valueFrom?.secretKeyRef;
            if (ref !== undefined) expect(documented, where).toContain(`${ref.name}/${ref.key}`);
            if (SECRET_NAME.test(e.name)) expect(ref, where).toBeDefined();
            // A credential inside a URL must come from a reference: $(VAR), not text.
            expect(e.value ?? '', where).not.toMatch(URL_WITH_PASSWORD);
          }
        }
      }
    }
  });

  test('every $(VAR) in env values and args names a variable defined before it', () => {
    for (const { manifests } of of(overlay)) {
      for (const w of manifests.workloads()) {
        const spec = podSpec(w);
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          expect(containerEnv(manifests, w, c).unresolved, `${name(w)}/${c.name}`).toEqual([]);
        }
      }
    }
  });

  test('volumes mounted exist, and ConfigMap volumes name rendered ConfigMaps', () => {
    for (const { manifests } of of(overlay)) {
      const configMaps = new Set(manifests.all(ConfigMap).map(name));
      for (const w of manifests.workloads()) {
        const spec = podSpec(w);
        const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
        const claims = new Set(
          (w.kind === 'StatefulSet' ? (w.spec?.volumeClaimTemplates ?? []) : []).map(name),
        );
        for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const mount of c.volumeMounts ?? []) {
            expect(
              volumes.has(mount.name) || claims.has(mount.name),
              `${name(w)}/${c.name} ${mount.name}`,
            ).toBe(true);
          }
        }
        for (const v of volumes.values()) {
          if (v.configMap !== undefined)
            expect(configMaps, `${name(w)} ${v.name}`).toContain(v.configMap.name);
        }
      }
    }
  });

  test('ingress is denied by default and every pod is admitted by a policy of its own', () => {
    for (const { manifests } of of(overlay)) {
      const policies = manifests.all(NetworkPolicy);
      const denyAll = policies.find(
        (p) => Object.keys(p.spec?.podSelector ?? {}).length === 0 && (p.spec?.ingress ?? []).length === 0,
      );
      expect(denyAll?.spec?.policyTypes).toEqual(['Ingress']);
      for (const w of manifests.workloads()) {
        const labels = w.spec?.template.metadata?.labels ?? {};
        const own = policies.filter((p) => p !== denyAll && selects(p.spec?.podSelector ?? {}, labels));
        expect(own.length, `${w.kind} ${name(w)}`).toBeGreaterThan(0);
        // Each admitted port is one the pod listens on.
        const ports = new Set(podSpec(w).containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
        for (const p of own.flatMap((x) => x.spec?.ingress ?? []).flatMap((rule) => rule.ports ?? [])) {
          expect(ports, `${name(w)} port ${String(p.port)}`).toContain(p.port);
        }
      }
    }
  });

  test('the API is scraped through its Service, the workers through their pods, on their metrics ports', () => {
    for (const { manifests } of of(overlay)) {
      const sm = manifests.one(ServiceMonitor, 'api');
      const services = manifests
        .all(Service)
        .filter((s) => selects(sm.spec.selector, s.metadata?.labels ?? {}));
      expect(services.map(name)).toEqual(['api']);
      const servicePorts = services.flatMap((s) => (s.spec?.ports ?? []).map((p) => p.name));
      for (const e of sm.spec.endpoints ?? []) {
        expect(servicePorts).toContain(e.port);
        expect(e.path).toBe('/metrics');
      }
      const pm = manifests.one(PodMonitor, 'worker');
      const workers = manifests
        .workloads()
        .filter((w) => selects(pm.spec.selector, w.spec?.template.metadata?.labels ?? {}));
      expect(workers.length).toBeGreaterThan(0);
      for (const w of workers) {
        const ports = podSpec(w).containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
        for (const e of pm.spec.podMetricsEndpoints ?? []) expect(ports, name(w)).toContain(e.port);
      }
    }
  });

  test('the PrometheusRule carries deploy/prometheus/rules.yaml as it is', () => {
    const shipped: unknown = parse(readFileSync(join(ROOT, 'deploy', 'prometheus', 'rules.yaml'), 'utf8'));
    for (const { manifests } of of(overlay)) {
      const rule = manifests.one(PrometheusRule, 'cachefleet');
      // A difference: run deploy/prometheus/prometheus-rule.sh after changing rules.yaml.
      expect({ groups: rule.spec.groups }).toEqual(shipped);
      expect(rule.metadata?.labels).toMatchObject({ 'app.kubernetes.io/name': 'cachefleet' });
    }
  });

  test('the dashboards ConfigMap carries deploy/grafana/dashboards as they are, labelled for the Grafana sidecar', () => {
    const dir = join(ROOT, 'deploy', 'grafana', 'dashboards');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    for (const { manifests } of of(overlay)) {
      const cm = manifests.one(ConfigMap, 'cachefleet-dashboards');
      expect(cm.metadata?.labels).toMatchObject({ grafana_dashboard: '1' });
      expect(Object.keys(cm.data ?? {}).sort()).toEqual(files.sort());
      for (const f of files) expect(cm.data?.[f], f).toBe(readFileSync(join(dir, f), 'utf8'));
    }
  });

  test('the HPA scales the API Deployment; every PodDisruptionBudget covers a workload', () => {
    for (const { manifests } of of(overlay)) {
      const hpa = manifests.one(HorizontalPodAutoscaler, 'api');
      expect(hpa.spec?.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'api' });
      for (const pdb of manifests.all(PodDisruptionBudget)) {
        const covered = manifests
          .workloads()
          .filter((w) => selects(pdb.spec?.selector ?? {}, w.spec?.template.metadata?.labels ?? {}));
        expect(covered.map(name), `PDB ${name(pdb)}`).toEqual([name(pdb)]);
      }
    }
  });

  describe('the fleet', () => {
    fleetPolicy(() => of(overlay).map((r) => r.manifests), overlay, OVERLAYS[overlay]);
  });
});
