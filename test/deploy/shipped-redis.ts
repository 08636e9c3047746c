/**
 * The Redis processes of deploy/ on loopback, started the way the pods start them: redis-pod.sh
 * writes each process's files from the shipped templates and the secrets, then
 * `redis-server OUT/redis.conf` (or `OUT/sentinel.conf --sentinel`) runs them. Only the listening
 * address changes (--port, --bind; --dir, --logfile), and replicas get the master's address by
 * REDIS_MASTER instead of from DNS. One master + one replica of the queue Redis, one Sentinel
 * watching it, one cache Redis.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  launchRedis,
  logPath,
  makeTempDir,
  type RedisProcess,
  removeTempDir,
  withFreePort,
} from '../helpers/redis-server.js';
import { pairsToRecord, rawCommand } from '../helpers/resp.js';
import { waitUntil } from '../helpers/wait.js';

const run = promisify(execFile);
const REDIS_DIR = join(import.meta.dirname, '..', '..', 'deploy', 'redis');

const secret = () => randomBytes(20).toString('hex');
/** The secrets as the pods' environment holds them (apps use `queueApp` / `cacheApp`). */
export const SECRETS = {
  queueApp: secret(),
  cacheApp: secret(),
  replica: secret(),
  sentinel: secret(),
  admin: secret(),
  keda: secret(),
  backup: secret(),
  sentinelAuth: secret(),
} as const;

/** The secrets redis-pod.sh reads for a data node of `role`, as the pod's environment holds them. */
export function roleEnv(role: 'queue' | 'cache'): Record<string, string> {
  return {
    REDIS_APP_PASSWORD: role === 'queue' ? SECRETS.queueApp : SECRETS.cacheApp,
    REDIS_REPLICA_PASSWORD: SECRETS.replica,
    REDIS_SENTINEL_PASSWORD: SECRETS.sentinel,
    REDIS_ADMIN_PASSWORD: SECRETS.admin,
    ...(role === 'queue' ? { REDIS_KEDA_PASSWORD: SECRETS.keda, REDIS_BACKUP_PASSWORD: SECRETS.backup } : {}),
  };
}

export const ADMIN = { user: 'admin', password: SECRETS.admin } as const;
/** How clients log in to the Sentinels (their requirepass). */
export const SENTINEL_AUTH = { user: 'default', password: SECRETS.sentinelAuth } as const;

/** Runs deploy/redis/redis-pod.sh with only PATH and `env` in its environment. */
export async function redisPod(args: readonly string[], env: Record<string, string>): Promise<void> {
  await run('sh', [join(REDIS_DIR, 'redis-pod.sh'), ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    timeout: 60_000,
  });
}

export interface ShippedRedis {
  readonly queueMaster: RedisProcess;
  readonly queueReplica: RedisProcess;
  readonly sentinel: RedisProcess;
  readonly cache: RedisProcess;
  /** Where a process's redis-pod.sh output went (redis.conf, users.acl or sentinel.conf). */
  runDir(p: RedisProcess): string;
  /** From now on, data nodes that (re)start ask the Sentinel where the master is, as in a pod. */
  discoverThroughSentinel(): void;
  stop(): Promise<void>;
}

export async function startShippedRedis(): Promise<ShippedRedis> {
  const root = await makeTempDir('cachefleet-deploy-');
  const started: RedisProcess[] = [];
  const runDirs = new Map<RedisProcess, string>();
  let sentinelPort = 0;
  let discover = false;

  const data = async (role: 'queue' | 'cache', index: number, master?: RedisProcess) => {
    const dir = join(root, `${role}-${index}`);
    const out = join(dir, 'run');
    await mkdir(dir);
    const proc = await withFreePort(undefined, (port) =>
      launchRedis({
        port,
        dir,
        logFile: logPath(dir, port),
        auth: ADMIN,
        // Built again on restart(): redis-pod.sh runs again, as in a new pod.
        args: async () => {
          const where: Record<string, string> = discover
            ? {
                SENTINEL_HOSTS: '127.0.0.1',
                SENTINEL_PORT: String(sentinelPort),
                MASTER_NAME: role,
                SENTINEL_AUTH_PASSWORD: SECRETS.sentinelAuth,
              }
            : { REDIS_MASTER: master === undefined ? 'none' : `127.0.0.1 ${master.port}` };
          await redisPod(['data', role, out], {
            ...roleEnv(role),
            ...where,
            ANNOUNCE_HOST: '127.0.0.1',
            REDIS_PORT: String(port),
          });
          return [
            join(out, 'redis.conf'),
            ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--logfile', logPath(dir, port)],
            // Not a setting under test: a new replica's sync starts at once instead of after 5 s.
            ...['--repl-diskless-sync-delay', '0'],
          ];
        },
      }),
    );
    started.push(proc);
    runDirs.set(proc, out);
    return proc;
  };

  try {
    const queueMaster = await data('queue', 0);
    const queueReplica = await data('queue', 1, queueMaster);
    const cache = await data('cache', 0);
    const dir = join(root, 'sentinel-0');
    const out = join(dir, 'run');
    await mkdir(dir);
    const sentinel = await withFreePort(undefined, async (port) => {
      await redisPod(['sentinel', out], {
        REDIS_SENTINEL_PASSWORD: SECRETS.sentinel,
        SENTINEL_AUTH_PASSWORD: SECRETS.sentinelAuth,
        SENTINEL_MASTERS: `queue=127.0.0.1:${queueMaster.port}`,
        POD_NAME: 'redis-sentinel-0',
        ANNOUNCE_HOST: '127.0.0.1',
      });
      const args = [join(out, 'sentinel.conf'), '--sentinel', '--port', String(port), '--bind', '127.0.0.1'];
      return launchRedis({
        port,
        dir,
        logFile: logPath(dir, port),
        auth: SENTINEL_AUTH,
        args: () => [...args, '--logfile', logPath(dir, port)],
      });
    });
    sentinelPort = sentinel.port;
    started.push(sentinel);
    runDirs.set(sentinel, out);
    // Settled: the replica is linked, and the Sentinel (logged in as `sentinel`) sees it.
    await waitUntil('the shipped Redis set to settle', async (note) => {
      const m = pairsToRecord(
        await rawCommand(sentinel.port, ['SENTINEL', 'MASTER', 'queue'], { auth: SENTINEL_AUTH }),
      );
      note(`flags ${m.flags}, replicas ${m['num-slaves']}`);
      if (m.flags !== 'master' || m['num-slaves'] !== '1') return undefined;
      const repl = String(await rawCommand(queueReplica.port, ['INFO', 'replication'], { auth: ADMIN }));
      note(repl.includes('master_link_status:up') ? 'linked' : 'replica not linked');
      return repl.includes('master_link_status:up') ? true : undefined;
    });
    return {
      queueMaster,
      queueReplica,
      sentinel,
      cache,
      runDir: (p) => runDirs.get(p) ?? '',
      discoverThroughSentinel: () => {
        discover = true;
      },
      stop: async () => {
        await Promise.allSettled(started.reverse().map((p) => p.stop()));
        await removeTempDir(root);
      },
    };
  } catch (error) {
    await Promise.allSettled(started.map((p) => p.stop()));
    await removeTempDir(root);
    throw error;
  }
}
