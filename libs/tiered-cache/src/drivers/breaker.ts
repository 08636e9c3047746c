export type BreakerState = 'closed' | 'open' | 'half-open';

interface BreakerOptions {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  readonly clock?: { now(): number };
  /** Called on every state change (metrics, logs). */
  readonly onChange?: (from: BreakerState, to: BreakerState) => void;
}

/**
 * Stops a pod from hammering a Redis that is down: after `failureThreshold` consecutive failures
 * every L2 call is refused for `cooldownMs`, then one probe decides whether to close again.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  readonly #opts: BreakerOptions;
  readonly #clock: { now(): number };

  constructor(options: BreakerOptions) {
    this.#opts = options;
    this.#clock = options.clock ?? performance;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** May a call go to Redis now? In half-open, only one probe at a time. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#clock.now() - this.#openedAt < this.#opts.cooldownMs) return false;
      this.#set('half-open');
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  success(): void {
    this.#failures = 0;
    this.#probing = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  failure(): void {
    this.#failures++;
    this.#probing = false;
    if (
      this.#state === 'half-open' ||
      (this.#state === 'closed' && this.#failures >= this.#opts.failureThreshold)
    ) {
      this.#openedAt = this.#clock.now();
      this.#set('open');
    }
  }

  /** Force open, e.g. when the connection is known to be gone. */
  trip(): void {
    if (this.#state === 'open') return;
    this.#openedAt = this.#clock.now();
    this.#probing = false;
    this.#set('open');
  }

  #set(to: BreakerState): void {
    const from = this.#state;
    this.#state = to;
    this.#opts.onChange?.(from, to);
  }
}
