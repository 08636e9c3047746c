import type { Logger } from 'pino';
import type { CacheEvent } from './events.js';

export interface EventBusOptions {
  /** Stream (durable, ordered, replayable) and pub/sub channel (fast fan-out) names. */
  readonly stream: string;
  readonly channel: string;
  /** Approximate stream length kept (XADD MAXLEN ~). */
  readonly maxLen: number;
  /** This pod's id, written into every event it publishes. */
  readonly podId: string;
  /** While the subscription is down, L1 keeps nothing longer than this, ms. */
  readonly disconnectedTtlMs: number;
  readonly logger?: Logger;
  /** Given each other pod's event's age when applied here, seconds (the bus lag histogram). */
  readonly lag?: { observe(seconds: number): void };
  /**
   * Fleet-acknowledged invalidations (docs/design-fleet-ack.md): where acks are recorded and
   * announced; `send`: this pod acknowledges what it applies (it holds an L1).
   */
  readonly acks?: {
    readonly key: (token: string) => string;
    readonly channel: (podId: string) => string;
    readonly send: boolean;
  };
}

/** What the cache does with the bus: apply an event, flush L1, cap L1 lifetimes while cut off. */
export interface BusHandlers {
  /** Resolves (when it returns a promise) once the event is wholly applied here. */
  apply(event: CacheEvent, own: boolean): Promise<unknown> | undefined;
  /** Events were lost (trimmed before this pod read them): drop everything in L1. */
  flush(reason: 'trimmed' | 'disconnected'): void;
  /** `true`: entries filled now must not outlive disconnectedTtlMs; `false`: back to normal. */
  disconnected(cut: boolean): void;
}

export interface BusStats {
  published: number;
  applied: number;
  duplicates: number;
  /** Events found through XRANGE after a gap or a reconnect rather than over pub/sub. */
  replayed: number;
  gaps: number;
  flushes: number;
  invalid: number;
  /** Events that Redis could not take at once: kept in the outbox and sent when it answered. */
  queued: number;
  /** Events refused because the outbox was full (never announced). */
  dropped: number;
  /** Fleet-acknowledged invalidations (docs/design-fleet-ack.md): acks this pod sent for events it applied. */
  acks: number;
  /** Fleet-acknowledged invalidations this pod made and waited on. */
  waits: number;
  /** Of those, the ones that timed out with pods missing. */
  timeouts: number;
  /** Namespaces this pod dropped from L1 because it had been fenced (it missed acknowledging in time). */
  fenced: number;
}
