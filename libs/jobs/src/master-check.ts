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
 * A replica counts as up for an enqueue's WAIT while the sentinels had a PING answer from it this
 * recently, ms (they PING every second): a crashed replica stops holding enqueues up within about
 * 2 s, not after down-after-milliseconds (30 s in the deploy tree).
 */
const REPLICA_PING_MS = 2_000;

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

  /**
   * The most replicas one sentinel lists for the master as up — flags without s_down, o_down or
   * disconnected, and a PING answered within the last REPLICA_PING_MS — syncing ones included:
   * those a later failover may promote. Right after a
   * failover the ROLE of the new master does not list a replica still being moved to it (or the
   * old master, back and resyncing), yet Sentinel may promote either in a second failover; a job
   * confirmed without them was lost that way (chaos runs with enqueues retried through the
   * failover, issue 9). 0 when no sentinel answers.
   */
  async replicasUp(): Promise<number> {
    const counts = await Promise.all(this.#sentinels.map((s) => this.#replicasUp(s)));
    return Math.max(0, ...counts);
  }

  close(): void {
    for (const s of this.#sentinels) s.disconnect();
  }

  async #replicasUp(sentinel: RedisClient): Promise<number> {
    try {
      if (sentinel.status === 'wait') await sentinel.connect();
      const reply: unknown = await sentinel.call('SENTINEL', 'replicas', this.#name);
      if (!Array.isArray(reply)) return 0;
      return reply.filter((fields) => {
        if (!Array.isArray(fields)) return false;
        const field = (name: string): unknown => {
          const at = fields.indexOf(name);
          return at < 0 ? undefined : fields[at + 1];
        };
        const flags = field('flags');
        const ping = Number(field('last-ok-ping-reply'));
        return (
          typeof flags === 'string' &&
          !/(^|,)(s_down|o_down|disconnected)(,|$)/.test(flags) &&
          Number.isFinite(ping) &&
          ping < REPLICA_PING_MS
        );
      }).length;
    } catch {
      return 0; // An unreachable sentinel does not count.
    }
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
