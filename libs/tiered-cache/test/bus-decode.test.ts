/**
 * The bus's receiving path checks the common events by hand (src/bus/decode.ts: zod cold cost ~50 µs
 * an event on every pod). zod stays the contract: these properties hold the hand checks to it on
 * generated input, valid and not.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commonEvent, decodeEvent, decodeWire } from '../src/bus/decode.js';
import { cacheEventSchema, compareStreamIds, wireMessageSchema } from '../src/bus/events.js';

const RUNS = 3000;

/** Strings at and around each bound the schema sets (1–256 ids, 1–128 pod ids, namespace regex). */
const sized = (max: number) =>
  fc.oneof(
    fc.string({ minLength: 1, maxLength: 12 }),
    fc.string({ minLength: max - 1, maxLength: max + 1 }),
    fc.constant(''),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }),
  );
const namespace = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9_-]{0,63}$/),
  fc.constantFrom('', 'A', '1a', 'a'.repeat(65), 'a b', 'items\n'),
);
const int = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.integer(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 64, 1.5, -0, 1e21),
  fc.double(),
);
const ids = (max: number) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.array(sized(256), { minLength: 1, maxLength: 4 }) },
    fc.constant([]),
    fc.array(fc.oneof(sized(256), fc.integer(), fc.constant(null)), { maxLength: 3 }),
    fc.constant(Array.from({ length: max + 1 }, (_, i) => `k${i}`)),
    fc.constant(Array.from({ length: max }, (_, i) => `k${i}`)),
  );
const field = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });

/** Events close to valid: every field of every event type, each sometimes off by a little. */
const nearEvent = fc
  .record({
    event_type: fc.constantFrom('invalidate', 'invalidate', 'update', 'prewarm', 'config', 'other'),
    namespace,
    timestamp: int,
    source_pod: sized(128),
    priority: field(fc.constantFrom('high', 'normal', 'low', 'urgent')),
    keys: field(ids(10_000)),
    key_pattern: field(sized(256)),
    tags: field(ids(1000)),
    generation: field(int),
    version: field(int),
    ack: field(fc.oneof(fc.stringMatching(/^[0-9a-f]{24}$/), fc.constantFrom('abc', 'A'.repeat(24)))),
    settings: field(fc.dictionary(fc.string(), fc.oneof(fc.integer(), fc.string(), fc.boolean()))),
    extra: field(fc.jsonValue()),
  })
  .map((e) => Object.fromEntries(Object.entries(e).filter(([, v]) => v !== undefined)));

/** Valid events of the common shapes, with the fields zod drops added now and then. */
const goodIds = (max: number) =>
  fc.array(fc.string({ minLength: 1, maxLength: 256 }), { minLength: 1, maxLength: Math.min(max, 5) });
const validEvent = fc
  .record({
    event_type: fc.constantFrom('invalidate', 'update', 'prewarm'),
    target: fc.constantFrom('keys', 'key_pattern', 'tags'),
    namespace: fc.stringMatching(/^[a-z][a-z0-9_-]{0,63}$/),
    timestamp: fc.nat(),
    source_pod: fc.string({ minLength: 1, maxLength: 128 }),
    priority: field(fc.constantFrom('high', 'normal', 'low')),
    keys: goodIds(10_000),
    key_pattern: fc.string({ minLength: 1, maxLength: 256 }),
    tags: goodIds(1000),
    generation: field(fc.nat()),
    version: field(fc.integer({ min: 1 })),
    ack: field(fc.stringMatching(/^[0-9a-f]{24}$/)),
    extra: field(fc.jsonValue()),
  })
  .map(({ target, ...e }) => {
    const event: Record<string, unknown> = { ...e };
    const dropped = ['keys', 'key_pattern', 'tags'].filter(
      (f) => f !== (e.event_type === 'invalidate' ? target : 'keys'),
    );
    for (const f of dropped) delete event[f];
    for (const [k, v] of Object.entries(event)) if (v === undefined) delete event[k];
    return event;
  });

const anyInput = fc.oneof(validEvent, nearEvent, fc.jsonValue(), fc.anything());

describe('bus decoding', () => {
  it('decodes every event exactly as zod does, valid or not', () => {
    fc.assert(
      fc.property(anyInput, (raw) => {
        const zod = cacheEventSchema.safeParse(raw);
        const ours = decodeEvent(raw);
        expect(ours.ok).toBe(zod.success);
        if (ours.ok) expect(ours.event).toStrictEqual(zod.data);
      }),
      { numRuns: RUNS },
    );
  });

  it('the hand checks accept only what zod accepts, with zod’s output, and take every valid keys, tags or pattern event', () => {
    let taken = 0;
    fc.assert(
      fc.property(fc.oneof(validEvent, nearEvent), (raw) => {
        const zod = cacheEventSchema.safeParse(raw);
        const fast = commonEvent(raw);
        if (fast !== undefined) {
          taken++;
          expect(zod.success).toBe(true);
          expect(fast).toStrictEqual(zod.data);
        } else if (zod.success && zod.data.event_type !== 'config') {
          // Only config events are left to zod among valid ones.
          expect.fail(
            `a valid ${zod.data.event_type} event went to zod: ${JSON.stringify(raw).slice(0, 300)}`,
          );
        }
      }),
      { numRuns: RUNS },
    );
    // The generator is not so skewed that the hand checks never run.
    expect(taken).toBeGreaterThan(RUNS / 4);
  });

  it('decodes the wire envelope as zod does, and never throws on a message', () => {
    const envelope = fc.record({
      id: fc.oneof(fc.stringMatching(/^\d{1,20}-\d{1,20}$/), fc.string()),
      prev: fc.oneof(fc.stringMatching(/^\d{1,20}-\d{1,20}$/), fc.string()),
      event: fc.jsonValue(),
    });
    const raw = fc.oneof(
      envelope.map((e) => JSON.stringify(e)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string(),
    );
    fc.assert(
      fc.property(raw, (text) => {
        let value: unknown;
        let json = true;
        try {
          value = JSON.parse(text);
        } catch {
          json = false;
        }
        const zod = json ? wireMessageSchema.safeParse(value) : undefined;
        const ours = decodeWire(text);
        expect(ours !== undefined).toBe(zod?.success === true);
        if (ours !== undefined && zod?.success === true) expect(ours).toStrictEqual(zod.data);
      }),
      { numRuns: RUNS },
    );
  });

  it('compares stream ids as (ms, seq) pairs of integers', () => {
    const part = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 20n }));
    const idOf = (ms: bigint, seq: bigint, zeros: number) => `${'0'.repeat(zeros)}${ms}-${seq}`;
    fc.assert(
      fc.property(part, part, part, part, fc.nat(2), fc.nat(2), (am, as, bm, bs, za, zb) => {
        const expected = am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
        expect(compareStreamIds(idOf(am, as, za), idOf(bm, bs, zb))).toBe(expected);
      }),
      { numRuns: RUNS },
    );
    expect(compareStreamIds('0-0', '0-0')).toBe(0);
    expect(compareStreamIds('10-0', '9-99')).toBe(1);
  });
});
