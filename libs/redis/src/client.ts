import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { ResolvedRedisConnection } from './connection.js';

export type RedisClient = Redis | Cluster;

/**
 * `cache`: fail fast (no offline queue, one retry, short timeout) so a sick Redis costs a
 * request microseconds, not seconds — the caller falls back to L1 and the loader.
 * `queue`: BullMQ's rule — `maxRetriesPerRequest: null` and an offline queue, so blocking
 * commands survive reconnects.
 */
export type RedisRole = 'cache' | 'queue';

export interface RedisClientOptions {
  readonly role: RedisRole;
  /**
   * Cache role: arm ioredis's per-command timer (a `setTimeout` per command). The cache's own
   * store leaves it off and runs one HangWatchdog per client instead.
   */
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** CLIENT SETNAME, so operators (and chaos tests) can tell connections apart in CLIENT LIST. */
  readonly connectionName?: string;
  /** Called for every connection error (the client keeps reconnecting by itself). */
  readonly onError?: (error: Error) => void;
  /**
   * Cache role: commands (or script names) written to the socket at once rather than auto-pipelined
   * (ioredis holds those until `setImmediate`, in a Pipeline built for them): for one that is
   * latency-bound and seldom concurrent.
   */
  readonly sendAtOnce?: readonly string[];
}

/** Reconnect forever with capped, jittered back-off: recovery is automatic (REQUIREMENTS A5). */
function retryDelay(times: number): number {
  const base = Math.min(50 * 2 ** Math.min(times, 6), 2000);
  return Math.round(base / 2 + Math.random() * (base / 2));
}

function readonlyAfterFailover(error: Error): 2 | false {
  // After a Sentinel failover the old master comes back as a replica: reconnect and resend.
  return error.message.startsWith('READONLY') ? 2 : false;
}

/**
 * Connects `client` again, with the reconnect back-off, each time it ends without its owner having
 * closed it (`ownerClosed`); `connect` is the class's own connect (`super.connect`).
 */
function reviveOnEnd(
  client: Redis | Cluster,
  ownerClosed: () => boolean,
  connect: () => Promise<void>,
): void {
  let attempts = 0;
  client.on('ready', () => {
    attempts = 0;
  });
  client.on('end', () => {
    if (ownerClosed()) return;
    const timer = setTimeout(() => {
      if (client.status === 'end' && !ownerClosed()) connect().catch(() => {});
    }, retryDelay(++attempts));
    timer.unref();
  });
}

/**
 * ioredis stops for good (status `end`) not only when its owner closes it: a `connect()` that fails
 * — e.g. Sentinel's failover detector dropping the connection while a reconnect is still asking the
 * sentinels for the master ("Connection is closed.") — also ends it, and it never retries. Seen as
 * an API pod whose queue client stayed down for the rest of a failover run (issue 17). These
 * clients connect again from `end` with the same back-off, unless their owner closed them (`quit`,
 * `disconnect()`); `duplicate()` (BullMQ's blocking connections) makes one of the same kind.
 */
class LastingRedis extends Redis {
  #ownerClosed: boolean;

  /** `url`: a `redis://` URL, read by ioredis as usual; or undefined when `options` say it all. */
  constructor(url: string | undefined, options: RedisOptions) {
    if (url === undefined) super(options);
    else super(url, options);
    this.#ownerClosed = false;
    reviveOnEnd(
      this,
      () => this.#ownerClosed,
      () => super.connect(),
    );
  }

  override connect(...args: Parameters<Redis['connect']>): Promise<void> {
    this.#ownerClosed = false;
    return super.connect(...args);
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.#ownerClosed = true;
    super.disconnect(reconnect);
  }

  override sendCommand(...args: Parameters<Redis['sendCommand']>): ReturnType<Redis['sendCommand']> {
    if (args[0].name === 'quit') this.#ownerClosed = true;
    return super.sendCommand(...args);
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    const copy = new LastingRedis(undefined, { ...this.options, ...override });
    copy.on('error', () => {});
    return copy;
  }
}

/** The same for a Cluster client (its refresh can end it as well). */
class LastingCluster extends Cluster {
  #ownerClosed = false;

  constructor(nodes: ClusterNode[], options: ClusterOptions) {
    super(nodes, options);
    reviveOnEnd(
      this,
      () => this.#ownerClosed,
      () => super.connect(),
    );
  }

  override connect(): Promise<void> {
    this.#ownerClosed = false;
    return super.connect();
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.#ownerClosed = true;
    super.disconnect(reconnect);
  }

  override quit(...args: Parameters<Cluster['quit']>): ReturnType<Cluster['quit']> {
    this.#ownerClosed = true;
    return super.quit(...args);
  }
}

/**
 * The one place Redis clients are made. No I/O here: call `connect()` when starting. Scripts are
 * not registered here: each owner registers its own (`defineScripts`).
 */
export function createRedisClient(conn: ResolvedRedisConnection, options: RedisClientOptions): RedisClient {
  const base: RedisOptions = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    retryStrategy: retryDelay,
    reconnectOnError: readonlyAfterFailover,
    // A disconnect (Sentinel's failover detector on +switch-master) ends the socket and waits for
    // the server's FIN, destroying it only after this long. A stopped old master never answers:
    // for 2 s (the default) the commands already sent stayed on it, and a master that woke up in
    // that time ran them and answered — an acknowledged job then lost with the old master's data
    // (chaos runs, issue 17). Destroyed sooner, they fail or are resent to the new master.
    disconnectTimeout: 200,
    ...(options.connectionName !== undefined ? { connectionName: options.connectionName } : {}),
    ...(options.role === 'cache'
      ? {
          enableOfflineQueue: false,
          // 0: commands in flight when the connection drops are rejected at once, not resent.
          maxRetriesPerRequest: 0,
          autoResendUnfulfilledCommands: false,
          ...(options.commandTimeoutMs !== undefined ? { commandTimeout: options.commandTimeoutMs } : {}),
          enableAutoPipelining: true,
          ...(options.sendAtOnce !== undefined
            ? { autoPipeliningIgnoredCommands: [...options.sendAtOnce] }
            : {}),
        }
      : { enableOfflineQueue: true, maxRetriesPerRequest: null }),
  };
  let client: RedisClient;
  switch (conn.mode) {
    case 'single':
      client = new LastingRedis(conn.url, base);
      break;
    case 'sentinel':
      client = new LastingRedis(undefined, {
        ...base,
        sentinels: conn.sentinels,
        name: conn.name,
        db: conn.db,
        ...(conn.username !== undefined ? { username: conn.username } : {}),
        ...(conn.password !== undefined ? { password: conn.password } : {}),
        ...(conn.sentinelPassword !== undefined ? { sentinelPassword: conn.sentinelPassword } : {}),
        // A hung (not dead) master is only noticed through Sentinel's +switch-master.
        failoverDetector: true,
        sentinelRetryStrategy: retryDelay,
      });
      break;
    case 'cluster':
      client = new LastingCluster([...conn.nodes], {
        lazyConnect: true,
        enableOfflineQueue: options.role === 'queue',
        enableAutoPipelining: options.role === 'cache',
        scaleReads: 'master',
        // The redirect budget (maxRedirections × retryDelayOnFailover = 6.4 s) must outlast
        // cluster-node-timeout, or requests fail during a master election.
        maxRedirections: 32,
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        retryDelayOnTryAgain: 100,
        clusterRetryStrategy: retryDelay,
        redisOptions: {
          ...base,
          ...(conn.username !== undefined ? { username: conn.username } : {}),
          ...(conn.password !== undefined ? { password: conn.password } : {}),
        },
      });
      break;
  }
  if (options.onError) client.on('error', options.onError);
  else client.on('error', () => {});
  return client;
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * Drops every socket of a client at once so that commands waiting on a hung server are rejected
 * now. `disconnect()` would only `end()` the stream, and a stopped server never answers the FIN,
 * so the commands waited until it woke up (2.2 s in the SIGSTOP chaos test). ioredis reconnects.
 */
export function dropConnections(client: RedisClient): void {
  const nodes = client instanceof Cluster ? client.nodes() : [client];
  for (const node of nodes) node.stream?.destroy();
}
