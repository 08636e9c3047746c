import { CacheError } from '../errors.js';
import { err, type Result } from '../result.js';
import type { CacheEvent } from './events.js';

/** Events kept for delivery while Redis cannot take them; beyond this, new ones are refused. */
export const OUTBOX_MAX = 10_000;
/** How often the outbox retries while the connection is up but sending fails, ms. */
const OUTBOX_RETRY_MS = 250;

interface Outgoing {
  readonly event: CacheEvent;
  readonly done: (r: Result<string>) => void;
  waited: boolean;
}

/** What the outbox counts in the bus's stats. */
export interface OutboxStats {
  queued: number;
  dropped: number;
}

/**
 * Announcements of changes already made (issue 17), sent in order by `send`. When Redis cannot take
 * one it is kept with those behind it and sent again on `drain()` (the publishing connection's
 * `ready`) and every OUTBOX_RETRY_MS meanwhile. `push` resolves once the event went out; an event
 * refused by a full outbox, or still waiting at `close`, resolves an error.
 */
export class Outbox {
  readonly #send: (event: CacheEvent) => Promise<Result<string>>;
  readonly #stats: OutboxStats;
  #items: Outgoing[] = [];
  #draining = false;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(send: (event: CacheEvent) => Promise<Result<string>>, stats: OutboxStats) {
    this.#send = send;
    this.#stats = stats;
  }

  /** Events waiting (for status and tests). */
  get size(): number {
    return this.#items.length;
  }

  push(event: CacheEvent): Promise<Result<string>> {
    if (this.#closed) return Promise.resolve(err(new CacheError('E_CACHE_CLOSED')));
    if (this.#items.length >= OUTBOX_MAX) {
      this.#stats.dropped++;
      return Promise.resolve(
        err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'the bus outbox is full: the event was not kept')),
      );
    }
    return new Promise((done) => {
      this.#items.push({ event, done, waited: false });
      void this.drain();
    });
  }

  async drain(): Promise<void> {
    if (this.#draining || this.#closed) return;
    this.#draining = true;
    try {
      for (let next = this.#items[0]; next !== undefined && !this.#closed; next = this.#items[0]) {
        const r = await this.#send(next.event);
        if (!r.ok) {
          for (const o of this.#items) {
            if (o.waited) continue;
            o.waited = true;
            this.#stats.queued++;
          }
          if (this.#retry === undefined && !this.#closed) {
            this.#retry = setTimeout(() => {
              this.#retry = undefined;
              void this.drain();
            }, OUTBOX_RETRY_MS);
            this.#retry.unref();
          }
          return;
        }
        this.#items.shift();
        next.done(r);
      }
    } finally {
      this.#draining = false;
    }
  }

  /** Stops sending; whatever still waits resolves E_CACHE_CLOSED. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const o of this.#items.splice(0))
      o.done(err(new CacheError('E_CACHE_CLOSED', 'the bus closed before the event went out')));
  }
}
