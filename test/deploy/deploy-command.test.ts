/**
 * `cachefleet deploy`. The render and the validation run the real kubectl (the set-up's, in
 * KUBECTL_BIN) on deploy/k8s. **No Kubernetes cluster runs on this machine**: the cluster-side verbs
 * (apply, rollout status, rollout undo) are a stand-in that records what it is asked, and only
 * those; the hit-rate gate reads a real API pod's GET /cache/stats?scope=fleet.
 */
import { join } from 'node:path';
import {
  type ClusterVerbs,
  deploy,
  fleetHitRate,
  type Io,
  parseManifests,
  realKubectl,
  renderOverlay,
  requestPrewarm,
  run,
} from '@cachefleet/cli';
import { waitUntil } from '@cachefleet/test';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestPod, type TestPod } from '../../apps/api/test/harness.js';

const ROOT = join(import.meta.dirname, '..', '..');

function io(env: Record<string, string | undefined> = {}) {
  let stdout = '';
  let stderr = '';
  const value: Io = {
    env: { KUBECTL_BIN: process.env.KUBECTL_BIN, ...env },
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    now: Date.now,
  };
  return { io: value, out: () => stdout, err: () => stderr };
}

describe.each(['dev', 'prod'])('deploy --dry-run %s', (overlay) => {
  test('renders with the real kubectl, validates, lists the objects, applies nothing', async () => {
    const o = io();
    const code = await run(['deploy', '--dry-run', overlay], o.io);
    expect(o.err()).toContain('objects valid against their schemas');
    expect(code).toBe(0);
    const lines = o.out().trim().split('\n');
    expect(lines).toContain(`Deployment/api -n ${overlay === 'dev' ? 'cachefleet-dev' : 'cachefleet'}`);
    expect(lines.some((l) => l.startsWith('StatefulSet/'))).toBe(true);
  }, 60_000);
});

test('an overlay that is not a folder of deploy/k8s/overlays: one usage line, exit 2', async () => {
  const o = io();
  expect(await run(['deploy', '--dry-run', '../base'], o.io)).toBe(2);
  expect(o.err()).toMatch(/^cachefleet deploy: E_CLI_USAGE: <overlay>: "\.\.\/base" is not one of dev, prod/);
  expect(o.err().trim().split('\n')).toHaveLength(1);
});

test('junk arguments: one usage line, exit 2, no stack', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.string(),
          fc.constantFrom(
            '--dry-run',
            '--warmup',
            '--min-hit-rate',
            '--api-url',
            '--timeout',
            '1.5',
            'x',
            '-1',
          ),
        ),
        { maxLength: 5 },
      ),
      async (args) => {
        // Valid calls (help, a real overlay) are not junk.
        fc.pre(
          !args.some(
            (a) =>
              ['--help', '-h', '--', 'dev', 'prod'].includes(a) ||
              a.startsWith('--help') ||
              a.startsWith('-h'),
          ),
        );
        const o = io();
        const code = await run(['deploy', ...args], o.io);
        expect(code).toBe(2);
        const lines = o.err().trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^cachefleet deploy: E_CLI_USAGE: /);
        expect(o.err()).not.toMatch(/\n\s+at /);
      },
    ),
    { numRuns: 60 },
  );
});

describe('the hit-rate gate, against a real API pod', () => {
  let pod: TestPod;
  beforeAll(async () => {
    pod = await startTestPod({ products: 100, env: { CACHE_TELEMETRY_INTERVAL_S: '1' } });
  }, 60_000);
  afterAll(async () => {
    await pod?.close();
  });

  /** Records the cluster-side verbs; the stand-in for the cluster this machine does not have. */
  function standIn(): ClusterVerbs & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      apply: async (yaml) => {
        calls.push(`apply ${parseManifests(yaml).objects.length}`);
        return 'applied';
      },
      rolloutStatus: async (kind, name) => {
        calls.push(`status ${kind}/${name}`);
      },
      rolloutUndo: async (kind, name) => {
        calls.push(`undo ${kind}/${name}`);
      },
    };
  }

  async function readsSeen(n: number) {
    return waitUntil(`the fleet view counts ${n} reads`, async (note) => {
      const seen = await fleetHitRate(pod.url, pod.token);
      note(`${seen.reads} reads`);
      return seen.reads >= n ? seen : undefined;
    });
  }

  test('above the threshold the deploy is kept; below it every Deployment is rolled back', async () => {
    const { yaml, manifests } = await renderOverlay(
      realKubectl(process.env.KUBECTL_BIN ?? 'kubectl'),
      ROOT,
      'dev',
    );
    const plan = (minHitRate: number) => ({
      manifests,
      yaml,
      warmupMs: 1,
      minHitRate,
      rolloutTimeoutSeconds: 60,
      hitRate: () => fleetHitRate(pod.url, pod.token),
      prewarm: () => requestPrewarm(pod.url, pod.token, 'hot'),
      sleep: async () => undefined,
      say: () => undefined,
    });
    // One miss, then 19 L1 hits of the same product: 0.95.
    for (let i = 0; i < 20; i++) expect((await pod.call('/products/1')).status).toBe(200);
    const high = await readsSeen(20);
    expect(high.rate).toBeCloseTo(0.95, 5);
    const kept = standIn();
    const ok = await deploy(kept, plan(0.8));
    expect(ok).toMatchObject({ ok: true, rate: high.rate });
    // The kept deploy's prewarm is a real warm job in the pod's queue.
    const job = await pod.call(`/jobs/${ok.ok ? ok.prewarmJob : ''}`, { token: true });
    expect(job.status).toBe(200);
    expect(job.json).toMatchObject({ name: 'warm' });
    const workloads = [...manifests.workloads()].map((w) => `${w.kind}/${w.metadata?.name}`);
    expect(kept.calls[0]).toBe(`apply ${manifests.objects.length}`);
    expect(kept.calls.slice(1).sort()).toEqual(workloads.map((w) => `status ${w}`).sort());

    // 40 products read once each: 19 hits in 60 reads, below 0.80.
    for (let id = 2; id <= 41; id++) expect((await pod.call(`/products/${id}`)).status).toBe(200);
    const low = await readsSeen(60);
    expect(low.rate).toBeCloseTo(19 / 60, 5);
    const undone = standIn();
    const failed = await deploy(undone, plan(0.8));
    const deployments = manifests.workloads().filter((w) => w.kind === 'Deployment');
    expect(failed).toEqual({
      ok: false,
      rate: low.rate,
      rolledBack: deployments.map((d) => d.metadata?.name),
    });
    // No prewarm; undo comes after every rollout was waited for, only for Deployments (never the Redis StatefulSets).
    const undos = undone.calls.filter((c) => c.startsWith('undo '));
    expect(undos).toEqual(deployments.map((d) => `undo Deployment/${d.metadata?.name}`));
    expect(undone.calls.findIndex((c) => c.startsWith('undo '))).toBe(1 + manifests.workloads().length);
  }, 60_000);
});
