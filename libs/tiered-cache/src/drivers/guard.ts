import { CacheError } from '../errors.js';
import { dropConnections, type RedisClient } from '../redis/factory.js';
import { type Err, err, ok, type Result } from '../result.js';
import { type BreakerState, CircuitBreaker } from './breaker.js';

export type L2ErrorType = 'unavailable' | 'timeout' | 'connection' | 'command' | 'corrupt';

export interface L2GuardOptions {
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  /** Commands outstanding with no reply for this long means Redis hangs: drop the sockets. */
  readonly commandTimeoutMs: number;
  readonly clock?: { now(): number };
  readonly onBreakerChange?: (from: BreakerState, to: BreakerState) => void;
}

/** Watchdog ticks per commandTimeoutMs; one more quiet tick than this declares a hang. */
const QUIET_TICKS_TO_HANG = 4;

/**
 * Everything that stands between the cache and a sick Redis: the circuit breaker, the hang
 * watchdog and the fault counters. Every L2 call goes through `run` (or, on the L2 hit path, the
 * same steps inlined with `inFlight` / `completions`).
 */
export class L2Guard {
  readonly breaker: CircuitBreaker;
  readonly errors: Record<L2ErrorType, number> = {
    unavailable: 0,
    timeout: 0,
    connection: 0,
    command: 0,
    corrupt: 0,
  };
  /** Commands sent and not answered; replies counted. Read by the watchdog. */
  inFlight = 0;
  completions = 0;
  readonly #client: RedisClient;
  readonly #timeoutMs: number;
  #completionsSeen = 0;
  #quietTicks = 0;
  #watchdog: NodeJS.Timeout | undefined;

  constructor(client: RedisClient, options: L2GuardOptions) {
    this.#client = client;
    this.#timeoutMs = options.commandTimeoutMs;
    this.breaker = new CircuitBreaker({
      ...options.breaker,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onBreakerChange ? { onChange: options.onBreakerChange } : {}),
    });
  }

  startWatchdog(): void {
    this.#watchdog = setInterval(() => this.#checkHang(), Math.max(5, this.#timeoutMs / QUIET_TICKS_TO_HANG));
    this.#watchdog.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.#watchdog);
  }

  /**
   * One timer per client instead of ioredis's `commandTimeout`, which arms a timer per command
   * (5% of an L2 hit in the bench). A hung server (SIGSTOP, a long script, a stalled link) shows as
   * commands outstanding and no reply at all for a whole timeout. Replies come in order, so that
   * means the oldest command has waited at least commandTimeoutMs — the same bound ioredis's timer
   * gives — and a slow link with replies still flowing never trips it. Ticks every timeout/4 and
   * fires on the 5th quiet one: seen between 1× and 1.25× the timeout. Destroying the sockets (not
   * `disconnect()`, whose graceful end waits for a FIN a stopped server never sends) rejects those
   * commands at once (maxRetriesPerRequest 0), the breaker opens, and ioredis reconnects.
   */
  #checkHang(): void {
    const quiet = this.inFlight > 0 && this.completions === this.#completionsSeen;
    this.#completionsSeen = this.completions;
    this.#quietTicks = quiet ? this.#quietTicks + 1 : 0;
    if (this.#quietTicks > QUIET_TICKS_TO_HANG && this.#client.status === 'ready') {
      this.#quietTicks = 0;
      this.errors.timeout++;
      this.breaker.trip();
      dropConnections(this.#client);
    }
  }

  /**
   * One L2 operation: refused while the breaker is open, tracked by the watchdog, faults counted
   * and returned, never thrown. `refused` runs when the operation could not be done (to remember it).
   */
  async run<T>(op: () => Promise<T>, refused?: () => void): Promise<Result<T>> {
    if (!this.breaker.allow()) {
      refused?.();
      return this.unavailable();
    }
    try {
      const value = await this.track(op());
      this.breaker.success();
      return ok(value);
    } catch (cause) {
      refused?.();
      return this.fail(cause);
    }
  }

  /** Counts a command for the hang watchdog. */
  async track<T>(command: Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await command;
    } finally {
      this.inFlight--;
      this.completions++;
    }
  }

  unavailable(): Err<CacheError> {
    this.errors.unavailable++;
    return err(new CacheError('E_CACHE_L2_UNAVAILABLE'));
  }

  fail(cause: unknown): Err<CacheError> {
    this.breaker.failure();
    const message = cause instanceof Error ? cause.message : String(cause);
    const type: L2ErrorType = /timed out/i.test(message)
      ? 'timeout'
      : /writeable|connect|closed|ECONN|EPIPE|reset|retries/i.test(message)
        ? 'connection'
        : 'command';
    this.errors[type]++;
    return err(new CacheError('E_CACHE_L2_FAILED', `Redis command failed: ${message}`, { cause }));
  }
}
