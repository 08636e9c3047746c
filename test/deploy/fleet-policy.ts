/**
 * The fleet's side of deploy/k8s, on the renderings of k8s.test.ts: the API and worker pods'
 * environment parses with the apps' own loaders, there is one worker Deployment and one KEDA
 * ScaledObject per queue of the job catalogue, grace periods outlast the worker's hand-back
 * deadline, and the Redis roles run the shipped files with the settings the plan names.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiConfig } from '@cachefleet/api';
import { loadCaptureConfig } from '@cachefleet/capture';
import { loadCatalogueEnv } from '@cachefleet/catalogue';
import { JOBS, loadBackupConfig, loadQueueConfig, QUEUE_NAMES } from '@cachefleet/jobs';
import { cacheKeys } from '@cachefleet/redis';
import { loadCacheConfig } from '@cachefleet/tiered-cache';
import { loadWorkerConfig, type WorkerConfig } from '@cachefleet/worker';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { QueueKeys } from 'bullmq';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IContainer } from 'kubernetes-models/v1';
import { expect, test } from 'vitest';
import { containerEnv, type Manifests, name, podSpec, type Workload } from './manifests.js';
import { CLOSE_MARGIN_MS, READ_BY_THE_CODE } from './settings.js';

const ROOT = join(import.meta.dirname, '..', '..');

function container(w: Workload, containerName: string): IContainer {
  const c = podSpec(w).containers.find((x) => x.name === containerName);
  if (c === undefined) throw new Error(`${name(w)} has no container ${containerName}`);
  return c;
}

function portOf(c: IContainer, portName: string): number | undefined {
  return c.ports?.find((p) => p.name === portName)?.containerPort;
}

/** A Redis config file's directives: each line's words, comments and blank lines left out. */
function directives(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(/\s+/));
}
function directive(text: string, ...head: string[]): string[] {
  const found = directives(text).filter((d) => head.every((h, i) => d[i] === h));
  if (found.length !== 1) throw new Error(`expected one "${head.join(' ')}" line, found ${found.length}`);
  return (found[0] as string[]).slice(head.length);
}

/** The rules of one ACL user in a users file template. */
function aclUser(text: string, user: string): string[] {
  return directive(text, 'user', user);
}

/** The Sentinel hosts of a StatefulSet, as `host:port` with the full names clients use. */
function sentinelAddresses(m: Manifests, namespace: string): string[] {
  const sts = m.one(StatefulSet, 'redis-sentinel');
  const replicas = sts.spec?.replicas ?? 1;
  const port = portOf(container(sts, 'sentinel'), 'sentinel');
  return Array.from(
    { length: replicas },
    (_, i) => `redis-sentinel-${i}.${sts.spec?.serviceName}.${namespace}.svc:${port}`,
  );
}

/** The worker Deployments: every Deployment but the API's. */
function workers(m: Manifests): Deployment[] {
  return m.all(Deployment).filter((d) => name(d) !== 'api');
}

/** A worker Deployment's settings, parsed by the worker's own loader from its env and args. */
function workerConfig(m: Manifests, w: Workload): WorkerConfig {
  const { env, args } = containerEnv(m, w, container(w, 'worker'));
  return loadWorkerConfig(env, args.slice(1));
}

/** The workers of queues (the capture readers serve none). */
function queueWorkers(m: Manifests): Deployment[] {
  return workers(m).filter((w) => !workerConfig(m, w).capture);
}

export function fleetPolicy(renderings: () => Manifests[], overlay: string, namespace: string): void {
  test('API and worker environments parse with the apps’ own loaders and name only variables they read', () => {
    for (const m of renderings()) {
      const api = m.one(Deployment, 'api');
      const c = container(api, 'api');
      const { env } = containerEnv(m, api, c);
      for (const variable of Object.keys(env))
        expect(READ_BY_THE_CODE, `api: ${variable}`).toContain(variable);
      const config = loadApiConfig(env);
      expect(config.host).toBe('0.0.0.0');
      expect(config.port).toBe(portOf(c, 'http'));
      expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
      expect(c.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
      expect(loadCatalogueEnv(env).DATABASE_URL).toMatch(/^postgres/);
      const sentinels = sentinelAddresses(m, namespace);
      const queue = loadQueueConfig(env);
      expect(queue.redis).toMatchObject({ mode: 'sentinel', name: 'queue' });
      if (queue.redis.mode !== 'sentinel') throw new Error('unreachable');
      expect(queue.redis.sentinels.map((s) => `${s.host}:${s.port}`)).toEqual(sentinels);
      expect(queue.redis.password).toBeDefined();
      // The Sentinels answer only with their password (requirepass): both roles' clients have it.
      expect(queue.redis.sentinelPassword).toBeDefined();
      const cache = loadCacheConfig(env);
      expect(cache.redis).toMatchObject({ mode: 'sentinel', name: 'cache' });
      if (cache.redis?.mode !== 'sentinel') throw new Error('unreachable');
      expect(cache.redis.sentinels.map((s) => `${s.host}:${s.port}`)).toEqual(sentinels);
      expect(cache.redis.password).toBeDefined();
      expect(cache.redis.sentinelPassword).toBe(queue.redis.sentinelPassword);
      for (const w of m.all(Deployment).filter((d) => name(d).startsWith('worker-'))) {
        const wc = container(w, 'worker');
        const wenv = containerEnv(m, w, wc);
        for (const variable of Object.keys(wenv.env))
          expect(READ_BY_THE_CODE, `${name(w)}: ${variable}`).toContain(variable);
        const wconfig = loadWorkerConfig(wenv.env, wenv.args.slice(1));
        expect(wconfig.host, name(w)).toBe('0.0.0.0');
        expect(wconfig.port, name(w)).toBe(portOf(wc, 'metrics'));
        expect(wc.readinessProbe?.httpGet, name(w)).toMatchObject({ path: '/readyz', port: 'metrics' });
        expect(wc.livenessProbe?.httpGet, name(w)).toMatchObject({ path: '/healthz', port: 'metrics' });
        expect(loadQueueConfig(wenv.env).redis).toEqual(queue.redis);
        // The backup queue's files are signed and encrypted, on the volume at BACKUP_DIR.
        const backup = loadBackupConfig(wenv.env);
        if (wconfig.queues.some((q) => q.queue === 'backup')) {
          expect(backup.hmacKey, name(w)).toBeDefined();
          expect(backup.encryptionKey, name(w)).toBeDefined();
          const mounts = wc.volumeMounts?.map((v) => v.mountPath);
          expect(mounts, name(w)).toContain(backup.dir);
        }
        expect(loadCacheConfig(wenv.env).redis).toEqual(cache.redis);
      }
    }
  });

  test('one worker Deployment and one ScaledObject (never below 1) per queue, on the queue’s BullMQ wait list', () => {
    for (const m of renderings()) {
      const served = new Map<string, Workload>();
      for (const w of queueWorkers(m)) {
        const { env, args } = containerEnv(m, w, container(w, 'worker'));
        const queues = loadWorkerConfig(env, args.slice(1)).queues.map((q) => q.queue);
        expect(queues.length, `${name(w)} serves one queue`).toBe(1);
        const queue = queues[0] as string;
        expect(served.has(queue), `${queue} served twice`).toBe(false);
        served.set(queue, w);
      }
      expect([...served.keys()].sort()).toEqual([...QUEUE_NAMES].sort());
      const auths = new Set(m.all(TriggerAuthentication).map(name));
      for (const [queue, w] of served) {
        const scalers = m.all(ScaledObject).filter((s) => s.spec.scaleTargetRef.name === name(w));
        expect(scalers.length, `ScaledObjects of ${name(w)}`).toBe(1);
        const so = scalers[0] as ScaledObject;
        expect(so.spec.minReplicaCount ?? 0, name(so)).toBeGreaterThanOrEqual(1);
        expect(so.spec.maxReplicaCount ?? 0, name(so)).toBeGreaterThanOrEqual(so.spec.minReplicaCount ?? 0);
        expect(so.spec.triggers.length, name(so)).toBe(1);
        const trigger = so.spec.triggers[0];
        const { env } = containerEnv(m, w, container(w, 'worker'));
        const wait = new QueueKeys(env.QUEUE_PREFIX).toKey(queue, 'wait');
        expect(trigger?.type).toBe('redis-sentinel');
        expect(trigger?.metadata).toMatchObject({ listName: wait });
        expect(Number(trigger?.metadata.listLength)).toBeGreaterThan(0);
        // KEDA reads these from the target container: the same Sentinels and master as the workers.
        const addresses = env[trigger?.metadata.addressesFromEnv ?? ''];
        expect(addresses?.split(',')).toEqual(sentinelAddresses(m, namespace));
        expect(env[trigger?.metadata.sentinelMasterFromEnv ?? '']).toBe('queue');
        expect(auths).toContain(trigger?.authenticationRef?.name);
      }
    }
  });

  test('the change-capture readers: one Deployment of two pods (active + standby), no queue, no ScaledObject, one down at a time', () => {
    for (const m of renderings()) {
      const readers = workers(m).filter((w) => workerConfig(m, w).capture);
      expect(readers.map(name)).toEqual(['worker-capture']);
      const w = readers[0] as Deployment;
      const { env } = containerEnv(m, w, container(w, 'worker'));
      // Capture only: a reader that also served a queue would be scaled by KEDA past two.
      expect(workerConfig(m, w).queues).toEqual([]);
      expect(w.spec?.replicas).toBe(2);
      expect(loadCaptureConfig(env).schema).toMatch(/^[a-z_]/);
      expect(loadCatalogueEnv(env).DATABASE_URL).toMatch(/^postgres/);
      expect(m.all(ScaledObject).filter((s) => s.spec.scaleTargetRef.name === name(w))).toEqual([]);
      expect(m.one(PodDisruptionBudget, name(w)).spec?.maxUnavailable).toBe(1);
    }
  });

  test('grace periods outlast the longest a job runs after SIGTERM: its timeout, or the hand-back at WORKER_SHUTDOWN_MS', () => {
    for (const m of renderings()) {
      for (const w of workers(m)) {
        const config = workerConfig(m, w);
        const served = new Set(config.queues.map((q) => q.queue));
        // Every job is cooperative: past WORKER_SHUTDOWN_MS / 2 it is asked to save its cursor and
        // hand back, past WORKER_SHUTDOWN_MS the worker closes by force. So after SIGTERM a job runs
        // at most the shorter of its timeout and WORKER_SHUTDOWN_MS (the capture reader: the latter).
        const timeouts = Object.values(JOBS)
          .filter((job) => served.has(job.queue))
          .map((job) => job.timeoutMs);
        const longest = timeouts.length === 0 ? config.shutdownMs : Math.max(...timeouts);
        const deadline = Math.min(config.shutdownMs, longest);
        const graceMs = (podSpec(w).terminationGracePeriodSeconds ?? 30) * 1000;
        expect(graceMs, name(w)).toBeGreaterThanOrEqual(deadline + CLOSE_MARGIN_MS);
      }
    }
  });

  test('the Redis ConfigMaps hold exactly the files of deploy/redis, byte for byte', () => {
    const dir = join(ROOT, 'deploy', 'redis');
    const files = readdirSync(dir)
      .filter((f) => f !== 'kustomization.yaml')
      .sort();
    for (const m of renderings()) {
      const held = new Set<string>();
      for (const cm of ['queue-redis-config', 'cache-redis-config', 'redis-sentinel-config']) {
        for (const [file, text] of Object.entries(m.configMap(cm).data ?? {})) {
          expect(files, `${cm} ${file}`).toContain(file);
          expect(text, `${cm} ${file}`).toBe(readFileSync(join(dir, file), 'utf8'));
          held.add(file);
        }
      }
      expect([...held].sort()).toEqual(files);
    }
  });

  test('the queue Redis runs the shipped queue.conf: 3 nodes, 10 GiB, noeviction, AOF + RDB, 3 Sentinels, quorum 2', () => {
    const shipped = (file: string) => readFileSync(join(ROOT, 'deploy', 'redis', file), 'utf8');
    for (const m of renderings()) {
      const data = m.configMap('queue-redis-config').data ?? {};
      for (const file of ['queue.conf', 'queue-users.acl', 'redis-pod.sh']) {
        expect(data[file], file).toBe(shipped(file));
      }
      const conf = data['queue.conf'] ?? '';
      expect(directive(conf, 'maxmemory-policy')).toEqual(['noeviction']);
      expect(directive(conf, 'appendonly')).toEqual(['yes']);
      expect(directive(conf, 'appendfsync')).toEqual(['everysec']);
      expect(directive(conf, 'save')).toEqual(['900', '1', '300', '10', '60', '1000']);
      expect(directive(conf, 'min-replicas-to-write')).toEqual(['1']);
      const sts = m.one(StatefulSet, 'queue-redis');
      expect(sts.spec?.replicas).toBe(3);
      expect(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage).toBe('10Gi');
      expect(podSpec(sts).initContainers?.[0]?.command).toEqual([
        'sh',
        '/config/redis-pod.sh',
        'data',
        'queue',
        '/run/redis',
      ]);
      expect(container(sts, 'redis').command?.slice(0, 2)).toEqual(['redis-server', '/run/redis/redis.conf']);
      expect(container(sts, 'redis').lifecycle?.preStop?.exec?.command).toEqual([
        'sh',
        '/config/redis-pod.sh',
        'prestop',
      ]);
      const sentinel = m.one(StatefulSet, 'redis-sentinel');
      expect(sentinel.spec?.replicas).toBe(3);
      const block = m.configMap('redis-sentinel-config').data?.['sentinel-master.conf'] ?? '';
      expect(block).toBe(shipped('sentinel-master.conf'));
      expect(directive(block, 'sentinel', 'monitor', '{{master}}')).toEqual(['{{host}}', '{{port}}', '2']);
      expect(directive(block, 'sentinel', 'down-after-milliseconds', '{{master}}')).toEqual(['30000']);
      expect(directive(block, 'sentinel', 'failover-timeout', '{{master}}')).toEqual(['180000']);
      expect(directive(block, 'sentinel', 'parallel-syncs', '{{master}}')).toEqual(['1']);
      const init = podSpec(sentinel).initContainers?.[0] as IContainer;
      const masters = containerEnv(m, sentinel, init).env.SENTINEL_MASTERS?.split(/\s+/) ?? [];
      // redis-pod.sh completes <pod>.<service> with the pod's namespace.
      expect(masters).toContain('queue=queue-redis-0.queue-redis-headless:6379');
    }
  });

  test('the cache Redis runs the shipped cache.conf (allkeys-lru, 2 GiB), watched by the Sentinels; 3 nodes in prod', () => {
    for (const m of renderings()) {
      const conf = m.configMap('cache-redis-config').data?.['cache.conf'] ?? '';
      expect(conf).toBe(readFileSync(join(ROOT, 'deploy', 'redis', 'cache.conf'), 'utf8'));
      expect(directive(conf, 'maxmemory-policy')).toEqual(['allkeys-lru']);
      expect(directive(conf, 'maxmemory')).toEqual(['2gb']);
      const sts = m.one(StatefulSet, 'cache-redis');
      const sentinel = m.one(StatefulSet, 'redis-sentinel');
      const init = podSpec(sentinel).initContainers?.[0] as IContainer;
      const masters = containerEnv(m, sentinel, init).env.SENTINEL_MASTERS?.split(/\s+/) ?? [];
      const watched = 'cache=cache-redis-0.cache-redis-headless:6379';
      expect(sts.spec?.replicas).toBe(overlay === 'prod' ? 3 : 1);
      expect(masters).toContain(watched);
      const prepare = podSpec(sts).initContainers?.[0] as IContainer;
      expect(containerEnv(m, sts, prepare).env.SENTINEL_HOSTS?.split(/\s+/)).toEqual(
        sentinelAddresses(m, namespace).map((a) => a.replace(`.${namespace}.svc:26379`, '')),
      );
    }
  });

  test('ACL users are scoped: the fleet to its prefixes and the bus channels, KEDA to the wait lists', () => {
    for (const m of renderings()) {
      const api = m.one(Deployment, 'api');
      const { env } = containerEnv(m, api, container(api, 'api'));
      const queueAcl = m.configMap('queue-redis-config').data?.['queue-users.acl'] ?? '';
      const cacheAcl = m.configMap('cache-redis-config').data?.['cache-users.acl'] ?? '';
      const scope = (rules: string[]) => ({
        keys: rules.filter((r) => r.startsWith('~') || r === 'allkeys'),
        channels: rules.filter((r) => r.startsWith('&') || r === 'allchannels'),
        resets: rules.filter((r) => r === 'resetkeys' || r === 'resetchannels'),
      });
      expect(scope(aclUser(queueAcl, 'default'))).toEqual({
        keys: [`~${env.QUEUE_PREFIX}:*`],
        channels: [],
        resets: ['resetkeys', 'resetchannels'],
      });
      expect(aclUser(queueAcl, 'default')).toContain('-@dangerous');
      const prefix = env.CACHE_KEY_PREFIX ?? '';
      expect(scope(aclUser(cacheAcl, 'default'))).toEqual({
        keys: [`~${prefix}*`],
        // The bus, and the channels pods acknowledge fleet-acknowledged invalidations on.
        channels: [`&${cacheKeys(prefix).busChannel}`, `&${cacheKeys(prefix).ackChannel('*')}`],
        resets: ['resetkeys', 'resetchannels'],
      });
      expect(aclUser(cacheAcl, 'default')).toContain('-@dangerous');
      const keda = aclUser(queueAcl, 'keda');
      expect(scope(keda).keys).toEqual([`~${env.QUEUE_PREFIX}:*:wait`]);
      expect(keda.filter((r) => r.startsWith('+'))).toEqual(['+@connection', '+type', '+llen']);
      const auth = m.one(TriggerAuthentication, 'queue-redis-keda');
      expect(auth.spec.secretTargetRef?.map((r) => r.parameter).sort()).toEqual([
        'password',
        'sentinelPassword',
        'username',
      ]);
    }
  });
}
