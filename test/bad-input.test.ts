import { fileURLToPath } from 'node:url';
import { PRODUCT_IDS } from '@cachefleet/catalogue';
import { run } from '@cachefleet/cli';
import { isJobError, JOB_NAMES, JOBS, JobClient, loadQueueConfig, payloadSchemaWith } from '@cachefleet/jobs';
import { cacheKeys } from '@cachefleet/redis';
import {
  type Cache,
  createCache,
  defineNamespace,
  isCacheError,
  type Namespace,
  type Result,
} from '@cachefleet/tiered-cache';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Pod, startPod } from './fixtures/pods.js';
import { countKeys, type RedisProcess, runCli, startRedis, waitUntil } from './helpers/index.js';

const SEED = Number(process.env.BAD_INPUT_SEED ?? 7_007);
const TAG = `bad${Date.now().toString(36)}`;
const QUEUE_PREFIX = `${TAG}q`;
const CACHE_PREFIX = `${TAG}c:`;
const SOURCE = `src:${CACHE_PREFIX}`;
const COUNTERS = `loads:${CACHE_PREFIX}`;
const KEYS = cacheKeys(CACHE_PREFIX);
const _ROOT = fileURLToPath(new URL('..', import.meta.url));

let redis: RedisProcess | undefined;
let raw: Redis | undefined;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

function db(): Redis {
  if (!raw) throw new Error('no redis');
  return raw;
}

function url(): string {
  if (!redis) throw new Error('no redis');
  return redis.url;
}

/** Every key in the server (SCAN), to compare before and after a batch of refused input. */
async function allKeys(): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await db().scan(cursor, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out.sort();
}

// ------------------------------------------------------------------ shared generators

/** Text that is no product id (positive integer without leading zeros, ≤ 18 digits). */
const notProductId = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '01',
    '-1',
    '1.5',
    '1e3',
    ' 1',
    '1 ',
    'a',
    '*',
    '1*',
    '[1]',
    '{1}',
    '\u0000',
    '١٢',
  ),
  fc.constant('9'.repeat(19)),
  fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/^[1-9][0-9]{0,17}$/.test(s)),
);
const productId = fc.integer({ min: 1, max: 10_000 }).map(String);
/** Not a namespace name: `[a-z][a-z0-9_-]{0,63}`, or one nobody defines. */
const badNamespace = fc.oneof(
  fc.constantFrom('', 'Product', 'products', 'item', '_x', '1abc', 'a'.repeat(65), 'prod uct', '*', '__bus'),
  fc.string({ maxLength: 20 }).filter((s) => s !== 'product'),
);
/** A glob the schema refuses: white space or braces, empty, or too long. */
const badPattern = fc.oneof(
  fc.constantFrom('', ' ', '1 *', '{a}', '1}', '\t', 'a\nb', 'x'.repeat(257)),
  fc
    .tuple(
      fc.string({ maxLength: 8 }),
      fc.constantFrom(' ', '{', '}', '\n', '\u00a0'),
      fc.string({ maxLength: 8 }),
    )
    .map(([a, b, c]) => a + b + c),
);
const notAString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 2 }),
  fc.object({ maxDepth: 1 }),
);

// ------------------------------------------------------------------ job payloads

/** [job name, payload], each bad by construction: one rule of the catalogue broken. */
const badJob: fc.Arbitrary<readonly [string, unknown]> = fc.oneof(
  // keys with at least one id the product schema refuses, among valid ones (issue 9 bug 3)
  fc
    .tuple(
      fc.array(productId, { maxLength: 3 }),
      notProductId,
      fc.array(productId, { maxLength: 3 }),
      fc.boolean(),
    )
    .map(([a, bad, b, warm]) =>
      warm
        ? (['warm', { type: 'keys', namespace: 'product', keys: [...a, bad, ...b] }] as const)
        : (['invalidate', { scope: 'keys', namespace: 'product', keys: [...a, bad, ...b] }] as const),
    ),
  // a namespace nobody defines, or no namespace name at all
  badNamespace.map((ns) => ['invalidate', { scope: 'pattern', namespace: ns, pattern: '1*' }] as const),
  badNamespace.map((ns) => ['warm', { type: 'all', namespaces: ['product', ns] }] as const),
  // patterns that could leave the namespace
  badPattern.map((p) => ['invalidate', { scope: 'pattern', namespace: 'product', pattern: p }] as const),
  // an unknown field (payloads are strict), a missing one, a wrong type
  fc
    .tuple(
      fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !['scope', 'namespace', 'keys'].includes(k)),
      fc.jsonValue(),
    )
    .map(([k, v]) => ['invalidate', { scope: 'keys', namespace: 'product', keys: ['1'], [k]: v }] as const),
  fc.constantFrom(
    ['invalidate', { scope: 'keys', namespace: 'product' }],
    ['invalidate', { scope: 'keys', namespace: 'product', keys: [] }],
    ['invalidate', { scope: 'tags', namespace: 'product', tags: [] }],
    ['invalidate', { namespace: 'product', keys: ['1'] }],
    ['invalidate', { scope: 'everything', namespace: 'product' }],
    ['warm', { type: 'keys', namespace: 'product' }],
    ['warm', { type: 'sometimes' }],
    ['warm', {}],
  ),
  notAString.map((v) => ['invalidate', { scope: 'pattern', namespace: 'product', pattern: v }] as const),
  notAString.map((v) => ['warm', { type: 'keys', namespace: v, keys: ['1'] }] as const),
  // hot warm's top out of range
  fc
    .oneof(
      fc.integer({ max: 0 }),
      fc.integer({ min: 100_001 }),
      fc.double({ min: 1.01, max: 99.99, noInteger: true }),
    )
    .map((top) => ['warm', { type: 'hot', top }] as const),
  // not an object at all
  fc
    .oneof(
      fc.jsonValue().filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)),
      fc.constant(undefined),
    )
    .chain((v) => fc.constantFrom(['warm', v] as const, ['invalidate', v] as const)),
  // names: unknown, or added by other jobs only
  fc
    .string({ maxLength: 20 })
    .filter((n) => !(JOB_NAMES as readonly string[]).includes(n))
    .map((n) => [n, {}] as const),
  fc.constant([
    'invalidate-slice',
    { namespace: 'product', pattern: '1*', match: 'x*', master: 'h:1' },
  ] as const),
);

describe('invariant 7: bad input is refused and changes nothing', () => {
  it('4,000 generated job payloads: each refused by JobClient with a coded error, nothing enqueued', async () => {
    const internal = JOB_NAMES.filter((n) => JOBS[n].internal);
    expect(internal.length).toBeGreaterThan(0);
    const client = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: url(), QUEUE_PREFIX }), {
      namespaces: [PRODUCT_IDS],
    });
    // The queues' own `meta` keys, written once a queue is first used, are no payload's doing.
    for (const q of ['warm', 'invalidate'] as const) await client.queue(q).getJobCounts();
    const before = await allKeys();
    const codes = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(badJob, async ([name, payload]) => {
          let refused: unknown;
          try {
            // The payload is `unknown` here on purpose: the type system is not the boundary.
            await client.enqueue(name as 'warm', payload as never);
          } catch (error) {
            refused = error;
          }
          expect(isJobError(refused), `${name} ${JSON.stringify(payload)} was accepted`).toBe(true);
          if (!isJobError(refused)) return;
          expect(['E_JOB_INVALID_PAYLOAD', 'E_JOB_UNKNOWN', 'E_JOB_INTERNAL']).toContain(refused.code);
          expect(refused.message.length).toBeGreaterThan(0);
          codes.set(refused.code, (codes.get(refused.code) ?? 0) + 1);
        }),
        { seed: SEED, numRuns: 4_000, endOnFailure: true },
      );
      // The same payloads' schemas as the worker checks them (catalogue + namespace rules).
      expect(
        payloadSchemaWith('invalidate', [PRODUCT_IDS]).safeParse({
          scope: 'keys',
          namespace: 'product',
          keys: ['1'],
        }).success,
      ).toBe(true);
      for (const q of ['warm', 'invalidate'] as const) {
        const counts = await client.queue(q).getJobCounts();
        expect(
          Object.values(counts).reduce((a, b) => a + b, 0),
          q,
        ).toBe(0);
      }
    } finally {
      await client.close();
    }
    expect(await allKeys()).toEqual(before);
    console.log(`job payloads refused: ${JSON.stringify(Object.fromEntries(codes))}`);
  }, 120_000);

  // ---------------------------------------------------------------- CLI arguments

  /** argv lists, each wrong by construction. */
  const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);
  const flagValue = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', '-', '--', '-1', '0'));
  const badArgv: fc.Arbitrary<readonly string[]> = fc.oneof(
    word.filter((w) => !['warm', 'invalidate', 'jobs', 'status', 'top', 'help'].includes(w)).map((w) => [w]),
    fc
      .tuple(fc.constantFrom('warm all', 'invalidate -n product --all', 'jobs list', 'status', 'top'), word)
      .map(([cmd, f]) => [...cmd.split(' '), `--zz${f}`]),
    fc.constantFrom(
      ['warm'],
      ['warm', 'keys', '1'],
      ['warm', 'keys', '-n', 'product'],
      ['warm', 'all', 'extra'],
      ['warm', 'hot', '--top'],
      ['invalidate'],
      ['invalidate', '-n', 'product'],
      ['invalidate', '-n', 'product', '--all', '-k', '1'],
      ['invalidate', '-n', 'product', '--pattern'],
      ['jobs'],
      ['jobs', 'list', '--limit', '0'],
      ['jobs', 'list', 'extra'],
      ['top', '--limit', '10001'],
    ),
    word.filter((w) => !['critical', 'hot', 'all', 'keys'].includes(w)).map((k) => ['warm', k]),
    fc
      .tuple(fc.constantFrom('critical', 'all', 'keys'), flagValue)
      .map(([k, n]) => ['warm', k, '-n', 'product', '--top', n || '5']),
    flagValue
      .filter((v) => !/^\d{1,9}$/.test(v) || Number(v) < 1 || Number(v) > 100_000)
      .map((n) => ['warm', 'hot', '--top', n]),
    fc
      .array(
        notProductId.filter((s) => !s.startsWith('-')),
        { minLength: 1, maxLength: 3 },
      )
      .map((ids) => ['warm', 'keys', '-n', 'product', ...ids]),
    badNamespace.filter((s) => !s.startsWith('-')).map((ns) => ['invalidate', '-n', ns, '--all']),
    badPattern.filter((s) => !s.startsWith('-')).map((p) => ['invalidate', '-n', 'product', '-p', p]),
    fc
      .array(
        notProductId.filter((s) => !s.includes(',') && s.trim() === s && s !== ''),
        { minLength: 1, maxLength: 3 },
      )
      .map((ids) => ['invalidate', '-n', 'product', '-k', ids.join(',')]),
    flagValue.filter((v) => !['warm', 'invalidate'].includes(v)).map((q) => ['jobs', 'list', '--queue', q]),
    flagValue
      .filter((v) => !['active', 'waiting', 'waiting-children', 'delayed', 'failed', 'completed'].includes(v))
      .map((s) => ['jobs', 'list', '--state', s]),
    // `top -n` splits on commas and trims: at least one part must be no namespace name.
    badNamespace
      .filter(
        (s) =>
          !s.startsWith('-') && s.split(',').some((part) => !/^[a-z][a-z0-9_-]{0,63}$/.test(part.trim())),
      )
      .map((ns) => ['top', '-n', ns]),
  );

  const env = () => ({
    QUEUE_REDIS_URL: url(),
    QUEUE_PREFIX,
    CACHE_REDIS_URL: url(),
    CACHE_KEY_PREFIX: CACHE_PREFIX,
  });
  /** The one error line: `cachefleet[ <command>]: E_…`. */
  const ERROR_LINE = /^cachefleet(?: [a-z]+)?: (E_[A-Z_]+)\b.+\n$/;

  it('1,500 generated CLI argument lists (in process) and 6 through the real program: exit 2, one coded line, nothing enqueued', async () => {
    const before = await allKeys();
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(badArgv, async (argv) => {
        let stdout = '';
        let stderr = '';
        const code = await run(argv, {
          env: env(),
          stdout: { write: (s: string) => (stdout += s) },
          stderr: { write: (s: string) => (stderr += s) },
          now: () => Date.now(),
        });
        const said = `${JSON.stringify(argv)} → ${code} ${JSON.stringify(stderr)} ${JSON.stringify(stdout)}`;
        expect(code, said).toBe(2);
        expect(stdout, said).toBe('');
        const m = ERROR_LINE.exec(stderr);
        expect(m, said).not.toBeNull();
        const c = m?.[1] ?? '?';
        codes.set(c, (codes.get(c) ?? 0) + 1);
      }),
      { seed: SEED, numRuns: 1_500, endOnFailure: true },
    );
    // The real program: the same refusals through process.argv, its exit code and its stderr.
    const samples = fc.sample(badArgv, { seed: SEED, numRuns: 6 });
    const runs = await Promise.all(samples.map((argv) => cliProcess(argv, env())));
    runs.forEach((r, i) => {
      const said = `${JSON.stringify(samples[i])} → ${r.code} ${JSON.stringify(r.stderr)}`;
      expect(r.code, said).toBe(2);
      expect(r.stdout, said).toBe('');
      expect(r.stderr, said).toMatch(ERROR_LINE);
    });
    expect(await allKeys()).toEqual(before);
    console.log(`CLI refusals: ${JSON.stringify(Object.fromEntries(codes))}`);
  }, 180_000);

  // ---------------------------------------------------------------- cache ids

  it('2,000 generated cache ids, patterns and values: refused with E_CACHE_INVALID_*, loader never called, no key written', async () => {
    let loads = 0;
    const Item = z.object({ id: z.string(), n: z.number() });
    const ns = defineNamespace<z.infer<typeof Item>>({
      name: 'item',
      version: 1,
      ttl: { l1: 60, l2: 600 },
      schema: Item,
      load: async (id) => {
        loads++;
        return { id, n: 1 };
      },
    });
    const cache = createCache({
      impl: 'tiered',
      redis: { mode: 'single', url: url() },
      prefix: CACHE_PREFIX,
      hotKeys: { enabled: false },
    });
    await cache.start();
    try {
      // A valid read first, so the refused ones below meet a warm cache, not an empty one.
      expect((await cache.get(ns, 'ok-1')).ok).toBe(true);
      loads = 0;
      const before = await allKeys();
      const badId = fc.oneof(
        fc.constantFrom(
          '',
          ' ',
          '*',
          '?',
          '[',
          ']',
          '\\',
          '{',
          '}',
          'a b',
          'a*',
          'x'.repeat(257),
          'a\tb',
          'a\nb',
        ),
        fc
          .tuple(
            fc.string({ maxLength: 10 }),
            fc.constantFrom(' ', '*', '?', '[', ']', '\\', '{', '}', '\n', '\t'),
            fc.string({ maxLength: 10 }),
          )
          .map(([a, b, c]) => a + b + c),
        notAString,
      );
      const badValue = fc.oneof(
        fc.constant(undefined),
        notAString,
        fc.record({ id: fc.string(), n: fc.string() }),
        fc.record({ id: fc.integer(), n: fc.integer() }),
      );
      const call = fc.oneof(
        badId.map((id) => ['get', () => cache.get(ns, id as string)] as const),
        fc
          .tuple(fc.array(fc.constantFrom('ok-1', 'ok-2')), badId)
          .map(([ok, id]) => ['getMany', () => cache.getMany(ns, [...ok, id as string])] as const),
        badId.map((id) => ['set', () => cache.set(ns, id as string, { id: 'x', n: 1 })] as const),
        badValue.map((v) => ['set value', () => cache.set(ns, 'ok-3', v as never)] as const),
        badId.map((id) => ['delete', () => cache.delete(ns, 'ok-2', id as string)] as const),
        fc
          .oneof(badPattern, fc.constantFrom('', 'a b', '{x}', 'x'.repeat(257)))
          .map((p) => ['invalidatePattern', () => cache.invalidatePattern(ns, p)] as const),
      );
      const published = cache.bus?.stats.published ?? 0;
      await fc.assert(
        fc.asyncProperty(call, async ([what, f]) => {
          const r: Result<unknown> = await f();
          expect(r.ok, `${what} was accepted`).toBe(false);
          if (r.ok) return;
          expect(isCacheError(r.error)).toBe(true);
          // delete's last argument, when it is a plain object, is its options ({ wait: 'fleet' }):
          // a junk object there is refused as options, not as an id.
          const refusedAs = ['E_CACHE_INVALID_ID', 'E_CACHE_INVALID_VALUE'];
          if (what === 'delete') refusedAs.push('E_CACHE_INVALID_OPTION');
          expect(refusedAs, `${what}: ${r.error.message}`).toContain(
            isCacheError(r.error) ? r.error.code : '',
          );
        }),
        { seed: SEED, numRuns: 2_000, endOnFailure: true },
      );
      expect(loads).toBe(0);
      expect(cache.bus?.stats.published ?? 0).toBe(published); // nothing announced
      expect(await allKeys()).toEqual(before);
      expect((await cache.get(ns, 'ok-1')).ok).toBe(true); // and the cache still serves
    } finally {
      await cache.close();
    }
  }, 120_000);

  // ---------------------------------------------------------------- bus messages

  it('2,000 malformed bus messages on the channel and the stream: 3 pods survive, count them invalid, and stay coherent', async () => {
    const Value = z.object({ id: z.string(), n: z.number(), by: z.string(), ver: z.number() });
    type Value = z.infer<typeof Value>;
    const local = async (name: string): Promise<{ cache: Cache; ns: Namespace<Value> }> => {
      const ns = defineNamespace<Value>({
        name: 'item',
        version: 1,
        ttl: { l1: 600, l2: 600 },
        schema: Value,
        load: async (id) => ({ id, n: 0, by: name, ver: Number((await db().get(SOURCE + id)) ?? 0) }),
      });
      const cache = createCache({
        impl: 'tiered',
        redis: { mode: 'single', url: url() },
        prefix: CACHE_PREFIX,
        hotKeys: { enabled: false },
      });
      await cache.start();
      cache.register(ns);
      return { cache, ns };
    };
    const a = await local('a');
    const b = await local('b');
    let pod: Pod | undefined;
    try {
      pod = await startPod({
        redisUrl: url(),
        role: 'bus-target',
        prefix: CACHE_PREFIX,
        ns: 'item',
        counterPrefix: COUNTERS,
        sourcePrefix: SOURCE,
        loadMs: 0,
      });
      const p = pod;
      const BusReply = z.object({
        ok: z.literal(true),
        lastId: z.string(),
        stats: z.object({ invalid: z.number(), duplicates: z.number() }),
      });
      const podBus = async () => BusReply.parse(await p.request({ cmd: 'bus' }));
      const podVer = async (id: string) =>
        z
          .object({ ok: z.literal(true), value: z.object({ ver: z.number() }) })
          .parse(await p.request({ cmd: 'get', id })).value.ver;
      const localVer = async (c: { cache: Cache; ns: Namespace<Value> }, id: string) => {
        const r = await c.cache.get(c.ns, id);
        if (!r.ok || r.value === undefined) throw new Error(`read ${id} failed`);
        return r.value.ver;
      };
      const head = async () => (await db().xrevrange(KEYS.bus, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      /** Every pod applied (or skipped) everything up to the stream's head. */
      const settled = async () => {
        const h = await head();
        await waitUntil(`pods at the bus head ${h}`, async () => {
          const lasts = [a.cache.bus?.lastId, b.cache.bus?.lastId, (await podBus()).lastId];
          return lasts.every((l) => l === h) ? true : undefined;
        });
      };
      // Each pod holds x1 (version 0) in its L1.
      for (const c of [a, b]) expect(await localVer(c, 'x1')).toBe(0);
      expect(await podVer('x1')).toBe(0);

      const invalidBefore = [
        a.cache.bus?.stats.invalid ?? 0,
        b.cache.bus?.stats.invalid ?? 0,
        (await podBus()).stats.invalid,
      ];
      const goodEvent = {
        event_type: 'invalidate',
        namespace: 'item',
        keys: ['x9'],
        timestamp: 1,
        source_pod: 'p',
        priority: 'normal',
      };
      const badEvent = fc.oneof(
        fc.jsonValue({ maxDepth: 2 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)),
        fc.constantFrom(
          {},
          { ...goodEvent, event_type: 'explode' },
          { ...goodEvent, namespace: 'Item!' },
          { ...goodEvent, keys: [] },
          { ...goodEvent, keys: ['x'.repeat(257)] },
          { ...goodEvent, key_pattern: '*' },
          { ...goodEvent, source_pod: '' },
          { ...goodEvent, timestamp: -1 },
          { ...goodEvent, event_type: 'config', settings: { a: { b: 1 } } },
          { event_type: 'invalidate', namespace: 'item', timestamp: 1, source_pod: 'p' },
        ),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 4 }),
      );
      const badStreamId = fc.oneof(
        fc.constantFrom(
          '',
          'abc',
          '1-',
          '-1',
          '1-2-3',
          '1.5-0',
          ' 1-0',
          '1-0 ',
          '١-٠',
          'x'.repeat(50),
          '0x10-0',
          '1e3-0',
        ),
        fc.string({ maxLength: 12 }).filter((s) => !/^\d{1,20}-\d{1,20}$/.test(s)),
      );
      // Channel messages the publish script could never have sent: not JSON, not the wire shape, or
      // ids that are no stream ids (those once reached BigInt() outside any try: an uncaught throw).
      const garbage = fc.oneof(
        fc.string({ maxLength: 40 }).filter((s) => {
          try {
            JSON.parse(s);
            return false;
          } catch {
            return true;
          }
        }),
        fc
          .jsonValue({ maxDepth: 2 })
          .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
          .map((v) => JSON.stringify(v)),
        fc
          .record({ id: badStreamId, prev: fc.constantFrom('0-0', '1-1'), event: badEvent })
          .map((m) => JSON.stringify(m)),
        fc
          .record({ id: fc.constantFrom('1-1'), prev: badStreamId, event: badEvent })
          .map((m) => JSON.stringify(m)),
        fc.record({ id: fc.nat(), prev: fc.nat() }).map((m) => JSON.stringify(m)),
      );
      // Stream entries that are no valid event (a faulty publisher): XADD, then the wire message a
      // real publish would have sent, so each pod takes it in order and must count it invalid.
      const entry = fc.oneof(
        badEvent.map((e) => JSON.stringify(e)),
        fc.string({ maxLength: 30 }),
      );
      const message = fc.oneof(
        { weight: 3, arbitrary: garbage.map((g) => ({ kind: 'garbage' as const, g })) },
        entry.map((e) => ({ kind: 'entry' as const, e })),
      );
      let sent = 0;
      let entries = 0;
      await fc.assert(
        fc.asyncProperty(message, async (m) => {
          sent++;
          if (m.kind === 'garbage') {
            await db().publish(KEYS.busChannel, m.g);
            return;
          }
          entries++;
          const prev = await head();
          const id = await db().xadd(KEYS.bus, '*', 'e', m.e);
          let parsed: unknown;
          try {
            parsed = JSON.parse(m.e);
          } catch {
            parsed = m.e;
          }
          await db().publish(KEYS.busChannel, JSON.stringify({ id, prev, event: parsed }));
        }),
        { seed: SEED, numRuns: 2_000, endOnFailure: true },
      );
      expect(sent).toBe(2_000);
      await settled();
      const countedNow = async () => {
        const after = [
          a.cache.bus?.stats.invalid ?? 0,
          b.cache.bus?.stats.invalid ?? 0,
          (await podBus()).stats.invalid,
        ];
        return after.map((n, i) => n - (invalidBefore[i] ?? 0));
      };
      // The last messages may still be on their way (pub/sub is asynchronous): wait for the count.
      await waitUntil(`every pod counted ${sent} invalid messages`, async (note) => {
        const c = await countedNow();
        note(c.join(', '));
        return c.every((n) => n >= sent) ? true : undefined;
      });
      const counted = await countedNow();
      console.log(
        `bus: ${sent} malformed messages (${entries} of them stream entries); counted invalid by a, b, pod: ${counted.join(', ')}`,
      );
      expect(counted).toEqual([sent, sent, sent]);

      // Forged messages that look right but name ids the stream never generated.
      const now = Date.now();
      for (const [i, id] of [
        `${now + 3_600_000}-0`,
        `${now + 86_400_000 * 365}-7`,
        '99999999999999999-0',
      ].entries()) {
        await db().publish(
          KEYS.busChannel,
          JSON.stringify({ id, prev: i === 0 ? await head() : '0-0', event: { ...goodEvent, keys: ['x8'] } }),
        );
      }
      // A genuine write and invalidation after the flood: every pod must serve the new version.
      await db().set(`${SOURCE}x1`, '1');
      const del = await b.cache.delete(b.ns, 'x1');
      expect(del.ok).toBe(true);
      await waitUntil(
        'every pod serves x1 version 1',
        async (note) => {
          const vs = [await localVer(a, 'x1'), await localVer(b, 'x1'), await podVer('x1')];
          note(`versions ${vs.join(', ')}`);
          return vs.every((v) => v === 1) ? true : undefined;
        },
        { timeoutMs: 10_000 },
      );
      expect(await p.request({ cmd: 'status' })).toMatchObject({ ok: true }); // the process is alive
    } finally {
      await pod?.close();
      await a.cache.close();
      await b.cache.close();
    }
  }, 120_000);

  it('every key in Redis is under one of this file’s prefixes', async () => {
    const keys = await allKeys();
    const outside = keys.filter(
      (k) =>
        !k.startsWith(CACHE_PREFIX) &&
        !k.startsWith(`${QUEUE_PREFIX}:`) &&
        !k.startsWith(SOURCE) &&
        !k.startsWith(COUNTERS),
    );
    expect(outside).toEqual([]);
    expect(await countKeys(db(), `${CACHE_PREFIX}*`)).toBeGreaterThan(0);
  });
});

/** The real `cachefleet` program (apps/cli/src/main.ts) as a child process. */
const cliProcess = (argv: readonly string[], env: Readonly<Record<string, string>>) =>
  runCli(argv, env, 60_000);
