/**
 * Issue 9, invariant 8 — access control, over TLS. The cache Redis and the queue Redis are started
 * from the shipped files (deploy/redis: redis-pod.sh renders <role>.conf and <role>-users.acl with
 * this run's secrets) plus TLS on its own port, with a CA and a server certificate made by
 * `openssl` for this run. Then the system runs over `rediss://` as the ACL's role users — a worker
 * process and the CLI as the queue user (and the worker as the cache user), a pod process as the
 * cache user — trusting the CA through NODE_EXTRA_CA_CERTS, as a deployment would:
 *
 * - a client that does not trust the CA is refused at the handshake;
 * - a warm and a pattern invalidation complete, their keys are where they should be, and a pod
 *   reads, fills and invalidates through the bus — with ACL LOG empty on both servers afterwards:
 *   no command of the system was denied (the cache serves through Redis errors, so "it worked"
 *   alone would not prove it);
 * - a worker serving only backups runs as a `backup` user (BACKUP_ACL, set by the admin: not in the
 *   shipped files yet): a whole backup with ACL LOG empty, and NOPERM for every write but its lock;
 * - each role user, over TLS, gets NOPERM for what is out of its scope (other keys, other channels,
 *   dangerous commands), and those denials do show in ACL LOG.
 *
 * The plain port stays open for the harness (its readiness PING, the admin's checks); every client
 * of the system uses the TLS port.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { invalidateResultSchema, warmResultSchema } from '@cachefleet/jobs';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ADMIN, redisPod, roleEnv, SECRETS } from './deploy/shipped-redis.js';
import { startWorker, stopAllWorkers } from './fixtures/fleet-procs.js';
import { type Pod, startPod } from './fixtures/pods.js';
import { countKeys, runCli } from './helpers/index.js';
import { freePort } from './helpers/ports.js';
import {
  launchRedis,
  logPath,
  makeTempDir,
  type RedisProcess,
  removeTempDir,
  withFreePort,
} from './helpers/redis-server.js';

const run = promisify(execFile);
const _ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEFINITIONS = pathToFileURL(
  fileURLToPath(new URL('./fixtures/slow-definitions.ts', import.meta.url)),
).href;
const ITEMS = 300;

/**
 * The backup worker's user on the cache Redis (docs/reliability.md, invariant 8): read every key of
 * the prefix (SCAN, DUMP, PTTL, the generations), write only the backup lock and its telemetry
 * snapshot, hear the bus without
 * publishing on it, nothing @dangerous (RESTORE is: a restore runs as the fleet user).
 */
const BACKUP_ACL = [
  '%R~cf:*',
  '%RW~cf:__backup:lock',
  // Its own telemetry snapshot (the fleet view lists every worker).
  '%RW~cf:__{fleet}:*',
  'resetchannels',
  '&cf:__bus',
].concat(['+@all', '-@dangerous', '-publish', '+info']);
interface TlsRedis {
  readonly proc: RedisProcess;
  readonly tlsPort: number;
}

let dir = '';
let ca = '';
let cache: TlsRedis | undefined;
let queue: TlsRedis | undefined;
const clients: Redis[] = [];
const pods: Pod[] = [];

/** A CA and a certificate for localhost / 127.0.0.1 signed by it, made for this run. */
async function makeCertificates(into: string): Promise<void> {
  const o = (args: string[]) => run('openssl', args, { cwd: into, timeout: 60_000 });
  await o(
    ['req', '-x509', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'ca.key', '-out', 'ca.crt'].concat([
      '-days',
      '1',
      '-subj',
      '/CN=cachefleet test CA',
    ]),
  );
  await o(
    ['req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'server.key', '-out', 'server.csr'].concat([
      '-subj',
      '/CN=localhost',
    ]),
  );
  await writeFile(join(into, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await o(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
      '-out',
      'server.crt',
      '-days',
      '1',
      '-extfile',
      'san.cnf',
    ]),
  );
}

/** One data node as redis-pod.sh writes it for `role`, with TLS on a second port. */
async function startTlsRedis(role: 'cache' | 'queue'): Promise<TlsRedis> {
  const home = join(dir, role);
  const out = join(home, 'run');
  await mkdir(home);
  await redisPod(['data', role, out], {
    ...roleEnv(role),
    REDIS_MASTER: 'none',
    ANNOUNCE_HOST: '127.0.0.1',
  });
  const tlsPort = await freePort();
  const proc = await withFreePort(undefined, (port) =>
    launchRedis({
      port,
      dir: home,
      logFile: logPath(home, port),
      auth: ADMIN,
      args: () => [
        join(out, 'redis.conf'),
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', home, '--logfile', logPath(home, port)],
        ...['--tls-port', String(tlsPort), '--tls-cert-file', join(dir, 'server.crt')],
        ...['--tls-key-file', join(dir, 'server.key'), '--tls-ca-cert-file', join(dir, 'ca.crt')],
        // Clients prove nothing about themselves with a certificate here: the ACL password does.
        ...['--tls-auth-clients', 'no'],
        // One node, no replica: queue.conf's min-replicas-to-write would refuse every write.
        ...(role === 'queue' ? ['--min-replicas-to-write', '0'] : []),
      ],
    }),
  );
  return { proc, tlsPort };
}

function the<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} not started`);
  return v;
}

/** A client of the test over TLS (trusting the CA), or over the plain port as the admin. */
function connect(
  server: TlsRedis,
  user: { readonly user: string; readonly password: string },
  options: RedisOptions = {},
): Redis {
  const c = new Redis({
    host: 'localhost',
    port: server.tlsPort,
    username: user.user,
    password: user.password,
    tls: { ca },
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    enableReadyCheck: false,
    retryStrategy: () => null,
    ...options,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

function admin(server: TlsRedis): Redis {
  return connect(server, ADMIN, { port: server.proc.port, tls: undefined, host: '127.0.0.1' });
}

/** The reply, or the error's first word (NOPERM, WRONGPASS, …). */
async function attempt(p: Promise<unknown>): Promise<unknown> {
  try {
    return await p;
  } catch (error) {
    return (error as Error).message.split(' ')[0];
  }
}

/** ACL LOG as `user: reason object` lines. */
async function aclLog(server: TlsRedis): Promise<string[]> {
  const entries = (await admin(server).call('ACL', 'LOG')) as unknown[][];
  return entries.map((e) => {
    const f = new Map<string, unknown>();
    for (let i = 0; i + 1 < e.length; i += 2) f.set(String(e[i]), e[i + 1]);
    return `${f.get('username')}: ${f.get('reason')} ${f.get('object')} (${f.get('context')})`;
  });
}

/** What the system's processes get: the role users over rediss://, the CA trusted by Node. */
function fleetEnv(): Record<string, string> {
  const c = the(cache, 'cache');
  const q = the(queue, 'queue');
  return {
    CACHE_REDIS_URL: `rediss://default:${SECRETS.cacheApp}@localhost:${c.tlsPort}`,
    CACHE_KEY_PREFIX: 'cf:',
    QUEUE_REDIS_URL: `rediss://default:${SECRETS.queueApp}@localhost:${q.tlsPort}`,
    QUEUE_PREFIX: 'cachefleet',
    WORKER_DEFINITIONS: DEFINITIONS,
    SLOW_ITEMS: String(ITEMS),
    SLOW_BATCH_MS: '0',
    NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt'),
  };
}

/** The real CLI with this file's fleet settings (over TLS, as the role users). */
const cli = (args: readonly string[]) => runCli(args, fleetEnv());

beforeAll(async () => {
  dir = await makeTempDir('cachefleet-tls-');
  await makeCertificates(dir);
  ca = await readFile(join(dir, 'ca.crt'), 'utf8');
  cache = await startTlsRedis('cache');
  queue = await startTlsRedis('queue');
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(pods.splice(0).map((p) => p.close()));
  await stopAllWorkers();
  for (const c of clients) c.disconnect();
  await cache?.proc.stop();
  await queue?.proc.stop();
  if (dir !== '') await removeTempDir(dir);
});

describe('invariant 8: role users and TLS', () => {
  it('TLS: a client that does not trust the CA is refused at the handshake; one that does gets in', async () => {
    const c = the(cache, 'cache');
    const untrusting = connect(c, { user: 'default', password: SECRETS.cacheApp }, { tls: {} });
    const seen: string[] = [];
    untrusting.on('error', (e: Error) => seen.push(e.message));
    expect(await attempt(untrusting.ping())).not.toBe('PONG');
    expect(seen.join('; ')).toMatch(/self[- ]signed|unable to (get|verify)|certificate/i);
    const trusting = connect(c, { user: 'default', password: SECRETS.cacheApp });
    expect(await trusting.ping()).toBe('PONG');
    // And the wrong user's password is no way in, TLS or not.
    const wrong = connect(c, { user: 'default', password: SECRETS.queueApp });
    expect(await attempt(wrong.ping())).toBe('WRONGPASS');
  });

  it('the worker, the CLI and a pod run over rediss:// as the role users, and no command of theirs is denied', async () => {
    const c = the(cache, 'cache');
    const q = the(queue, 'queue');
    for (const s of [c, q]) await admin(s).call('ACL', 'LOG', 'RESET');

    // Schedules on (the default): the job schedulers go through the queue user too.
    await startWorker({
      name: 'tls',
      env: { ...fleetEnv(), WORKER_HTTP_PORT: '0' },
      queues: 'warm:2,invalidate:2',
    });

    const warm = await cli(['warm', 'all', '-n', 'item', '--json']);
    expect(warm.code, warm.stderr).toBe(0);
    const warmed = warmResultSchema.parse(JSON.parse(warm.stdout.trim().split('\n').at(-1) ?? '{}').result);
    expect(warmed.written).toBe(ITEMS);
    expect(await countKeys(admin(c), 'cf:item:v1:*')).toBe(ITEMS);

    const inv = await cli(['invalidate', '-n', 'item', '-p', '1*', '--json']);
    expect(inv.code, inv.stderr).toBe(0);
    const removed = invalidateResultSchema.parse(
      JSON.parse(inv.stdout.trim().split('\n').at(-1) ?? '{}').result,
    );
    // 1, 10–19, 100–199: 111 ids of 300.
    expect(removed.removed).toBe(111);
    expect(await countKeys(admin(c), 'cf:item:v1:*')).toBe(ITEMS - 111);

    // A pod: reads (L2 miss, the fleet lock, a fenced fill), invalidates (tombstone, bus event).
    process.env.NODE_EXTRA_CA_CERTS = join(dir, 'ca.crt'); // inherited by the pod process
    const pod = await startPod({
      redisUrl: fleetEnv().CACHE_REDIS_URL ?? '',
      // The loader's own counters are the test's, outside the cache prefix: the admin writes them.
      counterUrl: `rediss://admin:${SECRETS.admin}@localhost:${c.tlsPort}`,
      role: 'tls-pod',
      prefix: 'cf:',
      ns: 'thing',
      loadMs: 0,
    });
    pods.push(pod);
    const Got = z.object({ ok: z.literal(true), value: z.object({ id: z.literal('t1') }) });
    Got.parse(await pod.request({ cmd: 'get', id: 't1' }));
    expect(await admin(c).exists('cf:thing:v1:t1')).toBe(1);
    expect(await pod.request({ cmd: 'delete', ids: ['t1'] })).toMatchObject({ ok: true });
    const bus = z
      .object({ ok: z.literal(true), connected: z.literal(true), stats: z.object({ published: z.number() }) })
      .parse(await pod.request({ cmd: 'bus' }));
    expect(bus.stats.published).toBe(1);
    expect(await admin(c).xlen('cf:__bus')).toBeGreaterThan(0);

    // Every queue key under the queue prefix, every cache key under the cache prefix.
    expect(await countKeys(admin(q), 'cachefleet:*')).toBeGreaterThan(0);
    expect((await admin(q).dbsize()) - (await countKeys(admin(q), 'cachefleet:*'))).toBe(0);
    const cacheOwn = (await countKeys(admin(c), 'cf:*')) + (await countKeys(admin(c), 'loads:cf:*'));
    expect(await admin(c).dbsize()).toBe(cacheOwn);

    expect(await aclLog(c), 'denied on the cache Redis').toEqual([]);
    expect(await aclLog(q), 'denied on the queue Redis').toEqual([]);
  }, 180_000);

  it('the backup worker runs as its own user: a whole backup, nothing denied, NOPERM for any other write', async () => {
    const c = the(cache, 'cache');
    await admin(c).call('ACL', 'SETUSER', 'backup', 'reset', 'on', `>${SECRETS.backup}`, ...BACKUP_ACL);
    await admin(c).set('cf:item:v1:backup-probe', '{"id":"backup-probe"}', 'PX', 600_000);
    await admin(c).call('ACL', 'LOG', 'RESET');
    const env = {
      ...fleetEnv(),
      CACHE_REDIS_URL: `rediss://backup:${SECRETS.backup}@localhost:${c.tlsPort}`,
      BACKUP_DIR: join(dir, 'backups'),
      SCHEDULES_ENABLED: 'false',
    };
    await startWorker({ name: 'tls-backup', env: { ...env, WORKER_HTTP_PORT: '0' }, queues: 'backup:1' });
    const made = await runCli(['backup', '--json'], env);
    expect(made.code, made.stderr).toBe(0);
    const Made = z.object({ state: z.literal('completed'), result: z.object({ keys: z.number() }) });
    const result = Made.parse(JSON.parse(made.stdout.trim().split('\n').at(-1) ?? '{}')).result;
    expect(result.keys).toBe(await countKeys(admin(c), 'cf:item:v*'));
    expect(await aclLog(c), 'denied to the backup worker').toEqual([]);

    const backup = connect(c, { user: 'backup', password: SECRETS.backup });
    expect(await attempt(backup.dumpBuffer('cf:item:v1:backup-probe'))).toBeInstanceOf(Buffer);
    expect(await attempt(backup.pttl('cf:item:v1:backup-probe'))).toBeGreaterThan(0);
    expect(await attempt(backup.set('cf:item:v1:backup-probe', '{}'))).toBe('NOPERM');
    expect(await attempt(backup.unlink('cf:item:v1:backup-probe'))).toBe('NOPERM');
    expect(await attempt(backup.xadd('cf:__bus', '*', 'e', '{}'))).toBe('NOPERM');
    expect(await attempt(backup.publish('cf:__bus', '{}'))).toBe('NOPERM');
    expect(await attempt(backup.call('RESTORE', 'cf:item:v1:new', '0', 'x'))).toBe('NOPERM');
    expect(await attempt(backup.get('loads:cf:t1'))).toBe('NOPERM');
    expect(await attempt(backup.flushall())).toBe('NOPERM');
    expect(await attempt(backup.keys('cf:*'))).toBe('NOPERM');
    expect(await attempt(backup.eval("return redis.call('SET', KEYS[1], '1')", 1, 'cf:item:v1:x'))).toBe(
      'NOPERM',
    );
    expect(await admin(c).get('cf:item:v1:backup-probe')).toBe('{"id":"backup-probe"}');
    const logged = await aclLog(c);
    expect(logged.filter((l) => l.startsWith('backup: ')).length).toBeGreaterThanOrEqual(8);
  }, 180_000);

  it('each role user, over TLS, gets NOPERM for what is out of its scope (and ACL LOG records it)', async () => {
    const c = the(cache, 'cache');
    const q = the(queue, 'queue');
    for (const s of [c, q]) await admin(s).call('ACL', 'LOG', 'RESET');

    const cacheUser = connect(c, { user: 'default', password: SECRETS.cacheApp });
    expect(await attempt(cacheUser.set('cf:probe', '1'))).toBe('OK');
    expect(await attempt(cacheUser.publish('cf:__bus', '{}'))).toBeTypeOf('number');
    expect(await attempt(cacheUser.set('cachefleet:warm:probe', '1'))).toBe('NOPERM');
    expect(await attempt(cacheUser.get('loads:cf:t1'))).toBe('NOPERM');
    expect(await attempt(cacheUser.publish('cf:other', '{}'))).toBe('NOPERM');
    expect(await attempt(cacheUser.keys('cf:*'))).toBe('NOPERM');
    expect(await attempt(cacheUser.flushall())).toBe('NOPERM');
    expect(await attempt(cacheUser.config('GET', 'maxmemory'))).toBe('NOPERM');
    // A script cannot reach past the key patterns either.
    expect(await attempt(cacheUser.eval("return redis.call('GET', KEYS[1])", 1, 'other:key'))).toBe('NOPERM');

    const queueUser = connect(q, { user: 'default', password: SECRETS.queueApp });
    expect(await attempt(queueUser.set('cachefleet:probe', '1'))).toBe('OK');
    expect(await attempt(queueUser.set('cf:probe', '1'))).toBe('NOPERM');
    expect(await attempt(queueUser.publish('cachefleet:x', '1'))).toBe('NOPERM');
    expect(await attempt(queueUser.subscribe('cf:__bus'))).toBe('NOPERM');
    expect(await attempt(queueUser.flushdb())).toBe('NOPERM');
    expect(await attempt(queueUser.call('CLIENT', 'KILL', 'ID', '999999'))).toBe('NOPERM');

    const keda = connect(q, { user: 'keda', password: SECRETS.keda });
    expect(await attempt(keda.llen('cachefleet:warm:wait'))).toBeTypeOf('number');
    expect(await attempt(keda.get('cachefleet:warm:meta'))).toBe('NOPERM');

    const logged = [...(await aclLog(c)), ...(await aclLog(q))];
    expect(logged.length).toBeGreaterThanOrEqual(10);
    expect(logged.some((l) => l.startsWith('default: key cachefleet:warm:probe'))).toBe(true);
  });
});
