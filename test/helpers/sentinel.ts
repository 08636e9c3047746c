import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  launchRedis,
  logPath,
  makeTempDir,
  type RedisProcess,
  redisArgs,
  removeTempDir,
  withFreePort,
} from './redis-server.js';
import { pairsToRecord, parseInfo, RespError, rawCommand, tryCommand } from './resp.js';
import { delay, waitUntil } from './wait.js';

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface StartSentinelSetOptions {
  /** Master name the sentinels monitor. Default 'cachefleet'. */
  readonly name?: string;
  /** Replicas of the master. Default 2. */
  readonly replicas?: number;
  /** Sentinel processes. Default 3. */
  readonly sentinels?: number;
  /** Sentinels that must agree the master is down. Default 2. */
  readonly quorum?: number;
  /** `down-after-milliseconds`. Default 1000. */
  readonly downAfterMs?: number;
  /** `failover-timeout`. Default 3000. */
  readonly failoverTimeoutMs?: number;
  /** Extra `redis-server` arguments for the data nodes. */
  readonly args?: readonly string[];
  /** How long start may wait for the set to settle. Default 30 s. */
  readonly timeoutMs?: number;
}

export interface SentinelSet {
  readonly name: string;
  /** Where the sentinels listen: pass to a client as `sentinels`. */
  readonly sentinels: readonly Address[];
  /** The data node that was master at start (after a failover it is a replica, see currentMaster()). */
  readonly master: RedisProcess;
  /** The data nodes that were replicas at start. */
  readonly replicas: readonly RedisProcess[];
  /**
   * master and replicas. Their restart() brings a node back as a replica of the master the sentinels
   * name at that moment (or as a master if they still name that very node, e.g. before a failover).
   */
  readonly dataNodes: readonly RedisProcess[];
  /** The sentinel processes, in the order of `sentinels`. */
  readonly sentinelProcesses: readonly RedisProcess[];
  /** The handle of a data node or sentinel by port. */
  node(port: number): RedisProcess;
  /** The master address, as the first answering sentinel reports it (SENTINEL get-master-addr-by-name). */
  currentMaster(): Promise<Address>;
  /** The data node that currentMaster() names. */
  currentMasterProcess(): Promise<RedisProcess>;
  /**
   * SENTINEL FAILOVER, then waits until every running sentinel names a new master and it accepts
   * writes. Resolves with the new master's address. Until then nothing else changes: the old master
   * still runs as a master (and takes writes from clients that have not followed), as with real
   * Sentinel, which demotes it 8-20 s later; call waitSettled() to have it demoted at once.
   */
  failover(): Promise<Address>;
  /** SIGKILL the current master. Sentinels fail over after ~down-after-milliseconds; see waitForMaster(). */
  killMaster(): Promise<RedisProcess>;
  /**
   * Waits until every running sentinel names the same master, other than `notAt` if given, and that
   * master accepts writes. Resolves with its address.
   */
  waitForMaster(notAt?: Address, timeoutMs?: number): Promise<Address>;
  /**
   * Waits until the set is at rest: every running sentinel agrees on the master and knows all running
   * replicas (none down) and all other running sentinels; all running replicas are linked to the
   * master. A data node still acting as master after a failover is demoted on the way, as Sentinel
   * itself would do some seconds later (REPLICAOF + CLIENT KILL). Resolves with the master's address.
   */
  waitSettled(timeoutMs?: number): Promise<Address>;
  /** Stops every process and removes the temp folder. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
/** Short per-request time-out: a paused sentinel must not stall the polling for long. */
const QUERY = { timeoutMs: 1_000 } as const;

function sentinelConf(o: {
  port: number;
  dir: string;
  name: string;
  masterPort: number;
  quorum: number;
  downAfterMs: number;
  failoverTimeoutMs: number;
}): string {
  return [
    `port ${o.port}`,
    `bind ${HOST}`,
    `dir ${o.dir}`,
    `logfile ${logPath(o.dir, o.port)}`,
    'daemonize no',
    'protected-mode no',
    'sentinel resolve-hostnames no',
    'sentinel announce-hostnames no',
    `sentinel announce-ip ${HOST}`,
    `sentinel announce-port ${o.port}`,
    `sentinel monitor ${o.name} ${HOST} ${o.masterPort} ${o.quorum}`,
    `sentinel down-after-milliseconds ${o.name} ${o.downAfterMs}`,
    `sentinel failover-timeout ${o.name} ${o.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${o.name} 1`,
    '',
  ].join('\n');
}

function asAddress(reply: unknown): Address | undefined {
  if (!Array.isArray(reply)) return undefined;
  const [host, port] = reply;
  if (typeof host !== 'string' || typeof port !== 'string') return undefined;
  const n = Number(port);
  return Number.isInteger(n) && n > 0 ? { host, port: n } : undefined;
}

const same = (a: Address, b: Address) => a.host === b.host && a.port === b.port;

/**
 * 1 master + 2 replicas + 3 sentinels on free loopback ports, with fast timings, and waits until the
 * set has settled (replicas linked, every sentinel sees the master, 2 replicas and 2 other sentinels).
 */
export async function startSentinelSet(options: StartSentinelSetOptions = {}): Promise<SentinelSet> {
  const name = options.name ?? 'cachefleet';
  const replicaCount = options.replicas ?? 2;
  const sentinelCount = options.sentinels ?? 3;
  const quorum = options.quorum ?? 2;
  const downAfterMs = options.downAfterMs ?? 1_000;
  const failoverTimeoutMs = options.failoverTimeoutMs ?? 3_000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const extra = options.args ?? [];

  const root = await makeTempDir('cachefleet-sentinel-');
  const dataNodes: RedisProcess[] = [];
  const sentinelProcesses: RedisProcess[] = [];
  let stopped = false;

  const stop = async () => {
    stopped = true;
    // Sentinels first, so they do not react to the data nodes going away.
    await Promise.allSettled(sentinelProcesses.map((p) => p.stop()));
    await Promise.allSettled(dataNodes.map((p) => p.stop()));
    await removeTempDir(root);
  };

  /** Asks the running sentinels in turn; undefined if none answers. */
  const askMaster = async (): Promise<Address | undefined> => {
    for (const s of sentinelProcesses) {
      if (!s.running) continue;
      const addr = asAddress(await tryCommand(s.port, ['SENTINEL', 'get-master-addr-by-name', name], QUERY));
      if (addr) return addr;
    }
    return undefined;
  };

  let initialMaster: Address | undefined;
  const startDataNode = async (index: number): Promise<RedisProcess> => {
    const dir = join(root, `data-${index}`);
    await mkdir(dir);
    return withFreePort(undefined, (port) =>
      launchRedis({
        port,
        dir,
        logFile: logPath(dir, port),
        // Built again on restart(): a restarted node rejoins as a replica of whoever is master now.
        args: async () => {
          const base = redisArgs(port, dir, [
            '--repl-diskless-sync-delay',
            '0',
            '--replica-announce-ip',
            HOST,
            ...extra,
          ]);
          const master = (await askMaster()) ?? initialMaster;
          return master === undefined || master.port === port
            ? base
            : [...base, '--replicaof', master.host, String(master.port)];
        },
      }),
    );
  };

  const node = (port: number): RedisProcess => {
    const found = [...dataNodes, ...sentinelProcesses].find((p) => p.port === port);
    if (!found) throw new Error(`no process of sentinel set '${name}' listens on port ${port}`);
    return found;
  };

  const currentMaster = async (): Promise<Address> => {
    const addr = await askMaster();
    if (!addr) throw new Error(`no running sentinel knows the master of '${name}'`);
    return addr;
  };

  /** All running sentinels' answers, or undefined unless they all agree. */
  const agreedMaster = async (note: (t: string) => void): Promise<Address | undefined> => {
    const answers: Address[] = [];
    for (const s of sentinelProcesses) {
      if (!s.running) continue;
      const addr = asAddress(await tryCommand(s.port, ['SENTINEL', 'get-master-addr-by-name', name], QUERY));
      if (!addr) {
        note(`sentinel ${s.port} does not answer`);
        return undefined;
      }
      answers.push(addr);
    }
    const first = answers[0];
    if (!first) {
      note('no sentinel running');
      return undefined;
    }
    if (!answers.every((a) => same(a, first))) {
      note(`sentinels disagree: ${answers.map((a) => a.port).join(', ')}`);
      return undefined;
    }
    return first;
  };

  const acceptsWrites = async (addr: Address, note: (t: string) => void): Promise<boolean> => {
    const repl = parseInfo(await tryCommand(addr.port, ['INFO', 'replication'], QUERY));
    if (repl.role !== 'master') {
      note(`${addr.port} has role ${repl.role ?? '(no answer)'}`);
      return false;
    }
    const ok = await tryCommand(addr.port, ['SET', '__harness:probe', String(Date.now())], QUERY);
    if (ok !== 'OK') note(`${addr.port} refuses writes`);
    return ok === 'OK';
  };

  /** What Sentinel sends a master that must become a replica (it also drops the clients). */
  const demote = async (port: number, master: Address) => {
    await tryCommand(port, ['REPLICAOF', master.host, String(master.port)], QUERY);
    await tryCommand(port, ['CLIENT', 'KILL', 'TYPE', 'normal'], QUERY);
    await tryCommand(port, ['CLIENT', 'KILL', 'TYPE', 'pubsub'], QUERY);
  };

  const waitForMaster = (notAt?: Address, waitMs = 20_000): Promise<Address> =>
    waitUntil(
      notAt ? `a new master of '${name}' (old: ${notAt.port})` : `the master of '${name}'`,
      async (note) => {
        const addr = await agreedMaster(note);
        if (!addr) return undefined;
        if (notAt && same(addr, notAt)) {
          note(`sentinels still name ${addr.port}`);
          return undefined;
        }
        return (await acceptsWrites(addr, note)) ? addr : undefined;
      },
      { timeoutMs: waitMs },
    );

  const waitSettled = (waitMs = timeoutMs): Promise<Address> =>
    waitUntil(
      `sentinel set '${name}' to settle`,
      async (note) => {
        const master = await agreedMaster(note);
        if (!master) return undefined;
        if (!(await acceptsWrites(master, note))) return undefined;
        const replicas = dataNodes.filter((p) => p.running && p.port !== master.port);
        for (const r of replicas) {
          const repl = parseInfo(await tryCommand(r.port, ['INFO', 'replication'], QUERY));
          if (repl.role === 'master') {
            // A master left over from a failover. Sentinel demotes it only after its next INFO round
            // plus 8 s (up to ~20 s, fixed in Sentinel); do now what it would do then.
            await demote(r.port, master);
            note(`demoted stale master ${r.port}`);
            return undefined;
          }
          if (
            repl.role !== 'slave' ||
            repl.master_port !== String(master.port) ||
            repl.master_link_status !== 'up'
          ) {
            note(
              `replica ${r.port}: role ${repl.role}, master ${repl.master_port}, link ${repl.master_link_status}`,
            );
            return undefined;
          }
        }
        const runningSentinels = sentinelProcesses.filter((p) => p.running);
        for (const s of runningSentinels) {
          const m = pairsToRecord(await tryCommand(s.port, ['SENTINEL', 'MASTER', name], QUERY));
          if (m.flags !== 'master') {
            note(`sentinel ${s.port}: master flags ${m.flags}`);
            return undefined;
          }
          const others = Number(m['num-other-sentinels']);
          if (others < runningSentinels.length - 1) {
            note(`sentinel ${s.port} sees ${others} other sentinels`);
            return undefined;
          }
          // Known and reachable is enough here: the links themselves were checked on the replicas above.
          // Sentinel's cached copy of a replica's INFO is refreshed only every 10 s, so waiting for it
          // to show the new link would add up to 10 s for nothing.
          const listed = await tryCommand(s.port, ['SENTINEL', 'REPLICAS', name], QUERY);
          const healthy = (Array.isArray(listed) ? listed : [])
            .map(pairsToRecord)
            .filter((r) => r.flags === 'slave' && replicas.some((p) => String(p.port) === r.port));
          if (healthy.length < replicas.length) {
            note(`sentinel ${s.port} sees ${healthy.length}/${replicas.length} healthy replicas`);
            return undefined;
          }
        }
        return master;
      },
      { timeoutMs: waitMs, intervalMs: 200 },
    );

  try {
    const master = await startDataNode(0);
    initialMaster = { host: HOST, port: master.port };
    dataNodes.push(master);
    for (let i = 1; i <= replicaCount; i++) dataNodes.push(await startDataNode(i));
    // Replicas must be linked before the sentinels start: a sentinel's first INFO of the master then
    // lists them at once, instead of after the next INFO round (every 10 s).
    await waitUntil(
      'replicas to link to the master',
      async (note) => {
        for (const r of dataNodes.slice(1)) {
          const repl = parseInfo(await rawCommand(r.port, ['INFO', 'replication']));
          if (repl.master_link_status !== 'up') {
            note(`replica ${r.port}: master_link_status ${repl.master_link_status}`);
            return undefined;
          }
        }
        return true;
      },
      { timeoutMs },
    );
    for (let i = 0; i < sentinelCount; i++) {
      const dir = join(root, `sentinel-${i}`);
      await mkdir(dir);
      const conf = join(dir, 'sentinel.conf');
      const proc = await withFreePort(undefined, async (port) => {
        await writeFile(
          conf,
          sentinelConf({ port, dir, name, masterPort: master.port, quorum, downAfterMs, failoverTimeoutMs }),
        );
        // The sentinel rewrites this file as it learns; a restart() reads it back.
        return launchRedis({ port, dir, logFile: logPath(dir, port), args: () => [conf, '--sentinel'] });
      });
      sentinelProcesses.push(proc);
    }
    await waitSettled();
  } catch (err) {
    await stop();
    throw err;
  }

  const set: SentinelSet = {
    name,
    sentinels: sentinelProcesses.map((p) => ({ host: HOST, port: p.port })),
    master: dataNodes[0] as RedisProcess,
    replicas: dataNodes.slice(1),
    dataNodes,
    sentinelProcesses,
    node,
    currentMaster,
    async currentMasterProcess() {
      return node((await currentMaster()).port);
    },
    async failover() {
      if (stopped) throw new Error('sentinel set stopped');
      const before = await currentMaster();
      // A sentinel refuses while it still has a failover in progress (INPROG) or sees no replica fit to
      // promote (NOGOOD, e.g. right after a replica restarted); both pass, so ask again.
      await waitUntil(
        `SENTINEL FAILOVER ${name} to be accepted`,
        async (note) => {
          for (const s of sentinelProcesses) {
            if (!s.running) continue;
            try {
              if ((await rawCommand(s.port, ['SENTINEL', 'FAILOVER', name], QUERY)) === 'OK') return true;
            } catch (err) {
              note(err instanceof RespError ? `${s.port}: ${err.message}` : String(err));
              if (err instanceof RespError) break; // a real answer: wait, then ask again
            }
          }
          await delay(200);
          return undefined;
        },
        { timeoutMs: 15_000 },
      );
      return waitForMaster(before);
    },
    async killMaster() {
      const proc = await set.currentMasterProcess();
      await proc.kill();
      return proc;
    },
    waitForMaster,
    waitSettled,
    stop,
  };
  return set;
}
