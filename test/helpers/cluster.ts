import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from './ports.js';
import {
  launchRedis,
  logPath,
  makeTempDir,
  type RedisProcess,
  redisArgs,
  removeTempDir,
  withFreePort,
} from './redis-server.js';
import { parseInfo, tryCommand } from './resp.js';
import type { Address } from './sentinel.js';
import { waitUntil } from './wait.js';

export interface StartClusterOptions {
  /** Masters; at least 3 (redis-cli --cluster create needs 3). Default 3. */
  readonly masters?: number;
  /** Replicas per master, 0 or more. Default 0 (1 → 6 nodes). */
  readonly replicas?: number;
  /** `cluster-node-timeout`. Default 2000. */
  readonly nodeTimeoutMs?: number;
  /** Extra `redis-server` arguments for every node. */
  readonly args?: readonly string[];
  /** How long start may wait for `cluster_state:ok` everywhere. Default 30 s. */
  readonly timeoutMs?: number;
}

/** A cluster node: a RedisProcess plus the port of its cluster bus. */
export interface ClusterNode extends RedisProcess {
  readonly busPort: number;
}

export interface ClusterNodeInfo extends Address {
  readonly id: string;
  readonly flags: readonly string[];
  /** For a replica, the id of its master. */
  readonly masterId: string | undefined;
  /** Slot ranges as written by CLUSTER NODES, e.g. ['0-5460']. */
  readonly slots: readonly string[];
}

export interface RedisCluster {
  /** Every node, in start order: pass to a cluster client as its start-up nodes. */
  readonly nodes: readonly Address[];
  readonly processes: readonly ClusterNode[];
  /** The node's handle, for kill/restart/pause/resume. */
  node(port: number): ClusterNode;
  /** The masters that own slots now (not failed), as a running node reports them, by first slot. */
  masters(): Promise<Address[]>;
  /** CLUSTER NODES as a running node reports it. */
  topology(): Promise<ClusterNodeInfo[]>;
  /**
   * Waits until every running node reports cluster_state:ok with all 16384 slots served, sees every
   * other running node without fail flags, agrees on the slot map, and running replicas are linked.
   */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes the temp folder. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
/** Read at each call, not at import: test/setup sets it after the bench imported this. */
const redisCli = (): string => process.env.REDIS_CLI_BIN || 'redis-cli';
const QUERY = { timeoutMs: 1_000 } as const;

export function parseClusterNodes(text: unknown): ClusterNodeInfo[] {
  if (typeof text !== 'string') return [];
  const out: ClusterNodeInfo[] = [];
  for (const line of text.split('\n')) {
    const [id, addr, flags, master, , , , , ...slots] = line.trim().split(' ');
    if (!id || !addr || !flags || !master) continue;
    // ip:port@cport[,hostname]
    const m = /^([^:]*):(\d+)@/.exec(addr);
    if (!m) continue;
    out.push({
      id,
      host: m[1] || HOST,
      port: Number(m[2]),
      flags: flags.split(','),
      masterId: master === '-' ? undefined : master,
      // Skip importing/migrating markers like [42->-id].
      slots: slots.filter((s) => !s.startsWith('[')),
    });
  }
  return out;
}

function runCli(args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(redisCli(), args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (!err) resolve(stdout);
      else {
        const why = err.killed ? `timed out after ${timeoutMs} ms` : err.message;
        reject(new Error(`${redisCli()} ${args.join(' ')}: ${why}\n${stdout}\n${stderr}`));
      }
    });
  });
}

const firstSlot = (n: ClusterNodeInfo) => Number((n.slots[0] ?? '99999').split('-')[0]);

/**
 * A real Redis Cluster on free loopback ports: `masters` (3) masters, optionally `replicas` per
 * master, created with `redis-cli --cluster create`, and waits until it is healthy everywhere.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<RedisCluster> {
  const masterCount = options.masters ?? 3;
  const replicasPerMaster = options.replicas ?? 0;
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 2_000;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const extra = options.args ?? [];
  if (masterCount < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const total = masterCount * (1 + replicasPerMaster);

  const root = await makeTempDir('cachefleet-cluster-');
  const processes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.allSettled(processes.map((p) => p.stop()));
    await removeTempDir(root);
  };

  const startNode = async (index: number): Promise<ClusterNode> => {
    const dir = join(root, `node-${index}`);
    await mkdir(dir);
    return withFreePort(undefined, async (port) => {
      // The bus defaults to port + 10000, which may be taken or beyond 65535 for a high free port,
      // so it gets a free port of its own.
      let busPort = await freePort();
      while (busPort === port) busPort = await freePort();
      const args = redisArgs(port, dir, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
        '--cluster-port',
        String(busPort),
        '--cluster-announce-ip',
        HOST,
        // Let a replica take over however long its master was gone, so pause/kill tests fail over.
        '--cluster-replica-validity-factor',
        '0',
        '--repl-diskless-sync-delay',
        '0',
        ...extra,
      ]);
      const proc = await launchRedis({ port, dir, logFile: logPath(dir, port), args: () => args });
      return Object.assign(proc, { busPort });
    });
  };

  const node = (port: number): ClusterNode => {
    const found = processes.find((p) => p.port === port);
    if (!found) throw new Error(`no cluster node listens on port ${port}`);
    return found;
  };

  const topology = async (): Promise<ClusterNodeInfo[]> => {
    for (const p of processes) {
      if (!p.running) continue;
      const nodes = parseClusterNodes(await tryCommand(p.port, ['CLUSTER', 'NODES'], QUERY));
      if (nodes.length > 0) return nodes;
    }
    throw new Error('no running cluster node answers CLUSTER NODES');
  };

  const waitHealthy = async (waitMs = timeoutMs): Promise<void> => {
    await waitUntil(
      'the cluster to be healthy',
      async (note) => {
        const running = processes.filter((p) => p.running);
        const runningPorts = new Set(running.map((p) => p.port));
        let slotMap: string | undefined;
        for (const p of running) {
          const info = parseInfo(await tryCommand(p.port, ['CLUSTER', 'INFO'], QUERY));
          if (
            info.cluster_state !== 'ok' ||
            info.cluster_slots_assigned !== '16384' ||
            info.cluster_slots_ok !== '16384'
          ) {
            note(
              `${p.port}: state ${info.cluster_state}, assigned ${info.cluster_slots_assigned}, ok ${info.cluster_slots_ok}`,
            );
            return undefined;
          }
          const nodes = parseClusterNodes(await tryCommand(p.port, ['CLUSTER', 'NODES'], QUERY));
          const seen = nodes.filter((n) => runningPorts.has(n.port));
          if (seen.length < running.length) {
            note(`${p.port} knows ${seen.length}/${running.length} running nodes`);
            return undefined;
          }
          const bad = seen.find((n) =>
            n.flags.some((f) => f === 'fail' || f === 'fail?' || f === 'handshake' || f === 'noaddr'),
          );
          if (bad) {
            note(`${p.port} flags ${bad.port} as ${bad.flags.join(',')}`);
            return undefined;
          }
          // Every node must draw the same slot map, or a client gets MOVED back and forth at start.
          const map = nodes
            .filter((n) => n.slots.length > 0)
            .map((n) => `${n.port}:${n.slots.join(',')}`)
            .sort()
            .join(' ');
          if (slotMap === undefined) slotMap = map;
          else if (map !== slotMap) {
            note(`${p.port} sees another slot map`);
            return undefined;
          }
          const me = nodes.find((n) => n.flags.includes('myself'));
          if (me?.flags.includes('slave')) {
            const repl = parseInfo(await tryCommand(p.port, ['INFO', 'replication'], QUERY));
            if (repl.master_link_status !== 'up') {
              note(`replica ${p.port}: master_link_status ${repl.master_link_status}`);
              return undefined;
            }
          }
        }
        return true;
      },
      { timeoutMs: waitMs, intervalMs: 100 },
    );
  };

  try {
    for (let i = 0; i < total; i++) processes.push(await startNode(i));
    const createArgs = ['--cluster', 'create', ...processes.map((p) => `${HOST}:${p.port}`)];
    if (replicasPerMaster > 0) createArgs.push('--cluster-replicas', String(replicasPerMaster));
    createArgs.push('--cluster-yes');
    await runCli(createArgs, timeoutMs);
    await waitHealthy();
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    nodes: processes.map((p) => ({ host: HOST, port: p.port })),
    processes,
    node,
    topology,
    async masters() {
      return (await topology())
        .filter((n) => n.flags.includes('master') && !n.flags.includes('fail') && n.slots.length > 0)
        .sort((a, b) => firstSlot(a) - firstSlot(b))
        .map((n) => ({ host: n.host, port: n.port }));
    },
    waitHealthy,
    stop,
  };
}
