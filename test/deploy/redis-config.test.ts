/**
 * The shipped Redis files (deploy/redis) booted as the pods boot them (shipped-redis.ts): each
 * setting the plan names is read back with CONFIG GET / SENTINEL MASTER from the running servers,
 * and the ACL users are tried for what they may and may not do.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheKeys } from '@cachefleet/redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pairsToRecord, rawCommand } from '../helpers/resp.js';
import {
  ADMIN,
  redisPod,
  SECRETS,
  SENTINEL_AUTH,
  type ShippedRedis,
  startShippedRedis,
} from './shipped-redis.js';

const run = promisify(execFile);
let set: ShippedRedis | undefined;
const clients: Redis[] = [];

beforeAll(async () => {
  set = await startShippedRedis();
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  await set?.stop();
});

function shipped(): ShippedRedis {
  if (set === undefined) throw new Error('not started');
  return set;
}

/** CONFIG GET name → value, as the admin user. */
async function config(port: number, name: string): Promise<string> {
  const reply = await rawCommand(port, ['CONFIG', 'GET', name], { auth: ADMIN });
  return pairsToRecord(reply)[name] ?? '(unset)';
}

function client(port: number, username: string, password: string): Redis {
  // No ready check: it sends INFO, which the `keda` user may not run.
  const c = new Redis({
    port,
    host: '127.0.0.1',
    username,
    password,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    enableReadyCheck: false,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** The reply, or the error's first word (NOPERM, WRONGPASS, …). */
async function attempt(p: Promise<unknown>): Promise<unknown> {
  try {
    return await p;
  } catch (error) {
    return (error as Error).message.split(' ')[0];
  }
}

const REDIS_DIR = join(import.meta.dirname, '..', '..', 'deploy', 'redis');

/** Redis's memory units: `2gb` is 2 × 1024³ bytes, `2g` 2 × 1000³. */
const UNITS: Record<string, number> = { k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };

/**
 * Every directive of a shipped file as CONFIG GET answers it: name → expected value. `port` and
 * `bind` are left out: the only settings the tests override (a free loopback port).
 */
async function fileSettings(file: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for (const line of (await readFile(join(REDIS_DIR, file), 'utf8')).split('\n')) {
    const words = line.trim().split(/\s+/);
    const [name, ...args] = words;
    if (name === undefined || name === '' || name.startsWith('#') || name === 'port' || name === 'bind')
      continue;
    let value = args.join(' ');
    if (value === '""') value = '';
    const memory = /^(\d+)(k|kb|m|mb|g|gb)$/i.exec(value);
    if (memory !== null) value = String(Number(memory[1]) * (UNITS[(memory[2] ?? '').toLowerCase()] ?? 1));
    out.push([name, value]);
  }
  return out;
}

describe('every directive of the shipped files is in force', () => {
  test.each([
    ['queue.conf', () => [shipped().queueMaster, shipped().queueReplica]],
    ['cache.conf', () => [shipped().cache]],
  ] as const)('%s: CONFIG GET answers each of its settings', async (file, servers) => {
    const settings = await fileSettings(file);
    expect(settings.length).toBeGreaterThan(10);
    for (const server of servers()) {
      for (const [name, value] of settings)
        expect(await config(server.port, name), `${file} ${name}`).toBe(value);
    }
  });

  test('sentinel.conf: SENTINEL CONFIG GET answers its sentinel settings', async () => {
    const settings = (await fileSettings('sentinel.conf')).filter(([name]) => name === 'sentinel');
    expect(settings.length).toBeGreaterThan(0);
    for (const [, setting] of settings) {
      const [name, value] = setting.split(' ');
      const reply = pairsToRecord(
        await rawCommand(shipped().sentinel.port, ['SENTINEL', 'CONFIG', 'GET', name ?? ''], {
          auth: SENTINEL_AUTH,
        }),
      );
      expect(reply[name ?? ''], `sentinel ${name}`).toBe(value);
    }
  });
});

describe('the queue Redis (deploy/redis/queue.conf)', () => {
  test.each([
    ['maxmemory-policy', 'noeviction'],
    ['maxmemory', String(2 * 1024 ** 3)],
    ['appendonly', 'yes'],
    ['appendfsync', 'everysec'],
    ['aof-use-rdb-preamble', 'yes'],
    ['save', '900 1 300 10 60 1000'],
    ['min-replicas-to-write', '1'],
    ['min-replicas-max-lag', '10'],
    ['shutdown-timeout', '10'],
    ['shutdown-on-sigterm', 'default'],
  ])('%s is %s on master and replica', async (name, value) => {
    expect(await config(shipped().queueMaster.port, name)).toBe(value);
    expect(await config(shipped().queueReplica.port, name)).toBe(value);
  });

  test('the replica replicates as the `replica` user and the master counts it for min-replicas-to-write', async () => {
    const repl = String(
      await rawCommand(shipped().queueMaster.port, ['INFO', 'replication'], { auth: ADMIN }),
    );
    expect(repl).toMatch(/connected_slaves:1/);
    expect(repl).toMatch(
      new RegExp(`slave0:ip=127\\.0\\.0\\.1,port=${shipped().queueReplica.port},state=online`),
    );
    expect(await config(shipped().queueReplica.port, 'masteruser')).toBe('replica');
  });
});

describe('the cache Redis (deploy/redis/cache.conf)', () => {
  test.each([
    ['maxmemory-policy', 'allkeys-lru'],
    ['maxmemory', String(2 * 1024 ** 3)],
    ['appendonly', 'no'],
    ['save', ''],
    ['lazyfree-lazy-eviction', 'yes'],
    ['repl-diskless-load', 'on-empty-db'],
  ])('%s is %s', async (name, value) => {
    expect(await config(shipped().cache.port, name)).toBe(value);
  });
});

describe('Sentinel (deploy/redis/sentinel.conf, sentinel-master.conf)', () => {
  test('watches the queue master with quorum 2, down after 30 s, failover timeout 180 s, parallel-syncs 1', async () => {
    const m = pairsToRecord(
      await rawCommand(shipped().sentinel.port, ['SENTINEL', 'MASTER', 'queue'], { auth: SENTINEL_AUTH }),
    );
    expect(m).toMatchObject({
      port: String(shipped().queueMaster.port),
      flags: 'master',
      quorum: '2',
      'down-after-milliseconds': '30000',
      'failover-timeout': '180000',
      'parallel-syncs': '1',
      // It logged in as the `sentinel` user: it read the master's INFO and found the replica.
      'num-slaves': '1',
    });
  });

  test('a Sentinel that starts asks its peers where the master is, else the initial master', async () => {
    const { queueMaster, queueReplica, sentinel } = shipped();
    const monitored = async (start: string, env: Record<string, string>) => {
      const out = join(shipped().runDir(sentinel), '..', start);
      const pod = { POD_NAME: 'redis-sentinel-1', ANNOUNCE_HOST: '127.0.0.1' };
      await redisPod(['sentinel', out], {
        REDIS_SENTINEL_PASSWORD: SECRETS.sentinel,
        SENTINEL_AUTH_PASSWORD: SECRETS.sentinelAuth,
        ...pod,
        ...env,
      });
      const conf = await readFile(join(out, 'sentinel.conf'), 'utf8');
      return /^sentinel monitor queue (\S+) (\d+) 2$/m.exec(conf)?.slice(1);
    };
    // A peer answers: its master wins over an initial address that no longer answers.
    const peers = { SENTINEL_HOSTS: '127.0.0.1', SENTINEL_PORT: String(sentinel.port) };
    expect(await monitored('peer', { ...peers, SENTINEL_MASTERS: 'queue=127.0.0.1:1' })).toEqual([
      '127.0.0.1',
      String(queueMaster.port),
    ]);
    // No peer: the initial address is asked, and a replica there names its master.
    expect(await monitored('alone', { SENTINEL_MASTERS: `queue=127.0.0.1:${queueReplica.port}` })).toEqual([
      '127.0.0.1',
      String(queueMaster.port),
    ]);
  });

  test('answers only with its password (requirepass), which it also gives its peers', async () => {
    const { sentinel } = shipped();
    expect(await attempt(rawCommand(sentinel.port, ['SENTINEL', 'MASTERS']))).toBe('NOAUTH');
    const wrong = { user: 'default', password: SECRETS.sentinel };
    expect(await attempt(rawCommand(sentinel.port, ['PING'], { auth: wrong }))).toBe('WRONGPASS');
    const conf = await readFile(join(shipped().runDir(sentinel), 'sentinel.conf'), 'utf8');
    expect(conf).toMatch(/^sentinel sentinel-pass \S+$/m);
  });

  test('resolves and announces hostnames, with an id derived from the pod name', async () => {
    const conf = await readFile(join(shipped().runDir(shipped().sentinel), 'sentinel.conf'), 'utf8');
    expect(conf).toMatch(/^sentinel resolve-hostnames yes$/m);
    expect(conf).toMatch(/^sentinel announce-hostnames yes$/m);
    const id = (await rawCommand(shipped().sentinel.port, ['SENTINEL', 'MYID'], {
      auth: SENTINEL_AUTH,
    })) as string;
    expect(id).toMatch(/^[0-9a-f]{40}$/);
    expect(conf).toContain(`sentinel myid ${id}`);
  });
});

describe('ACL users (deploy/redis/*-users.acl)', () => {
  test('the fleet’s queue user reaches BullMQ’s keys only, and nothing dangerous', async () => {
    const q = client(shipped().queueMaster.port, 'default', SECRETS.queueApp);
    expect(await attempt(q.set('cachefleet:warm:probe', '1'))).toBe('OK');
    expect(await attempt(q.set('cf:product:v1:1', '1'))).toBe('NOPERM');
    expect(await attempt(q.keys('*'))).toBe('NOPERM');
    expect(await attempt(q.flushall())).toBe('NOPERM');
    expect(await attempt(q.config('GET', 'maxmemory'))).toBe('NOPERM');
    expect(await attempt(q.publish('cachefleet:x', '1'))).toBe('NOPERM');
    expect(typeof (await attempt(q.info('server')))).toBe('string');
    expect(typeof (await attempt(q.client('LIST')))).toBe('string');
  });

  test('the fleet’s cache user reaches the cache prefix and the bus channel only', async () => {
    const c = client(shipped().cache.port, 'default', SECRETS.cacheApp);
    expect(await attempt(c.set('cf:product:v1:1', '1'))).toBe('OK');
    expect(await attempt(c.publish(cacheKeys('cf:').busChannel, '{}'))).toBe(0);
    expect(await attempt(c.publish('cf:other', '{}'))).toBe('NOPERM');
    expect(await attempt(c.set('cachefleet:warm:x', '1'))).toBe('NOPERM');
    expect(await attempt(c.flushdb())).toBe('NOPERM');
    expect(await attempt(c.keys('cf:*'))).toBe('NOPERM');
  });

  test('KEDA reads the length of wait lists and nothing else', async () => {
    const k = client(shipped().queueMaster.port, 'keda', SECRETS.keda);
    expect(await attempt(k.llen('cachefleet:warm:wait'))).toBe(0);
    expect(await attempt(k.type('cachefleet:warm:wait'))).toBe('none');
    expect(await attempt(k.lrange('cachefleet:warm:wait', 0, -1))).toBe('NOPERM');
    expect(await attempt(k.llen('cachefleet:warm:active'))).toBe('NOPERM');
    expect(await attempt(k.set('cachefleet:warm:wait', '1'))).toBe('NOPERM');
  });

  test('the backup user streams a snapshot of the queue Redis (redis-cli --rdb) and touches no key', async () => {
    const { queueMaster } = shipped();
    const file = join(shipped().runDir(queueMaster), '..', 'backup.rdb');
    await run(
      process.env.REDIS_CLI_BIN ?? 'redis-cli',
      [
        ...['-h', '127.0.0.1', '-p', String(queueMaster.port), '--user', 'backup', '--no-auth-warning'],
        ...['--rdb', file],
      ],
      { env: { ...process.env, REDISCLI_AUTH: SECRETS.backup }, timeout: 30_000 },
    );
    expect((await readFile(file)).subarray(0, 5).toString()).toBe('REDIS');
    const b = client(queueMaster.port, 'backup', SECRETS.backup);
    expect(typeof (await attempt(b.lastsave()))).toBe('number');
    expect(await attempt(b.info('persistence'))).toMatch(/rdb_last_bgsave_status:ok/);
    expect(await attempt(b.get('cachefleet:warm:meta'))).toBe('NOPERM');
    expect(await attempt(b.set('cachefleet:warm:x', '1'))).toBe('NOPERM');
    expect(await attempt(b.flushall())).toBe('NOPERM');
    expect(await attempt(b.config('GET', 'dir'))).toBe('NOPERM');
    expect(await attempt(b.shutdown('NOSAVE'))).toBe('NOPERM');
  });

  test('a wrong password is refused, and the rendered ACL file holds hashes, not passwords', async () => {
    const wrong = { user: 'default', password: SECRETS.cacheApp };
    expect(await attempt(rawCommand(shipped().queueMaster.port, ['PING'], { auth: wrong }))).toBe(
      'WRONGPASS',
    );
    for (const p of [shipped().queueMaster, shipped().cache]) {
      const acl = await readFile(join(shipped().runDir(p), 'users.acl'), 'utf8');
      for (const value of Object.values(SECRETS)) expect(acl).not.toContain(value);
      expect(acl).toMatch(/^user default on #[0-9a-f]{64} /m);
    }
  });

  test('redis-pod.sh refuses a missing, short or unquotable secret and writes nothing', async () => {
    const env = {
      REDIS_APP_PASSWORD: SECRETS.queueApp,
      REDIS_REPLICA_PASSWORD: SECRETS.replica,
      REDIS_SENTINEL_PASSWORD: SECRETS.sentinel,
      REDIS_ADMIN_PASSWORD: SECRETS.admin,
      REDIS_KEDA_PASSWORD: SECRETS.keda,
      REDIS_BACKUP_PASSWORD: SECRETS.backup,
      REDIS_MASTER: 'none',
    };
    const out = join(shipped().runDir(shipped().queueMaster), '..', 'refused');
    for (const [variable, value, why] of [
      ['REDIS_KEDA_PASSWORD', undefined, 'not set'],
      ['REDIS_APP_PASSWORD', 'short', 'at least 16 characters'],
      ['REDIS_ADMIN_PASSWORD', 'with space and "quotes"', 'only letters'],
    ] as const) {
      const bad: Record<string, string> = { ...env };
      if (value === undefined) delete bad[variable];
      else bad[variable] = value;
      await expect(redisPod(['data', 'queue', out], bad)).rejects.toThrow(`${variable}: ${why}`);
    }
    await expect(readFile(join(out, 'users.acl'))).rejects.toThrow('ENOENT');
  });
});
