import { z } from 'zod';

/**
 * Messages between pods (REQUIREMENTS D2). Every event is validated when it is published and
 * again when it is received: a malformed message is counted and dropped, never applied.
 */
export const EVENT_TYPES = ['invalidate', 'update', 'prewarm', 'config'] as const;
export type CacheEventType = (typeof EVENT_TYPES)[number];

const namespaceName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/);
const id = z.string().min(1).max(256);
/**
 * The publisher's version of the namespace (keys and update events). During a rollout pods at
 * another version tombstone the ids at their own version too (docs/design-lifecycle.md, Rollout).
 */
const version = z.number().int().positive().optional();

/** The token of a fleet-acknowledged invalidation: 96 random bits, hex. */
export const ackToken = z.string().regex(/^[0-9a-f]{24}$/);

const base = {
  namespace: namespaceName,
  /** Milliseconds since the epoch, by the publisher's clock (informational: ordering is the stream's). */
  timestamp: z.number().int().nonnegative(),
  source_pod: z.string().min(1).max(128),
  priority: z.enum(['high', 'normal', 'low']).default('normal'),
};

export const cacheEventSchema = z.discriminatedUnion('event_type', [
  z
    .object({
      event_type: z.literal('invalidate'),
      ...base,
      keys: z.array(id).min(1).max(10_000).optional(),
      /** A Redis glob over ids of this namespace; `*` is the whole namespace. */
      key_pattern: z.string().min(1).max(256).optional(),
      tags: z.array(z.string().min(1).max(256)).min(1).max(1000).optional(),
      /** Whole-namespace invalidations carry the namespace's new generation. */
      generation: z.number().int().nonnegative().optional(),
      version,
      /**
       * Set by a fleet-acknowledged invalidation (`{ wait: 'fleet' }`, docs/design-fleet-ack.md):
       * every pod that applies the event acknowledges this token to the publisher.
       */
      ack: ackToken.optional(),
    })
    .refine((e) => [e.keys, e.key_pattern, e.tags].filter((x) => x !== undefined).length === 1, {
      message: 'an invalidate event names exactly one of keys, key_pattern, tags',
    }),
  z.object({ event_type: z.literal('update'), ...base, keys: z.array(id).min(1).max(10_000), version }),
  z.object({ event_type: z.literal('prewarm'), ...base, keys: z.array(id).min(1).max(10_000) }),
  z.object({
    event_type: z.literal('config'),
    ...base,
    /** Runtime settings a tuner publishes; pods apply what they know and ignore the rest. */
    settings: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])),
  }),
]);
export type CacheEvent = z.output<typeof cacheEventSchema>;
export type CacheEventInput = z.input<typeof cacheEventSchema>;

/** A Redis stream id (`<ms>-<seq>`); anything else on the channel was not sent by the publish script. */
const streamId = z.string().regex(/^\d{1,20}-\d{1,20}$/);

/** What travels over pub/sub: the stream id, the id before it (gap detection), the event. */
export const wireMessageSchema = z.object({ id: streamId, prev: streamId, event: z.unknown() });

/** What a pod publishes to the waiter's ack channel after applying an event carrying `ack`. */
export const ackMessageSchema = z.object({ t: ackToken, p: z.string().min(1).max(128) });

/**
 * Stream ids compare as (ms, seq) pairs; '0-0' is "before everything". Compared as digit strings
 * (length, then text, leading zeros aside): run on every event a pod receives, where the BigInt
 * version cost ~5 µs cold.
 */
export function compareStreamIds(a: string, b: string): number {
  const ad = a.indexOf('-');
  const bd = b.indexOf('-');
  const ms = compareDigits(a, 0, ad < 0 ? a.length : ad, b, 0, bd < 0 ? b.length : bd);
  if (ms !== 0) return ms;
  return compareDigits(a, ad < 0 ? a.length : ad + 1, a.length, b, bd < 0 ? b.length : bd + 1, b.length);
}

/** Compares the unsigned decimal numbers a[as, ae) and b[bs, be) (empty: 0). */
function compareDigits(a: string, as: number, ae: number, b: string, bs: number, be: number): number {
  while (as < ae && a.charCodeAt(as) === 48) as++;
  while (bs < be && b.charCodeAt(bs) === 48) bs++;
  if (ae - as !== be - bs) return ae - as < be - bs ? -1 : 1;
  for (; as < ae; as++, bs++) {
    const d = a.charCodeAt(as) - b.charCodeAt(bs);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** An event as a caller describes it; the cache adds the timestamp and its pod id. */
export type EventBody = CacheEventInput extends infer E
  ? E extends unknown
    ? Omit<E, 'timestamp' | 'source_pod'>
    : never
  : never;
