/**
 * Issue 9, invariant 9, third case: a Sentinel minority does not elect. A master, a replica and
 * three Sentinels (quorum 2, down-after 1 s), each a host in its own network namespace on one LAN
 * (test/helpers/netns.ts `createLan`: a bridge in a switch namespace; cutting a host sets its switch
 * port down, so packets are dropped silently, sockets left open, as in a real partition).
 *
 *  1. One Sentinel cut off alone: it sees the master down (its log says `+sdown master`) but cannot
 *     get the quorum to call it objectively down, let alone a majority to be elected: no
 *     `+odown`, no `+try-failover`; the other two keep the master, the epoch stays 0; healed, it
 *     agrees with them.
 *  2. The master and one Sentinel cut off (each alone): the two Sentinels left are the majority of
 *     three, agree the master is down and promote the replica; the cut Sentinel tried nothing.
 *     Healed: every Sentinel names the new master and the old one comes back as its replica.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from './helpers/index.js';
import { createLan, type Lan, type LanHost, removeHosts, requireNetns } from './helpers/netns.js';

const NAME = 'cfpart';
const DOWN_AFTER_MS = 1000;
const dir = mkdtempSync(join(tmpdir(), 'cachefleet-sentinel-partition-'));
const procs: ChildProcess[] = [];
const clients: Redis[] = [];
let lan: Lan;

const redisBin = () => process.env.REDIS_SERVER_BIN || 'redis-server';

function launch(host: LanHost, args: readonly string[]): void {
  const { file, args: argv } = host.command([redisBin(), ...args]);
  const child = spawn(file, argv, { stdio: 'ignore' });
  procs.push(child);
}

function client(host: LanHost, port: number): Redis {
  const c = new Redis({
    host: host.address,
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
  });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

function dataNode(host: LanHost, replicaOf?: LanHost): void {
  launch(host, [
    '--port',
    '6379',
    '--bind',
    host.address,
    '--protected-mode',
    'no',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--logfile',
    join(dir, `${host.name}.log`),
    '--repl-diskless-sync-delay',
    '0',
    ...(replicaOf ? ['--replicaof', replicaOf.address, '6379'] : []),
  ]);
}

function sentinel(host: LanHost, master: LanHost): string {
  const conf = join(dir, `${host.name}-sentinel.conf`);
  const log = join(dir, `${host.name}-sentinel.log`);
  writeFileSync(
    conf,
    [
      'port 26379',
      `bind ${host.address}`,
      `dir ${dir}`,
      `logfile ${log}`,
      'protected-mode no',
      `sentinel monitor ${NAME} ${master.address} 6379 2`,
      `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
      `sentinel failover-timeout ${NAME} 3000`,
      `sentinel parallel-syncs ${NAME} 1`,
      '',
    ].join('\n'),
  );
  launch(host, [conf, '--sentinel']);
  return log;
}

/** `SENTINEL MASTER` as a record, from one Sentinel. */
async function masterView(s: Redis): Promise<Record<string, string>> {
  const flat = (await s.call('SENTINEL', 'MASTER', NAME)) as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

async function namedMaster(s: Redis): Promise<string | undefined> {
  const at = (await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME).catch(() => null)) as string[] | null;
  return at?.[0];
}

let master: LanHost;
let replica: LanHost;
let sentinels: LanHost[];
let logs: string[];
let views: Redis[];

beforeAll(async () => {
  await requireNetns();
  lan = await createLan(5);
  const [m, r, s1, s2, s3] = lan.hosts;
  if (m === undefined || r === undefined || s1 === undefined || s2 === undefined || s3 === undefined)
    throw new Error('five hosts expected');
  master = m;
  replica = r;
  sentinels = [s1, s2, s3];
  dataNode(master);
  dataNode(replica, master);
  logs = sentinels.map((s) => sentinel(s, master));
  views = sentinels.map((s) => client(s, 26379));
  // Settled: every Sentinel knows the replica and the two others.
  await waitUntil(
    'the Sentinels to know each other and the replica',
    async (note) => {
      const all = await Promise.all(views.map((v) => masterView(v).catch(() => undefined)));
      note(JSON.stringify(all.map((a) => [a?.['num-other-sentinels'], a?.['num-slaves']])));
      return all.every((a) => a?.['num-other-sentinels'] === '2' && a['num-slaves'] === '1')
        ? true
        : undefined;
    },
    { timeoutMs: 30_000 },
  );
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const p of procs) p.kill('SIGKILL');
  await removeHosts();
  rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const logOf = (i: number) => readFileSync(logs[i] as string, 'utf8');

describe('a Sentinel minority (network namespaces)', () => {
  it('one Sentinel cut off alone sees the master down but does not fail over', async () => {
    const [s1, s2, s3] = views as [Redis, Redis, Redis];
    const cut = sentinels[2] as LanHost;
    await cut.cut();
    try {
      // Long enough for its down-after, an election and a failover timeout had it been allowed.
      await waitUntil('the cut Sentinel to see the master down', async () =>
        /\+sdown master/.test(logOf(2)) ? true : undefined,
      );
      await sleep(4 * DOWN_AFTER_MS);
      expect(await namedMaster(s1)).toBe(master.address);
      expect(await namedMaster(s2)).toBe(master.address);
      expect((await masterView(s1))['config-epoch']).toBe('0');
    } finally {
      await cut.heal();
    }
    await waitUntil('the healed Sentinel to name the same master', async () =>
      (await namedMaster(s3)) === master.address ? true : undefined,
    );
    expect((await masterView(s3))['config-epoch']).toBe('0');
    const log = logOf(2);
    expect(log).not.toMatch(/\+odown|\+try-failover|\+elected-leader|\+promoted-slave/);
  }, 60_000);

  it('with the master and one Sentinel cut off, the majority promotes the replica; the minority tries nothing', async () => {
    const [s1, s2, s3] = views as [Redis, Redis, Redis];
    const minority = sentinels[2] as LanHost;
    const before = logOf(2).length;
    await Promise.all([master.cut(), minority.cut()]);
    try {
      await waitUntil(
        'the two Sentinels left to promote the replica',
        async () =>
          (await namedMaster(s1)) === replica.address && (await namedMaster(s2)) === replica.address
            ? true
            : undefined,
        { timeoutMs: 30_000 },
      );
      expect(Number((await masterView(s1))['config-epoch'])).toBeGreaterThan(0);
    } finally {
      await Promise.all([master.heal(), minority.heal()]);
    }
    // Healed: the minority follows the new configuration; the old master is demoted.
    await waitUntil('the healed Sentinel to name the new master', async () =>
      (await namedMaster(s3)) === replica.address ? true : undefined,
    );
    const oldMaster = client(master, 6379);
    await waitUntil(
      'the old master to come back as a replica',
      async () => {
        const role = (await oldMaster.call('ROLE').catch(() => [])) as unknown[];
        return role[0] === 'slave' && role[1] === replica.address ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const during = logOf(2).slice(before);
    expect(during).not.toMatch(/\+try-failover|\+elected-leader|\+promoted-slave/);
    expect(logOf(0) + logOf(1)).toMatch(/\+promoted-slave|\+switch-master/);
  }, 90_000);
});
