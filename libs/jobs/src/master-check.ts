import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import {
  createRedisClient,
  isCluster,
  type RedisClient,
  type ResolvedRedisConnection,
} from '@cachefleet/redis';

type SentinelConnection = Extract<ResolvedRedisConnection, { mode: 'sentinel' }>;

/**
 * Whether the server a client is connected to is still the master by a majority of the sentinels.
 * A stopped master that wakes after a failover still believes it is master, with a replica that
 * the sentinels have not moved yet: it takes a job, that replica confirms it (WAIT), and both lose
 * it when they are reconfigured. Seen once in 20 chaos runs (issue 17).
 */
export class SentinelMasterCheck {
  readonly #name: string;
  readonly #sentinels: RedisClient[];

  constructor(conn: SentinelConnection) {
    this.#name = conn.name;
    const auth = conn.sentinelPassword === undefined ? '' : `:${encodeURIComponent(conn.sentinelPassword)}@`;
    this.#sentinels = conn.sentinels.map((s) =>
      createRedisClient(
        { mode: 'single', url: `redis://${auth}${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}` },
        { role: 'cache', connectTimeoutMs: 1000, connectionName: 'cachefleet:jobs:master-check' },
      ),
    );
  }

  /** The socket a command sent now would use (to tell whether a reply came over the same one). */
  static socketOf(client: RedisClient): unknown {
    return isCluster(client) ? undefined : client.stream;
  }

  /** True when a majority of the sentinels name the server at the other end of `client`'s socket. */
  async confirms(client: RedisClient): Promise<boolean> {
    if (isCluster(client)) return true;
    const host = client.stream?.remoteAddress?.replace(/^::ffff:/, '');
    const port = client.stream?.remotePort;
    if (host === undefined || port === undefined) return false;
    const answers = await Promise.all(this.#sentinels.map((s) => this.#master(s)));
    let agree = 0;
    for (const a of answers)
      if (a !== undefined && a.port === port && (await sameHost(a.host, host))) agree++;
    return agree * 2 > this.#sentinels.length;
  }

  close(): void {
    for (const s of this.#sentinels) s.disconnect();
  }

  async #master(sentinel: RedisClient): Promise<{ host: string; port: number } | undefined> {
    try {
      if (sentinel.status === 'wait') await sentinel.connect();
      const reply: unknown = await sentinel.call('SENTINEL', 'get-master-addr-by-name', this.#name);
      if (Array.isArray(reply) && typeof reply[0] === 'string' && typeof reply[1] === 'string')
        return { host: reply[0], port: Number(reply[1]) };
    } catch {
      // An unreachable sentinel does not vote.
    }
    return undefined;
  }
}

async function sameHost(named: string, connected: string): Promise<boolean> {
  if (named === connected) return true;
  if (isIP(named) !== 0) return false;
  try {
    return (await lookup(named, { all: true })).some((a) => a.address === connected);
  } catch {
    return false;
  }
}
