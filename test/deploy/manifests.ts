/**
 * What the kubelet would make of a container's environment, and the objects compared across
 * kustomize versions; the parsing and schema validation are the CLI's (`cachefleet deploy` runs
 * the same before it applies).
 */
import { type Manifests, name, unhashed, type Workload } from '@cachefleet/cli';
import { ConfigMap, type IContainer } from 'kubernetes-models/v1';

export { Manifests, name, parseManifests, podSpec, type Workload } from '@cachefleet/cli';

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
