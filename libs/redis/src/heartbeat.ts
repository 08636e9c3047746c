import { dropConnections, type RedisClient } from './client.js';

export interface HeartbeatOptions {
  /** How often an idle-looking connection is PINGed, and how long the PONG may take, ms. */
  readonly intervalMs: number;
  /**
   * Told when a PING went unanswered while the client looked ready, with when the connection last
   * proved alive (ms since the epoch), just before its sockets are destroyed.
   */
  readonly onSilent?: (lastHeard: number) => void;
}

export interface Heartbeat {
  /** When the connection last proved alive (ready, a PONG, or `heard()`), ms since the epoch. */
  readonly lastHeard: number;
  /** Something else arrived on the connection (a pub/sub message): it is alive now. */
  heard(): void;
  stop(): void;
}

/**
 * A silent partition (packets dropped, the socket open) never errors an idle connection: a
 * subscriber keeps waiting for messages it will never get, a queue client looks ready. Every
 * `intervalMs` a PING goes out (one at a time; allowed in subscribe mode too); no PONG within
 * `intervalMs` while the client is `ready` means nobody is listening at the other end: `onSilent`
 * is told and the sockets are destroyed, so ioredis reconnects (and its `close` / `reconnecting`
 * events tell the owner, e.g. `Downtime`) once the network lets it. Noticed within 2 × intervalMs.
 */
export function startHeartbeat(client: RedisClient, options: HeartbeatOptions): Heartbeat {
  let lastHeard = Date.now();
  let beating = false;
  const heard = () => {
    lastHeard = Date.now();
  };
  client.on('ready', heard);
  const beat = async () => {
    if (beating || client.status !== 'ready') return;
    beating = true;
    let timer: NodeJS.Timeout | undefined;
    // The deadline yields once to I/O before it counts (setImmediate runs after the poll phase):
    // after an event-loop stall the deadline's timer and the PONG are both due, and timers run
    // first — without this, a busy process would take its own stall for a silent network.
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => setImmediate(() => resolve('late')), options.intervalMs);
    });
    try {
      const answer = await Promise.race([client.ping().then(() => 'pong' as const), late]);
      if (answer === 'pong') heard();
      else if (client.status === 'ready') {
        options.onSilent?.(lastHeard);
        dropConnections(client);
      }
    } catch {
      // The connection failed visibly: ioredis reconnects and says so itself.
    } finally {
      clearTimeout(timer);
      beating = false;
    }
  };
  const interval = setInterval(() => void beat(), options.intervalMs);
  interval.unref();
  return {
    get lastHeard() {
      return lastHeard;
    },
    heard,
    stop: () => {
      clearInterval(interval);
      client.off('ready', heard);
    },
  };
}
