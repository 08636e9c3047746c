import {
  defineScripts,
  type Heartbeat,
  loadScripts,
  type RedisClient,
  startHeartbeat,
} from '@cachefleet/redis';
import { z } from 'zod';
import type { InlineEvent } from '../drivers/redis/fencing.js';
import { CacheError } from '../errors.js';
import { err, ok, type Result } from '../result.js';
import { AckWaiter } from './acks.js';
import { decodeEvent, decodeWire, type WireMessage } from './decode.js';
import { ackMessageSchema, type CacheEvent, type CacheEventInput, compareStreamIds } from './events.js';
import { Outbox } from './outbox.js';
import type { BusHandlers, BusStats, EventBusOptions } from './types.js';
import { fieldOf, fieldValue, validate } from './wire.js';

export type { BusHandlers, BusStats, EventBusOptions } from './types.js';

const REPLAY_BATCH = 1000;
/**
 * The subscriber is PINGed this often, and must answer within as long: a silent partition
 * (packets dropped, the socket open, no error ever) is noticed within twice this, not never.
 */
const HEARTBEAT_MAX_MS = 1000;
/**
 * How long a fleet-acknowledged invalidation's ack set lives, ms; also the longest wait a caller may
 * ask for, and the oldest event a pod still acknowledges (a replay long after is no answer to anyone).
 */
export const ACK_TTL_MS = 60_000;
interface BusScripts {
  busPublish(stream: string, channel: string, maxLen: number, event: string): Promise<string>;
  busAck(ackKey: string, pod: string, ttlMs: number, channel: string, message: string): Promise<number>;
}

const BUS_SCRIPTS = loadScripts<BusScripts>(new URL('./', import.meta.url), {
  busPublish: 'bus-publish-1',
  busAck: 'bus-ack-1',
});
const podIds = z.array(z.string().min(1).max(128));

/**
 * Invalidate / update / prewarm / config events between pods (REQUIREMENTS D2). Each event goes to a
 * Redis Stream and over pub/sub in one script; the pub/sub message names the id before it, so a pod
 * applies each event once, in stream order, and notices at once when it missed one. After a gap or a
 * reconnect it replays the stream from its last id; if that id was trimmed away it flushes L1.
 */
/** An event as the stream holds it: its id and Redis's time of XADD (ms). */
export interface RecentEvent {
  readonly id: string;
  readonly at: number;
  readonly event: CacheEvent;
}

export class EventBus {
  readonly stats: BusStats = {
    published: 0,
    applied: 0,
    duplicates: 0,
    replayed: 0,
    gaps: 0,
    flushes: 0,
    invalid: 0,
    queued: 0,
    dropped: 0,
    acks: 0,
    waits: 0,
    timeouts: 0,
    fenced: 0,
  };
  readonly #pub: RedisClient;
  readonly #scripts: BusScripts;
  readonly #sub: RedisClient;
  readonly #opts: EventBusOptions;
  readonly #handlers: BusHandlers;
  #lastId = '0-0';
  #lagMs = 0;
  #catchingUp: Promise<void> | undefined;
  #queue: WireMessage[] = [];
  #connected = false;
  #everReady = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #firstReady: (() => void) | undefined;
  #closed = false;
  /** Bumped by every cut: a catch-up that a cut overtook must not declare the bus connected. */
  #cuts = 0;
  #checkingAhead = false;
  #checkAgain = false;
  /** Announcements of changes already made, sent in order (see `deliver`). */
  readonly #outbox: Outbox;
  /** PINGs the subscriber: a silent partition counts as a cut (libs/redis heartbeat.ts). */
  #heartbeat: Heartbeat | undefined;
  /** Fleet-acknowledged invalidations this pod published and still waits on, by token. */
  readonly #waiters = new Map<string, AckWaiter>();
  /** This pod's ack channel (undefined: the bus has no acks configured). */
  readonly #ackChannel: string | undefined;
  #ackListening: Promise<boolean> | undefined;

  constructor(pub: RedisClient, sub: RedisClient, options: EventBusOptions, handlers: BusHandlers) {
    this.#pub = pub;
    this.#scripts = defineScripts(pub, BUS_SCRIPTS);
    this.#sub = sub;
    this.#opts = options;
    this.#handlers = handlers;
    this.#outbox = new Outbox((event) => this.#send(event), this.stats);
    this.#ackChannel = options.acks?.channel(options.podId);
    // Registered once; ioredis resubscribes by itself after a reconnect and then emits 'ready'.
    this.#sub.on('message', (channel: string, message: string) => {
      this.#heartbeat?.heard();
      if (channel === this.#opts.channel) this.#onMessage(message);
      else if (channel === this.#ackChannel) this.#onAck(message);
    });
    this.#sub.on('ready', () => void this.#onReady());
    this.#sub.on('close', () => this.#onCut());
    this.#pub.on('ready', () => void this.#outbox.drain());
  }

  /** The id of the last event applied (or skipped as this pod's own). */
  get lastId(): string {
    return this.#lastId;
  }

  /** How old the last event from another pod was when this pod applied it, ms (0: none yet). */
  get lagMs(): number {
    return this.#lagMs;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Resolves once subscribed (or after `waitMs` if Redis is unreachable: the bus keeps trying). */
  async start(waitMs: number): Promise<void> {
    const subscribed = new Promise<void>((resolve) => {
      this.#firstReady = resolve;
      setTimeout(resolve, waitMs).unref();
    });
    this.#heartbeat = startHeartbeat(this.#sub, {
      intervalMs: Math.max(10, Math.min(HEARTBEAT_MAX_MS, this.#opts.disconnectedTtlMs / 5)),
      // The bus counts as cut since it last heard Redis: its L1 bound holds from then.
      onSilent: (lastHeard) => {
        if (this.#closed || !this.#connected) return;
        this.#opts.logger?.warn(
          { silentMs: Date.now() - lastHeard },
          'bus subscriber did not answer its heartbeat: treated as cut, reconnecting',
        );
        this.#onCut(lastHeard);
      },
    });
    // Connect errors are not fatal: the cache serves degraded and the client keeps retrying.
    await this.#sub.connect().catch(() => {});
    if (this.#sub.status !== 'ready' && !this.#connected) this.#onCut();
    await subscribed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    this.#heartbeat?.stop();
    this.#outbox.close();
    try {
      await this.#sub.quit();
    } catch {
      this.#sub.disconnect();
    }
  }

  /** Validates and publishes; resolves the stream id. The publisher applies its own event itself. */
  async publish(input: CacheEventInput): Promise<Result<string>> {
    const parsed = validate(input);
    return parsed.ok ? this.#send(parsed.value) : parsed;
  }

  /**
   * Announces a change already made (an invalidation, an update). When Redis cannot take the event
   * now it is kept, in order, and sent as soon as it can (on the publishing connection's `ready`,
   * and every 250 ms meanwhile: outbox.ts): a change the caller was told about is announced even if
   * the connection failed at that moment. Resolves once published; an event refused by a full
   * outbox (OUTBOX_MAX, outbox.ts) or still waiting at `close` resolves an error.
   */
  deliver(input: CacheEventInput): Promise<Result<string>> {
    const parsed = validate(input);
    if (!parsed.ok) return Promise.resolve(parsed);
    if (this.#closed) return Promise.resolve(err(new CacheError('E_CACHE_CLOSED')));
    return this.#outbox.push(parsed.value);
  }

  /**
   * The event ready to be published by the script that makes the change it announces (one round
   * trip: invalidate-publish-n.lua), or undefined when it must go through `deliver` instead: events
   * wait in the outbox (they go out first, in order), the bus is closed, or the event is invalid
   * (`deliver` says why).
   */
  inline(input: CacheEventInput): InlineAnnouncement | undefined {
    if (this.#closed || this.#outbox.size > 0) return undefined;
    const parsed = validate(input);
    if (!parsed.ok) return undefined;
    return new InlineAnnouncement(this.#opts, JSON.stringify(parsed.value), this.stats);
  }

  /**
   * Subscribes this pod's ack channel, once (the first fleet-acknowledged invalidation pays one
   * SUBSCRIBE; ioredis resubscribes after a reconnect). Resolves false when it could not: the
   * waiter then learns the acks from Redis's record at its deadline.
   */
  listenForAcks(): Promise<boolean> {
    const channel = this.#ackChannel;
    if (channel === undefined) return Promise.resolve(false);
    this.#ackListening ??= this.#sub.subscribe(channel).then(
      () => true,
      () => {
        this.#ackListening = undefined;
        return false;
      },
    );
    return this.#ackListening;
  }

  /** Registers a token before its event is published; `until` then waits for the pods. */
  expectAcks(token: string): AckWaiter {
    const acks = this.#opts.acks;
    const waiter = new AckWaiter(
      async () => {
        if (acks === undefined) return [];
        const raw: unknown = await this.#pub.smembers(acks.key(token)).catch(() => []);
        const parsed = podIds.safeParse(raw);
        return parsed.success ? parsed.data : [];
      },
      () => this.#waiters.delete(token),
    );
    this.#waiters.set(token, waiter);
    return waiter;
  }

  #onAck(raw: string): void {
    let message: { t: string; p: string };
    try {
      message = ackMessageSchema.parse(JSON.parse(raw));
    } catch {
      this.stats.invalid++;
      return;
    }
    this.#waiters.get(message.t)?.heard(message.p);
  }

  /**
   * Acknowledges an event carrying a token once it is applied here (`done`: what applying it still
   * does asynchronously, such as tombstones at this pod's version during a rollout).
   */
  async #acknowledge(token: string, source: string, id: string, done: unknown): Promise<void> {
    const acks = this.#opts.acks;
    if (acks === undefined || !acks.send) return;
    if (Date.now() - Number(id.slice(0, id.indexOf('-'))) > ACK_TTL_MS) return;
    try {
      await done;
      await this.#scripts.busAck(
        acks.key(token),
        this.#opts.podId,
        ACK_TTL_MS,
        acks.channel(source),
        JSON.stringify({ t: token, p: this.#opts.podId }),
      );
      this.stats.acks++;
    } catch (error) {
      this.#opts.logger?.debug(
        { err: error instanceof Error ? error.message : String(error) },
        'could not acknowledge a fleet-acknowledged invalidation',
      );
    }
  }

  /** Events waiting in the outbox (for status and tests). */
  get undelivered(): number {
    return this.#outbox.size;
  }

  async #send(event: CacheEvent): Promise<Result<string>> {
    try {
      const id = await this.#scripts.busPublish(
        this.#opts.stream,
        this.#opts.channel,
        this.#opts.maxLen,
        JSON.stringify(event),
      );
      this.stats.published++;
      return ok(id);
    } catch (cause) {
      return err(new CacheError('E_CACHE_L2_FAILED', 'could not publish the event', { cause }));
    }
  }

  /**
   * The newest `n` events of the stream, newest first (the fleet page's last invalidations); an
   * entry that fails the event schema is left out.
   */
  async recent(n: number): Promise<Result<RecentEvent[]>> {
    try {
      const entries = await this.#pub.xrevrange(this.#opts.stream, '+', '-', 'COUNT', n);
      const out: RecentEvent[] = [];
      for (const [id, fields] of entries) {
        const decoded = decodeEvent(entryEvent(fields));
        if (decoded.ok) out.push({ id, at: Number(id.slice(0, id.indexOf('-'))), event: decoded.event });
      }
      return ok(out);
    } catch (cause) {
      return err(new CacheError('E_CACHE_L2_FAILED', 'could not read the bus stream', { cause }));
    }
  }

  async #onReady(): Promise<void> {
    if (this.#closed) return;
    const cuts = this.#cuts;
    if (!this.#everReady) {
      // First connection: start from the newest event (history before this pod is moot: its L1 is
      // empty). Read before subscribing: an event published in between then shows as a gap. The
      // read goes through the publishing client, which may connect a moment after this one.
      await this.#pubReady(this.#opts.disconnectedTtlMs);
      const last = await this.#pub.xrevrange(this.#opts.stream, '+', '-', 'COUNT', 1).catch(() => []);
      const newest = last[0]?.[0];
      if (newest !== undefined && compareStreamIds(newest, this.#lastId) > 0) this.#lastId = newest;
      this.#everReady = true;
      await this.#subscribe();
    } else {
      await this.#subscribe();
      await this.#catchUp();
    }
    // The connection this 'ready' was for dropped while we caught up: still cut off (the flush
    // timer of this outage keeps running); the next 'ready' catches up again.
    if (this.#closed || cuts !== this.#cuts) return;
    this.#connected = true;
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#handlers.disconnected(false);
    this.#firstReady?.();
    this.#firstReady = undefined;
  }

  async #subscribe(): Promise<void> {
    // ioredis resubscribes after a reconnect; subscribing again to the same channel is harmless.
    await this.#sub.subscribe(this.#opts.channel).catch(() => {});
  }

  /** `since`: when events may have started to go unheard (now for a connection seen to drop). */
  #onCut(since = Date.now()): void {
    if (this.#closed) return;
    this.#cuts++;
    if (!this.#connected && this.#flushTimer !== undefined) return;
    this.#connected = false;
    this.#handlers.disconnected(true);
    // Entries filled before the cut could be invalidated while we cannot hear it: they get
    // disconnectedTtlMs from `since` to live, then L1 is flushed.
    clearTimeout(this.#flushTimer);
    this.#flushTimer = setTimeout(
      () => {
        if (this.#connected) return;
        this.stats.flushes++;
        this.#handlers.flush('disconnected');
      },
      Math.max(0, this.#opts.disconnectedTtlMs - (Date.now() - since)),
    );
    this.#flushTimer.unref();
  }

  #onMessage(raw: string): void {
    const message = decodeWire(raw);
    if (message === undefined) {
      this.stats.invalid++;
      return;
    }
    if (this.#catchingUp) {
      this.#queue.push(message);
      return;
    }
    if (compareStreamIds(message.id, this.#lastId) <= 0) {
      this.stats.duplicates++;
      void this.#checkAhead();
      return;
    }
    if (message.prev !== this.#lastId && this.#everReady) {
      // We missed at least one message: read the stream from where we are.
      this.stats.gaps++;
      this.#queue.push(message);
      void this.#catchUp();
      return;
    }
    this.#apply(message.id, message.event);
  }

  #apply(id: string, raw: unknown): void {
    this.#lastId = id;
    const decoded = decodeEvent(raw);
    if (!decoded.ok) {
      this.stats.invalid++;
      this.#opts.logger?.warn({ id, issues: decoded.issues }, 'dropped an invalid bus event');
      return;
    }
    const event = decoded.event;
    const own = event.source_pod === this.#opts.podId;
    if (!own) {
      this.stats.applied++;
      // The stream id's first part is Redis's clock at XADD: the event's age when applied here.
      this.#lagMs = Math.max(0, Date.now() - Number(id.slice(0, id.indexOf('-'))));
      this.#opts.lag?.observe(this.#lagMs / 1000);
    }
    const done = this.#handlers.apply(event, own);
    if (!own && event.event_type === 'invalidate' && event.ack !== undefined)
      void this.#acknowledge(event.ack, event.source_pod, id, done);
  }

  /**
   * A pub/sub message is not proof that its id is in the stream: anyone who may PUBLISH on the
   * channel can send `{"id":"<far future>","prev":<our last id>,…}`, and every real event after it
   * would then look like a duplicate and be dropped. Real duplicates are rare (a catch-up's
   * overlap), so on each one the bus checks that its last id was ever generated by the stream; if
   * not, it was forged: what was dropped meanwhile is unknown, so L1 is flushed and the bus goes on
   * from the stream's real head.
   */
  async #checkAhead(): Promise<void> {
    if (this.#checkingAhead) {
      // A duplicate during a check: check again after it (the stream may have moved on since).
      this.#checkAgain = true;
      return;
    }
    this.#checkingAhead = true;
    this.#checkAgain = false;
    try {
      const info = (await this.#pub.call('XINFO', 'STREAM', this.#opts.stream)) as unknown[];
      const lastGenerated = fieldOf(info, 'last-generated-id') ?? '0-0';
      const behind = compareStreamIds(this.#lastId, lastGenerated);
      // Events after ours exist: one dropped as a duplicate (after a forged id was corrected) may be
      // among them, so read them from the stream rather than wait for the next message.
      if (behind < 0) void this.#catchUp();
      if (behind <= 0) return;
      this.#opts.logger?.warn(
        { lastId: this.#lastId, lastGenerated },
        'bus: the last id applied was never in the stream (a forged message); flushing L1',
      );
      this.stats.invalid++;
      this.stats.flushes++;
      this.#lastId = lastGenerated;
      this.#handlers.flush('trimmed');
    } catch {
      // No stream to compare with (cleared) or Redis failing: the reconnect path handles those.
    } finally {
      this.#checkingAhead = false;
      if (this.#checkAgain && !this.#closed) void this.#checkAhead();
    }
  }

  /**
   * Replays the stream after #lastId (serialised); flushes L1 when events were trimmed, or when the
   * stream cannot be read within disconnectedTtlMs.
   */
  #catchUp(): Promise<void> {
    if (this.#catchingUp) return this.#catchingUp;
    this.#catchingUp = this.#replayWhenReady()
      .catch((error: unknown) => {
        if (this.#closed) return;
        // Cannot read the stream: we cannot know what we missed, so forget everything.
        this.#opts.logger?.warn(
          { err: error instanceof Error ? error.message : String(error) },
          'bus replay failed; flushing L1',
        );
        this.stats.flushes++;
        this.#handlers.flush('trimmed');
      })
      .finally(() => {
        this.#catchingUp = undefined;
        const queued = this.#queue;
        this.#queue = [];
        let duplicate = false;
        for (const m of queued) {
          if (compareStreamIds(m.id, this.#lastId) > 0) this.#apply(m.id, m.event);
          else {
            this.stats.duplicates++;
            duplicate = true;
          }
        }
        // As in #onMessage: a duplicate may mean the last id was forged (a message queued while a
        // catch-up ran is otherwise dropped with nobody checking, and L1 keeps what it invalidated).
        if (duplicate) void this.#checkAhead();
      });
    return this.#catchingUp;
  }

  /**
   * The replay reads through the publishing client (the cache's), which after a failover or a
   * dropped connection is often ready a moment after the subscriber that asked for the replay. A
   * replay sent before that failed ("Stream isn't writeable") and flushed every pod's L1 for nothing
   * (issue 17). It now waits for that client's `ready`, and a connection that drops during the
   * replay is waited for again: the replay resumes from #lastId. It gives up (and L1 is flushed)
   * after disconnectedTtlMs, the longest a pod may serve what it could not hear about.
   */
  async #replayWhenReady(): Promise<void> {
    const deadline = performance.now() + this.#opts.disconnectedTtlMs;
    for (;;) {
      const ready = await this.#pubReady(deadline - performance.now());
      if (this.#closed) return;
      if (!ready) {
        throw new Error(
          `the connection the replay reads through was not ready in ${this.#opts.disconnectedTtlMs} ms`,
        );
      }
      try {
        await this.#replay();
        return;
      } catch (error) {
        if (this.#pub.status === 'ready' || performance.now() >= deadline) throw error;
      }
    }
  }

  /** Resolves true once the publishing client is ready (at once if it is), false after `ms`. */
  #pubReady(ms: number): Promise<boolean> {
    if (this.#pub.status === 'ready') return Promise.resolve(true);
    if (ms <= 0 || this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ready: boolean) => {
        clearTimeout(timer);
        this.#pub.off('ready', onReady);
        resolve(ready);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      timer.unref();
      this.#pub.once('ready', onReady);
    });
  }

  /**
   * Whether the stream still holds everything after #lastId. XDEL moves max-deleted-entry-id, but
   * trimming (XTRIM, XADD MAXLEN) does not: it removes the oldest entries, so our last entry still
   * being there proves nothing after it was trimmed.
   */
  async #continuousAfter(info: unknown[]): Promise<boolean> {
    const maxDeleted = fieldOf(info, 'max-deleted-entry-id') ?? '0-0';
    if (compareStreamIds(maxDeleted, this.#lastId) > 0) return false;
    if (this.#lastId === '0-0')
      return Number(fieldValue(info, 'entries-added')) === Number(fieldValue(info, 'length'));
    const own = await this.#pub.xrange(this.#opts.stream, this.#lastId, this.#lastId);
    return own.length > 0;
  }

  async #replay(): Promise<void> {
    let info: unknown[] | null;
    try {
      info = (await this.#pub.call('XINFO', 'STREAM', this.#opts.stream)) as unknown[];
    } catch (error) {
      // Any other failure goes to #catchUp's catch: we cannot know what we missed, so flush.
      if (!(error instanceof Error && /no such key/i.test(error.message))) throw error;
      info = null;
    }
    if (info === null) {
      // The stream is gone (evicted, store.clear()): whatever it held after our last id is lost.
      if (this.#lastId !== '0-0') {
        this.stats.flushes++;
        this.#handlers.flush('trimmed');
        this.#lastId = '0-0';
      }
      return;
    }
    const lastGenerated = fieldOf(info, 'last-generated-id') ?? '0-0';
    if (compareStreamIds(lastGenerated, this.#lastId) > 0 && !(await this.#continuousAfter(info))) {
      // Entries after our last id were trimmed or deleted: what they said is lost to us.
      this.stats.flushes++;
      this.#handlers.flush('trimmed');
      this.#lastId = lastGenerated;
      return;
    }
    for (;;) {
      const entries = await this.#pub.xrange(
        this.#opts.stream,
        `(${this.#lastId}`,
        '+',
        'COUNT',
        REPLAY_BATCH,
      );
      for (const [id, fields] of entries) {
        this.stats.replayed++;
        this.#apply(id, entryEvent(fields));
      }
      if (entries.length < REPLAY_BATCH) return;
    }
  }
}

/** An event handed to the script that makes its change; `id` once that script published it. */
export class InlineAnnouncement implements InlineEvent {
  readonly stream: string;
  readonly channel: string;
  readonly maxLen: number;
  readonly json: string;
  readonly #stats: BusStats;
  /** The stream id, once published (undefined: not published by the script; announce it yourself). */
  id: string | undefined;

  constructor(opts: EventBusOptions, json: string, stats: BusStats) {
    this.stream = opts.stream;
    this.channel = opts.channel;
    this.maxLen = opts.maxLen;
    this.json = json;
    this.#stats = stats;
  }

  published(id: string): void {
    this.id = id;
    this.#stats.published++;
  }
}

/** The event JSON of a stream entry's fields (`e`), parsed; undefined when absent or not JSON. */
function entryEvent(fields: readonly string[]): unknown {
  const at = fields.indexOf('e');
  const json = at >= 0 ? fields[at + 1] : undefined;
  try {
    return json === undefined ? undefined : JSON.parse(json);
  } catch {
    return undefined;
  }
}
