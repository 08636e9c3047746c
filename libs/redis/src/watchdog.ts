import { dropConnections, type RedisClient } from './client.js';

export interface HangWatchdogOptions {
  /** Commands outstanding with no reply for this long means Redis hangs: drop the sockets. */
  readonly timeoutMs: number;
  /** Told of each hang just before the sockets are dropped (count it, open a breaker…). */
  readonly onHang?: () => void;
}

/** Ticks per timeoutMs; one more quiet tick than this declares a hang. */
const QUIET_TICKS_TO_HANG = 4;

/**
 * One timer per client instead of ioredis's `commandTimeout`, which arms a timer per command
 * (5% of an L2 hit in the bench). A hung server (SIGSTOP, a long script, a stalled link) shows as
 * commands outstanding and no reply at all for a whole timeout. Replies come in order, so that
 * means the oldest command has waited at least timeoutMs — the same bound ioredis's timer gives —
 * and a slow link with replies still flowing never trips it. Ticks every timeout/4 and fires on
 * the 5th quiet one: seen between 1× and 1.25× the timeout. Destroying the sockets (not
 * `disconnect()`, whose graceful end waits for a FIN a stopped server never sends) rejects those
 * commands at once on a client without retries (the cache role), and ioredis reconnects.
 *
 * Commands are counted by `track`, or on a hot path by bumping `inFlight` before the command and
 * `completions` (with `inFlight--`) after it, which spares the extra promise of `track`.
 */
export class HangWatchdog {
  /** Commands sent and not answered. */
  inFlight = 0;
  /** Replies (or failures) received since the start. */
  completions = 0;
  readonly #client: RedisClient;
  readonly #opts: HangWatchdogOptions;
  #completionsSeen = 0;
  #quietTicks = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(client: RedisClient, options: HangWatchdogOptions) {
    this.#client = client;
    this.#opts = options;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.#check(), Math.max(5, this.#opts.timeoutMs / QUIET_TICKS_TO_HANG));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Counts a command for the watchdog. */
  async track<T>(command: Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await command;
    } finally {
      this.inFlight--;
      this.completions++;
    }
  }

  #check(): void {
    const quiet = this.inFlight > 0 && this.completions === this.#completionsSeen;
    this.#completionsSeen = this.completions;
    this.#quietTicks = quiet ? this.#quietTicks + 1 : 0;
    if (this.#quietTicks > QUIET_TICKS_TO_HANG && this.#client.status === 'ready') {
      this.#quietTicks = 0;
      this.#opts.onHang?.();
      dropConnections(this.#client);
    }
  }
}
