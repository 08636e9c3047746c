import type { RedisClient } from './client.js';

/**
 * How long a client has not been ready: 0 while it is, counted from the moment it stopped being
 * ready or failed to connect (a lazy client nobody asked to connect yet is not down). Readiness probes compare it with a bound: a pod
 * whose connection is down past it says so (`/readyz` 503) instead of failing every request that
 * needs it.
 */
export class Downtime {
  readonly #clock: () => number;
  #since: number | undefined;

  constructor(client: RedisClient, clock: () => number = () => performance.now()) {
    this.#clock = clock;
    this.#since = client.status === 'ready' || client.status === 'wait' ? undefined : clock();
    client.on('ready', () => {
      this.#since = undefined;
    });
    const down = () => {
      this.#since ??= this.#clock();
    };
    for (const event of ['close', 'end', 'reconnecting']) client.on(event, down);
  }

  /** Milliseconds since the client was last ready (0 while it is). */
  get ms(): number {
    return this.#since === undefined ? 0 : this.#clock() - this.#since;
  }
}
