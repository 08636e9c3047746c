import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { check, flagName, parseFlags, usage } from '../args.js';
import type { Command } from '../command.js';
import { deploy, fleetHitRate, overlaysIn, renderOverlay, requestPrewarm } from '../deploy/deploy.js';
import { realKubectl } from '../deploy/kubectl.js';
import { EXIT } from '../errors.js';

/** The repository this CLI runs from: deploy/k8s is read there. */
const ROOT = fileURLToPath(new URL('../../../..', import.meta.url));

/** `90s`, `5m`, `1h`, `0` → ms. */
const duration = z
  .string()
  .regex(/^(0|\d{1,6}(ms|s|m|h))$/, 'expects a duration such as 90s, 5m or 0')
  .transform((text) => {
    const m = /^(\d+)(ms|s|m|h)?$/.exec(text);
    const n = Number(m?.[1] ?? 0);
    const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m?.[2] ?? 'ms'] ?? 1;
    return n * unit;
  });

const flagsSchema = z.object({
  overlay: z.string(),
  'dry-run': z.boolean().default(false),
  warmup: duration.prefault('5m'),
  timeout: duration.refine((ms) => ms >= 1_000, 'at least 1s').prefault('10m'),
  'min-hit-rate': z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?)$/, 'expects a fraction between 0 and 1, such as 0.80')
    .transform(Number)
    .default(0.8),
  prewarm: z.enum(['hot', 'critical', 'all', 'none']).default('hot'),
  'api-url': z.url({ protocol: /^https?$/, error: 'expects an http:// or https:// URL' }).optional(),
});

export const deployCmd: Command = {
  name: 'deploy',
  summary: 'render, validate and apply a deploy/k8s overlay, wait for the rollouts, gate on the hit rate',
  help: `Usage:
  cachefleet deploy [--dry-run] <overlay> [--warmup 5m] [--min-hit-rate 0.80] [--timeout 10m]
                    [--prewarm hot|critical|all|none] [--api-url URL]

Renders deploy/k8s/overlays/<overlay> with kubectl kustomize (KUBECTL_BIN, else kubectl on PATH),
validates every object against the Kubernetes, KEDA and prometheus-operator schemas, then applies
it to the cluster of the current kubectl context, waits for every StatefulSet and Deployment to
roll out, waits --warmup, and reads the fleet hit rate from the admin API (GET
/cache/stats?scope=fleet with CACHEFLEET_ADMIN_TOKEN). Below --min-hit-rate (or no reads at all),
it runs kubectl rollout undo on every Deployment of the overlay and exits 1; at or above it, it
enqueues a prewarm (POST /cache/prewarm) and exits 0. The Redis StatefulSets are never rolled back
(they hold the data).

  <overlay>             a folder of deploy/k8s/overlays (dev, prod)
  --dry-run             render and validate only; print the objects, apply nothing
  --warmup DURATION     time between the rollouts and the hit-rate check (default 5m; 0: at once)
  --min-hit-rate F      the gate, a fraction (default 0.80, the plan's)
  --timeout DURATION    per rollout (kubectl rollout status --timeout; default 10m)
  --prewarm TYPE        the warm enqueued once the deploy is kept (default hot; none: no warm)
  --api-url URL         the admin API (default CACHEFLEET_API_URL); outside the cluster, e.g.
                        kubectl -n cachefleet port-forward svc/api 8080:80 and http://127.0.0.1:8080`,

  async run(args, session) {
    const { values, positionals } = parseFlags('deploy', () =>
      parseArgs({
        args,
        options: {
          'dry-run': { type: 'boolean' },
          warmup: { type: 'string' },
          timeout: { type: 'string' },
          'min-hit-rate': { type: 'string' },
          'api-url': { type: 'string' },
          prewarm: { type: 'string' },
        },
        allowPositionals: true,
        strict: true,
      }),
    );
    const [overlay, ...rest] = positionals;
    if (overlay === undefined) throw usage('<overlay>: required (see cachefleet deploy --help)');
    if (rest.length > 0) throw usage(`unexpected argument ${JSON.stringify(rest[0])} (one overlay)`);
    const known = overlaysIn(ROOT);
    if (!known.includes(overlay))
      throw usage(
        `<overlay>: ${JSON.stringify(overlay)} is not one of ${known.join(', ')} (deploy/k8s/overlays)`,
      );
    const flags = check(flagsSchema, { ...values, overlay }, (path) =>
      path[0] === 'overlay' ? '<overlay>' : flagName(path),
    );
    const apiUrl = flags['api-url'] ?? session.env.CACHEFLEET_API_URL;
    if (!flags['dry-run'] && !apiUrl)
      throw usage('--api-url: required (or CACHEFLEET_API_URL): the hit-rate gate reads the admin API');
    const kubectl = realKubectl(session.env.KUBECTL_BIN || 'kubectl');
    session.note(`rendering deploy/k8s/overlays/${overlay} with ${kubectl.bin}`);
    const { yaml, manifests } = await renderOverlay(kubectl, ROOT, overlay);
    session.note(`${manifests.objects.length} objects valid against their schemas`);
    if (flags['dry-run']) {
      for (const o of manifests.objects)
        session.out(`${o.kind}/${o.metadata?.name ?? ''} -n ${o.metadata?.namespace ?? ''}`);
      return EXIT.OK;
    }
    const token = session.env.CACHEFLEET_ADMIN_TOKEN;
    const prewarm = flags.prewarm;
    const outcome = await deploy(kubectl, {
      manifests,
      yaml,
      warmupMs: flags.warmup,
      minHitRate: flags['min-hit-rate'],
      rolloutTimeoutSeconds: Math.ceil(flags.timeout / 1000),
      hitRate: () => fleetHitRate(apiUrl as string, token),
      ...(prewarm !== 'none' ? { prewarm: () => requestPrewarm(apiUrl as string, token, prewarm) } : {}),
      sleep: (ms) => sleep(ms),
      say: (line) => session.note(line),
    });
    if (outcome.ok) {
      if (outcome.prewarmJob !== undefined) session.out(outcome.prewarmJob);
      return EXIT.OK;
    }
    session.note(
      `cachefleet deploy: E_CLI_DEPLOY: the fleet hit rate ${outcome.rate === undefined ? 'could not be measured (no reads)' : outcome.rate.toFixed(3)} is below ${flags['min-hit-rate']}; rolled back ${outcome.rolledBack.join(', ') || 'nothing'}`,
    );
    return EXIT.JOB_FAILED;
  },
};
