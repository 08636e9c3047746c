import { HangWatchdog, type RedisClient } from '@cachefleet/redis';
import { CacheError } from '../errors.js';
import { type Err, err, ok, type Result } from '../result.js';
import { type BreakerState, CircuitBreaker } from './breaker.js';

export type L2ErrorType = 'unavailable' | 'timeout' | 'connection' | 'command' | 'corrupt';

interface L2GuardOptions {
  readonly breaker: { readonly failureThreshold: number; readonly cooldownMs: number };
  /** Commands outstanding with no reply for this long means Redis hangs: drop the sockets. */
  readonly commandTimeoutMs: number;
  readonly clock?: { now(): number };
  readonly onBreakerChange?: (from: BreakerState, to: BreakerState) => void;
}

/**
 * The cache's policy towards a sick Redis: the circuit breaker and the fault counters, over the
 * hang watchdog of `@cachefleet/redis` (which only detects a hang and drops the sockets; here a
 * hang counts as a timeout and opens the breaker). Every L2 call goes through `run` (or, on the L2
 * hit path, the same steps inlined with the watchdog's `inFlight` / `completions`).
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
  readonly watchdog: HangWatchdog;

  constructor(client: RedisClient, options: L2GuardOptions) {
    this.breaker = new CircuitBreaker({
      ...options.breaker,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onBreakerChange ? { onChange: options.onBreakerChange } : {}),
    });
    this.watchdog = new HangWatchdog(client, {
      timeoutMs: options.commandTimeoutMs,
      onHang: () => {
        this.errors.timeout++;
        this.breaker.trip();
      },
    });
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
      const value = await this.watchdog.track(op());
      this.breaker.success();
      return ok(value);
    } catch (cause) {
      refused?.();
      return this.fail(cause);
    }
  }

  /**
   * A call beside the cache's own work (telemetry, metrics, the fleet view): not sent while the
   * breaker is open, watched for hangs, but its failure (a NOPERM of a user without the telemetry
   * keys, a slow INFO) neither counts toward the breaker nor as a cache error: it must never make
   * reads and writes degrade.
   */
  async side<T>(op: () => Promise<T>): Promise<Result<T>> {
    if (this.breaker.state === 'open') return err(new CacheError('E_CACHE_L2_UNAVAILABLE'));
    try {
      return ok(await this.watchdog.track(op()));
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      return err(new CacheError('E_CACHE_L2_FAILED', `Redis command failed: ${message}`, { cause }));
    }
  }

  /** Counts a command for the hang watchdog. */
  track<T>(command: Promise<T>): Promise<T> {
    return this.watchdog.track(command);
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
