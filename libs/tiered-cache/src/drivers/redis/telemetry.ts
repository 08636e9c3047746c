import { once } from 'node:events';
import { isCluster, masterName, masters } from '@cachefleet/redis';
import { Redis } from 'ioredis';
import type { Result } from '../../result.js';
import type { L2Connection } from './connection.js';

/**
 * The cache Redis side of the fleet's telemetry (docs/telemetry.md): each process's snapshot under
 * `__{fleet}:pod:<id>` with a TTL, indexed by expiry in `__{fleet}:pods` (one slot: read with one
 * ZRANGEBYSCORE + MGET, never a SCAN), Redis's own INFO per node, and a sampled estimate of each
 * namespace's entries and bytes (RANDOMKEY + MEMORY USAGE: a few hundred commands, not a walk).
 */

/** What INFO says of one node, as the fleet view and the metrics show it. */
export interface RedisNodeInfo {
  /** `host:port` as the client reaches it. */
  readonly node: string;
  readonly role: string;
  readonly usedMemoryBytes: number;
  /** 0: no maxmemory set. */
  readonly maxMemoryBytes: number;
  readonly maxMemoryPolicy: string;
  readonly evictedKeys: number;
  readonly expiredKeys: number;
  readonly connectedClients: number;
  readonly keys: number;
  /** Replicas attached (a master), or whether the link to the master is up (a replica). */
  readonly connectedReplicas: number;
  /** A master's replicas as its INFO lists them: address, state, bytes behind. */
  readonly replicas: readonly ReplicaInfo[];
  readonly masterLinkUp: boolean | undefined;
  /** Bytes a replica is behind its master (master_repl_offset − its offset), when known. */
  readonly replicationLagBytes: number | undefined;
  /** Whether the last RDB save (BGSAVE) succeeded: INFO `rdb_last_bgsave_status`. */
  readonly rdbOk: boolean;
  /** Whether AOF writes and rewrites succeed (`aof_last_write_status`, `aof_last_bgrewrite_status`); undefined: AOF off. */
  readonly aofOk: boolean | undefined;
  readonly version: string;
}

/** One configured Sentinel, as the exporter found it. */
export interface SentinelInfo {
  /** `host:port` as configured. */
  readonly sentinel: string;
  /** It answered and names a master for the set. */
  readonly up: boolean;
}

export interface ReplicaInfo {
  readonly node: string;
  /** `online`, `wait_bgsave`, `send_bulk`, … */
  readonly state: string;
  readonly lagBytes: number;
  /** Seconds since the replica last acknowledged (the master's INFO `lag=`; 0–1 while healthy). */
  readonly lagSeconds: number;
}

export interface NamespaceSample {
  readonly namespace: string;
  /** Estimated keys of the namespace (all versions and generations, tombstones included). */
  readonly entries: number;
  readonly bytes: number;
}

export interface L2Sample {
  /** Keys drawn with RANDOMKEY, over every master. */
  readonly sampled: number;
  /** Keys in the databases sampled (DBSIZE, every prefix). */
  readonly dbKeys: number;
  readonly namespaces: readonly NamespaceSample[];
}

/** Parses `INFO`'s `field:value` lines (sections and comments skipped). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

function num(info: Map<string, string>, field: string): number {
  const n = Number(info.get(field) ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** `keys=12,expires=3,avg_ttl=…` of `db0`. */
function dbKeys(info: Map<string, string>): number {
  let total = 0;
  for (const [field, value] of info) {
    if (!/^db\d+$/.test(field)) continue;
    const m = /keys=(\d+)/.exec(value);
    if (m) total += Number(m[1]);
  }
  return total;
}

/** `slave0:ip=127.0.0.1,port=7001,state=online,offset=123,lag=0` lines of a master's INFO. */
function replicasOf(info: Map<string, string>): ReplicaInfo[] {
  const head = num(info, 'master_repl_offset');
  const out: ReplicaInfo[] = [];
  for (const [field, value] of info) {
    if (!/^slave\d+$/.test(field)) continue;
    const f = new Map(value.split(',').map((kv) => kv.split('=') as [string, string]));
    out.push({
      node: `${f.get('ip') ?? '?'}:${f.get('port') ?? '?'}`,
      state: f.get('state') ?? 'unknown',
      lagBytes: Math.max(0, head - Number(f.get('offset') ?? head)),
      lagSeconds: Number(f.get('lag') ?? 0) || 0,
    });
  }
  return out;
}

export function nodeInfo(node: string, text: string): RedisNodeInfo {
  const info = parseInfo(text);
  const role = info.get('role') ?? 'unknown';
  const replica = role === 'slave';
  const lag =
    replica && info.has('slave_repl_offset') && info.has('master_repl_offset')
      ? Math.max(0, num(info, 'master_repl_offset') - num(info, 'slave_repl_offset'))
      : undefined;
  return {
    node,
    role: replica ? 'replica' : role,
    usedMemoryBytes: num(info, 'used_memory'),
    maxMemoryBytes: num(info, 'maxmemory'),
    maxMemoryPolicy: info.get('maxmemory_policy') ?? 'unknown',
    evictedKeys: num(info, 'evicted_keys'),
    expiredKeys: num(info, 'expired_keys'),
    connectedClients: num(info, 'connected_clients'),
    keys: dbKeys(info),
    connectedReplicas: num(info, 'connected_slaves'),
    replicas: replicasOf(info),
    masterLinkUp: replica ? info.get('master_link_status') === 'up' : undefined,
    replicationLagBytes: lag,
    rdbOk: (info.get('rdb_last_bgsave_status') ?? 'ok') === 'ok',
    aofOk:
      info.get('aof_enabled') === '1'
        ? info.get('aof_last_write_status') !== 'err' && info.get('aof_last_bgrewrite_status') !== 'err'
        : undefined,
    version: info.get('redis_version') ?? 'unknown',
  };
}

/** Longest a node's INFO may take before it is listed as unreachable, ms. */
const INFO_BUDGET_MS = 1_000;
/** Longest a Sentinel may take to answer before it counts as down, ms (inside a scrape's budget). */
const SENTINEL_BUDGET_MS = 400;

function unreachable(node: string): RedisNodeInfo {
  return {
    node,
    role: 'unreachable',
    usedMemoryBytes: 0,
    maxMemoryBytes: 0,
    maxMemoryPolicy: 'unknown',
    evictedKeys: 0,
    expiredKeys: 0,
    connectedClients: 0,
    keys: 0,
    connectedReplicas: 0,
    replicas: [],
    masterLinkUp: undefined,
    replicationLagBytes: undefined,
    rdbOk: true,
    aofOk: undefined,
    version: 'unknown',
  };
}

/** `p`, or a rejection once `ms` have passed. */
export function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** `host:port` of the node a single or Sentinel client is connected to now (undefined: none). */
function connectedTo(client: Redis): string | undefined {
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  if (client.status !== 'ready' || stream?.remoteAddress === undefined) return undefined;
  return `${stream.remoteAddress}:${stream.remotePort ?? 0}`;
}

/** The masters the client reaches now, by address (a failover shows as a new one). */
export function masterAddresses(c: L2Connection): string[] {
  if (isCluster(c.client)) return masters(c.client).map(masterName);
  const at = connectedTo(c.client);
  return at === undefined ? [] : [at];
}

/** Namespaces one take of a pod's fences returns at most (more are taken at the next tick). */
const FENCES_TAKEN = 1_000;

export class TelemetryStore {
  readonly #c: L2Connection;

  constructor(c: L2Connection) {
    this.#c = c;
  }

  /** A Cluster client just started knows no nodes until its first slot map: wait for it (briefly). */
  async #topology(): Promise<void> {
    const client = this.#c.client;
    if (!isCluster(client) || client.status === 'ready') return;
    await within(once(client, 'ready'), INFO_BUDGET_MS).catch(() => undefined);
  }

  /** Writes this process's snapshot and drops index entries of processes whose snapshot expired. */
  publish(podId: string, json: string, ttlMs: number): Promise<Result<void>> {
    const c = this.#c;
    const now = Date.now();
    return c.guard.side(async () => {
      // One slot ({fleet}): a MULTI is allowed on a Cluster too.
      await c.client
        .multi()
        .set(c.keys.pod(podId), json, 'PX', ttlMs)
        .zadd(c.keys.pods, now + ttlMs, podId)
        .zremrangebyscore(c.keys.pods, '-inf', now)
        .exec();
    });
  }

  /** Takes this process's snapshot out (a graceful stop): it leaves the fleet view at once. */
  remove(podId: string): Promise<Result<void>> {
    const c = this.#c;
    return c.guard.side(async () => {
      await c.client.multi().del(c.keys.pod(podId)).zrem(c.keys.pods, podId).exec();
    });
  }

  /**
   * Fences pods that did not acknowledge a fleet-acknowledged invalidation of `namespace` in time
   * (docs/design-fleet-ack.md): each drops that namespace from its L1 when it takes its fences.
   */
  fence(pods: readonly string[], namespace: string, ttlMs: number): Promise<Result<void>> {
    const c = this.#c;
    return c.guard.side(async () => {
      // One key per pod (slots differ on a Cluster): a pipeline, not a MULTI.
      const pipe = c.client.pipeline();
      for (const pod of pods) pipe.sadd(c.keys.fenced(pod), namespace).pexpire(c.keys.fenced(pod), ttlMs);
      await pipe.exec();
    });
  }

  /** Takes (SPOP: a fence written meanwhile stays for the next take) the namespaces `podId` is fenced for. */
  takeFences(podId: string): Promise<Result<unknown>> {
    const c = this.#c;
    return c.guard.side(() => c.client.spop(c.keys.fenced(podId), FENCES_TAKEN));
  }

  /** The snapshots of every live process, as stored (JSON text; the caller validates). */
  read(): Promise<Result<string[]>> {
    const c = this.#c;
    return c.guard.side(async () => {
      const ids = await c.client.zrangebyscore(c.keys.pods, Date.now(), '+inf');
      if (ids.length === 0) return [];
      const values = await c.client.mget(...ids.map((id) => c.keys.pod(id)));
      return values.filter((v): v is string => v !== null);
    });
  }

  /** INFO of every node: each master and replica of a Cluster; the connected node otherwise. */
  info(): Promise<Result<RedisNodeInfo[]>> {
    const c = this.#c;
    return c.guard.side(async () => {
      if (isCluster(c.client)) {
        await this.#topology();
        // A node down (a failover in progress) is listed as unreachable; the others still answer.
        return Promise.all(
          c.client.nodes('all').map(async (n) => {
            const name = masterName(n);
            const text = await within(n.info(), INFO_BUDGET_MS).catch(() => undefined);
            return text === undefined ? unreachable(name) : nodeInfo(name, text);
          }),
        );
      }
      return [nodeInfo(connectedTo(c.client) ?? 'unknown', await c.client.info())];
    });
  }

  /**
   * Each configured Sentinel of a Sentinel-mode client, asked on a connection of its own (the
   * client's own Sentinel connection is only used while it looks for the master): up when it answers
   * `SENTINEL GET-MASTER-ADDR-BY-NAME` with an address. Empty for a single node or a Cluster.
   */
  async sentinels(): Promise<SentinelInfo[]> {
    const client = this.#c.client;
    if (isCluster(client)) return [];
    const { sentinels, name, sentinelPassword, sentinelUsername, sentinelTLS } = client.options;
    if (sentinels === undefined || sentinels === null || name === undefined) return [];
    return Promise.all(
      sentinels.map(async (s) => {
        const host = s.host ?? '127.0.0.1';
        const port = s.port ?? 26379;
        const probe = new Redis({
          host,
          port,
          lazyConnect: true,
          connectTimeout: SENTINEL_BUDGET_MS,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          retryStrategy: () => null,
          ...(sentinelPassword !== undefined ? { password: sentinelPassword } : {}),
          ...(sentinelUsername !== undefined ? { username: sentinelUsername } : {}),
          ...(sentinelTLS !== undefined ? { tls: sentinelTLS } : {}),
        });
        probe.on('error', () => undefined);
        const up = await within(
          (async () => {
            await probe.connect();
            const at = await probe.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
            return Array.isArray(at) && at.length === 2;
          })(),
          SENTINEL_BUDGET_MS,
        ).catch(() => false);
        probe.disconnect();
        return { sentinel: `${host}:${port}`, up };
      }),
    );
  }

  /**
   * Estimates each namespace's keys and bytes from `samples` RANDOMKEYs spread over the masters
   * (by their DBSIZE): its share of the sampled keys times the keys of the databases, and their
   * mean MEMORY USAGE. Keys of other prefixes count in the database but in no namespace.
   */
  sample(samples: number): Promise<Result<L2Sample>> {
    const c = this.#c;
    const prefix = c.prefix;
    const ownState = `${prefix}__`;
    return c.guard.side(async () => {
      await this.#topology();
      const nodes = masters(c.client);
      // A master that does not answer (down, a failover in progress) is left out of the sample.
      const sizes = await Promise.all(nodes.map((n) => within(n.dbsize(), INFO_BUDGET_MS).catch(() => 0)));
      const dbKeysTotal = sizes.reduce((a, b) => a + b, 0);
      const seen = new Map<string, { hits: number; bytes: number }>();
      let sampled = 0;
      await Promise.all(
        nodes.map(async (n, i) => {
          const size = sizes[i] ?? 0;
          if (size === 0 || dbKeysTotal === 0) return;
          const draws = Math.max(1, Math.round((samples * size) / dbKeysTotal));
          const p = n.pipeline();
          for (let k = 0; k < draws; k++) p.randomkey();
          const drawn = await within(p.exec(), INFO_BUDGET_MS).catch(() => null);
          const keys = (drawn ?? []).map(([, v]) => (typeof v === 'string' ? v : undefined));
          sampled += keys.filter((k) => k !== undefined).length;
          const ours: string[] = [];
          for (const k of keys) if (k?.startsWith(prefix) && !k.startsWith(ownState)) ours.push(k);
          if (ours.length === 0) return;
          const m = n.pipeline();
          for (const k of ours) m.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
          const usage = (await within(m.exec(), INFO_BUDGET_MS).catch(() => null)) ?? [];
          ours.forEach((k, j) => {
            const rest = k.slice(prefix.length);
            const at = rest.indexOf(':v');
            if (at <= 0) return;
            const name = rest.slice(0, at);
            const bytes = Number(usage[j]?.[1] ?? 0);
            const into = seen.get(name) ?? { hits: 0, bytes: 0 };
            into.hits++;
            into.bytes += Number.isFinite(bytes) ? bytes : 0;
            seen.set(name, into);
          });
        }),
      );
      const namespaces = [...seen]
        .map(([namespace, s]) => {
          const entries = sampled === 0 ? 0 : Math.round((s.hits / sampled) * dbKeysTotal);
          return { namespace, entries, bytes: Math.round((s.bytes / s.hits) * entries) };
        })
        .sort((a, b) => a.namespace.localeCompare(b.namespace));
      return { sampled, dbKeys: dbKeysTotal, namespaces };
    });
  }
}
