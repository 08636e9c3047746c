/**
 * deploy/compose.yaml and deploy/Dockerfile, checked without a container engine (none runs on
 * these machines): the compose file, interpolated as compose would with the secrets
 * compose-secrets.sh prints, validates against the Compose Specification's schema (the copy dclint
 * ships) and its references hold; the fleet's services parse with the apps' own loaders; the
 * Dockerfile copies every workspace and keeps what the entry point needs; Prometheus scrapes every
 * service serving /metrics and loads the shipped rules (its configuration passes `promtool check
 * config`), and Grafana's provisioning finds its datasource and the dashboards. Not checked here:
 * that the images build and the containers start (docs/deploy.md says how that was tried).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { loadApiConfig } from '@cachefleet/api';
import { loadCatalogueEnv } from '@cachefleet/catalogue';
import { loadBackupConfig, loadQueueConfig, QUEUE_NAMES } from '@cachefleet/jobs';
import { loadCacheConfig } from '@cachefleet/tiered-cache';
import { loadWorkerConfig } from '@cachefleet/worker';
import { Ajv } from 'ajv';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { DATASOURCE_VARIABLE, loadDashboards } from './dashboards.js';
import { promtool } from './promql.js';
import { CLOSE_MARGIN_MS, READ_BY_THE_CODE, SECRET_NAME, URL_WITH_PASSWORD } from './settings.js';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
const text = readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8');

/** The variables compose-secrets.sh writes into deploy/.env, with the values it made. */
const secrets: Record<string, string> = Object.fromEntries(
  execFileSync('sh', [join(DEPLOY, 'compose-secrets.sh')], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((line) => line.split('=', 2) as [string, string]),
);

/** `${VAR:?message}` as compose interpolates it; `$$` is a literal `$`. Other forms are refused. */
const interpolated = text.replace(/\$\$|\$\{([^}]*)\}/g, (whole, inner?: string) => {
  if (inner === undefined) return whole;
  const required = /^([A-Z0-9_]+):\?.+$/.exec(inner);
  if (required === null)
    throw new Error(`\${${inner}}: every variable must be required (:?), with no default`);
  const value = secrets[required[1] as string];
  if (value === undefined) throw new Error(`\${${required[1]}} is not made by compose-secrets.sh`);
  return value;
});

const Service = z.looseObject({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  command: z.array(z.string()).optional(),
  entrypoint: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.string()).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional(),
  volumes: z.array(z.string()).optional(),
  healthcheck: z.looseObject({ test: z.array(z.string()) }).optional(),
  stop_grace_period: z.string().optional(),
  user: z.string().optional(),
});
const Compose = z.looseObject({ services: z.record(z.string(), Service) });
const model: unknown = parse(interpolated, { merge: true });
const compose = Compose.parse(model);
const services = Object.entries(compose.services);
const fleet = services.filter(([, s]) => s.image?.startsWith('cachefleet:'));
const env = (s: z.infer<typeof Service>) => s.environment ?? {};

describe('deploy/compose.yaml', () => {
  test('is valid against the Compose Specification schema', () => {
    const require = createRequire(import.meta.url);
    const schemaFile = join(
      dirname(require.resolve('dclint/package.json')),
      'schemas',
      'compose.schema.json',
    );
    // Draft 7, named by an https URL Ajv does not know as its own meta-schema: drop the name.
    const { $schema: _, ...schema } = z
      .looseObject({ $schema: z.string() })
      .parse(JSON.parse(readFileSync(schemaFile, 'utf8')));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(model) ? [] : validate.errors).toEqual([]);
  });

  test('secrets come from deploy/.env only: no default, no literal password', () => {
    const raw = Compose.parse(parse(text, { merge: true }));
    for (const [name, s] of Object.entries(raw.services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (SECRET_NAME.test(key)) expect(value, `${name} ${key}`).toMatch(/\$\{/);
        expect(value, `${name} ${key}`).not.toMatch(URL_WITH_PASSWORD);
      }
    }
  });

  test('references hold: dependencies, the build, bind mounts, the shipped Redis files', () => {
    const names = new Set(compose.services ? Object.keys(compose.services) : []);
    for (const [name, s] of services) {
      for (const dep of Object.keys(s.depends_on ?? {}))
        expect(names, `${name} depends on ${dep}`).toContain(dep);
      if (s.build !== undefined) {
        expect(existsSync(resolve(DEPLOY, s.build.context, s.build.dockerfile)), `${name} build`).toBe(true);
      }
      for (const volume of s.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        if (source.startsWith('.'))
          expect(existsSync(resolve(DEPLOY, source)), `${name} ${volume}`).toBe(true);
      }
    }
    for (const role of ['queue', 'cache']) {
      const s = compose.services[`${role}-redis`];
      expect(s?.volumes).toContain('./redis:/config:ro');
      expect(s?.entrypoint?.join(' ')).toContain(`sh /config/redis-pod.sh data ${role} /run/redis`);
      expect(s?.entrypoint?.join(' ')).toContain('exec redis-server /run/redis/redis.conf');
    }
  });

  test('one worker service per queue of the job catalogue, and one change-capture reader', () => {
    const workers = fleet
      .filter(([, s]) => s.command?.[0] === 'apps/worker/src/main.ts')
      .map(([name, s]) => ({ name, config: loadWorkerConfig(env(s), s.command?.slice(1) ?? []) }));
    const served = workers.flatMap((w) => w.config.queues.map((q) => q.queue));
    expect(served.sort()).toEqual([...QUEUE_NAMES].sort());
    const readers = workers.filter((w) => w.config.capture);
    expect(readers.map((w) => [w.name, w.config.queues])).toEqual([['worker-capture', []]]);
  });

  test('the API and workers parse with the apps’ loaders, name only variables they read, and stop in time', () => {
    expect(fleet.length).toBeGreaterThan(0);
    for (const [name, s] of fleet) {
      const e = env(s);
      for (const variable of Object.keys(e))
        expect(READ_BY_THE_CODE, `${name}: ${variable}`).toContain(variable);
      loadQueueConfig(e);
      loadCacheConfig(e);
      expect(loadCatalogueEnv(e).DATABASE_URL).toMatch(/^postgres/);
      const entry = s.command?.[0];
      const health = s.healthcheck?.test.join(' ') ?? '';
      if (entry === 'apps/api/src/main.ts') {
        const api = loadApiConfig(e);
        expect(api.host).toBe('0.0.0.0');
        expect(health).toContain(`http://127.0.0.1:${api.port}/readyz`);
      } else if (entry === 'apps/worker/src/main.ts') {
        const worker = loadWorkerConfig(e, s.command?.slice(1) ?? []);
        const backup = loadBackupConfig(e);
        if (worker.queues.some((q) => q.queue === 'backup')) {
          expect(backup.hmacKey, name).toBeDefined();
          expect(backup.encryptionKey, name).toBeDefined();
          expect(
            s.volumes?.map((v) => v.split(':')[1]),
            name,
          ).toContain(backup.dir);
        }
        expect(worker.host).toBe('0.0.0.0');
        expect(health).toContain(`http://127.0.0.1:${worker.port}/readyz`);
        const grace = Number(/^(\d+)s$/.exec(s.stop_grace_period ?? '')?.[1]) * 1000;
        expect(grace, name).toBeGreaterThanOrEqual(worker.shutdownMs + CLOSE_MARGIN_MS);
      }
    }
  });
});

/** The /metrics address (`service:port`) of each fleet service that serves one: the API and workers. */
function metricsTargets(): string[] {
  return fleet.flatMap(([name, s]) => {
    const entry = s.command?.[0];
    if (entry === 'apps/api/src/main.ts') return [`${name}:${loadApiConfig(env(s)).port}`];
    if (entry === 'apps/worker/src/main.ts')
      return [`${name}:${loadWorkerConfig(env(s), s.command?.slice(1) ?? []).port}`];
    return [];
  });
}

/**
 * Where a path inside a service's container comes from on this machine: the bind mount (`./…`,
 * relative to deploy/) whose target holds it, or undefined (a named volume, or the image's own).
 */
function hostPath(service: string, inContainer: string): string | undefined {
  for (const volume of compose.services[service]?.volumes ?? []) {
    const [source = '', target = ''] = volume.split(':');
    if (!source.startsWith('.')) continue;
    const rest = posix.relative(target, inContainer);
    if (rest === '' || !(rest.startsWith('..') || posix.isAbsolute(rest)))
      return resolve(DEPLOY, source, rest);
  }
  return undefined;
}

describe('Prometheus and Grafana in deploy/compose.yaml', () => {
  const PromConfig = z.looseObject({
    global: z.looseObject({ scrape_interval: z.string() }),
    rule_files: z.array(z.string()),
    scrape_configs: z.array(
      z.looseObject({
        job_name: z.string(),
        static_configs: z.array(z.object({ targets: z.array(z.string()) })),
      }),
    ),
  });
  const prometheus = compose.services.prometheus;
  const grafana = compose.services.grafana;
  const configPath = prometheus?.command
    ?.find((a) => a.startsWith('--config.file='))
    ?.slice('--config.file='.length);
  const configFile = configPath === undefined ? undefined : hostPath('prometheus', configPath);
  const config = PromConfig.parse(parse(readFileSync(configFile ?? '/nonexistent', 'utf8')));

  test('Prometheus reads deploy/prometheus/prometheus.yml and, beside it, the shipped rules', () => {
    expect(configFile).toBe(join(DEPLOY, 'prometheus', 'prometheus.yml'));
    expect(config.rule_files).toEqual(['rules.yaml']);
    // A relative rule file is read from the configuration's folder, in the container as here.
    for (const rules of config.rule_files)
      expect(hostPath('prometheus', posix.join(posix.dirname(configPath ?? ''), rules))).toBe(
        join(DEPLOY, 'prometheus', rules),
      );
  });

  test('promtool check config passes on prometheus.yml and finds the rules', () => {
    const run = promtool(['check', 'config', relative(join(DEPLOY, '..'), configFile ?? '')]);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/SUCCESS: \d+ rules found/);
  });

  test('Prometheus scrapes every service serving /metrics, at its port, and nothing else', () => {
    const targets = config.scrape_configs.flatMap((c) => c.static_configs.flatMap((t) => t.targets));
    expect(targets.filter((t, i) => targets.indexOf(t) !== i)).toEqual([]);
    const expected = metricsTargets();
    expect(expected.length).toBeGreaterThan(2);
    expect(targets.sort()).toEqual(expected.sort());
  });

  test('Grafana provisions the compose Prometheus as the dashboards’ datasource, and the dashboards', () => {
    const provisioning = hostPath('grafana', '/etc/grafana/provisioning');
    expect(provisioning).toBe(join(DEPLOY, 'grafana', 'provisioning'));
    const dir = (kind: string) => join(provisioning ?? '', kind);
    const yamls = (kind: string) => readdirSync(dir(kind)).filter((f) => /\.ya?ml$/.test(f));
    const Datasources = z.object({
      apiVersion: z.literal(1),
      datasources: z.array(
        z.looseObject({
          uid: z.string(),
          type: z.string(),
          url: z.string(),
          jsonData: z.looseObject({ timeInterval: z.string() }),
        }),
      ),
    });
    const datasources = yamls('datasources').flatMap(
      (f) => Datasources.parse(parse(readFileSync(join(dir('datasources'), f), 'utf8'))).datasources,
    );
    // The uid every dashboard's datasource variable defaults to, at the compose Prometheus.
    const dashboards = loadDashboards(join(DEPLOY, 'grafana', 'dashboards'));
    const uids = new Set(
      dashboards.flatMap(({ dashboard }) =>
        dashboard.templating.list.flatMap((v) =>
          v.type === 'datasource' && v.name === DATASOURCE_VARIABLE ? [v.current.value] : [],
        ),
      ),
    );
    expect(uids.size).toBe(1);
    const datasource = datasources.find((d) => uids.has(d.uid));
    expect(datasource?.type).toBe('prometheus');
    expect(datasource?.url).toBe('http://prometheus:9090');
    expect(datasource?.jsonData.timeInterval).toBe(config.global.scrape_interval);
    expect(Object.keys(grafana?.depends_on ?? {})).toContain('prometheus');

    const Providers = z.object({
      apiVersion: z.literal(1),
      providers: z.array(z.looseObject({ type: z.literal('file'), options: z.object({ path: z.string() }) })),
    });
    const paths = yamls('dashboards').flatMap((f) =>
      Providers.parse(parse(readFileSync(join(dir('dashboards'), f), 'utf8'))).providers.map(
        (p) => p.options.path,
      ),
    );
    expect(paths.map((p) => hostPath('grafana', p))).toEqual([join(DEPLOY, 'grafana', 'dashboards')]);
    const home = grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    expect(existsSync(hostPath('grafana', home ?? '') ?? ''), `home dashboard ${home}`).toBe(true);
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const workspaces = z
    .object({ workspaces: z.array(z.string()) })
    .parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))).workspaces;
  const packageDirs = workspaces.flatMap((w) =>
    w.endsWith('/*')
      ? readdirSync(join(ROOT, w.slice(0, -2)))
          .map((d) => `${w.slice(0, -2)}/${d}`)
          .filter((d) => existsSync(join(ROOT, d, 'package.json')))
      : [w],
  );

  test('is multi-stage: dependencies installed with npm ci --omit=dev, every workspace’s package.json first', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const deps = stages[0] ?? '';
    expect(deps).toMatch(/^RUN npm ci --omit=dev\b/m);
    for (const dir of packageDirs) expect(deps, dir).toContain(`COPY ${dir}/package.json ${dir}/`);
  });

  test('runs as a non-root user, through tsx, which --omit=dev keeps (a dependency, not a devDependency)', () => {
    const final = stages.at(-1) ?? '';
    const user = /^USER (\S+)$/m.exec(final)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(final).toMatch(/^ENTRYPOINT \["node", "--import", "tsx"\]$/m);
    const keeps = packageDirs.filter((dir) => {
      const pkg = z
        .looseObject({ dependencies: z.record(z.string(), z.string()).optional() })
        .parse(JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')));
      return pkg.dependencies?.tsx !== undefined;
    });
    expect(keeps.length).toBeGreaterThan(0);
  });

  test('its context allowlist brings every package’s sources and nothing else', () => {
    const ignore = readFileSync(join(DEPLOY, 'Dockerfile.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('**');
    for (const pattern of [
      '!apps/*/src/**',
      '!libs/*/src/**',
      '!apps/*/package.json',
      '!libs/*/package.json',
    ]) {
      expect(ignore).toContain(pattern);
    }
    const version = z
      .object({ version: z.string() })
      .parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')));
    for (const [, s] of fleet) expect(s.image).toBe(`cachefleet:${version.version}`);
  });
});
