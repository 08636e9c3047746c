/**
 * Issue 3: what each tag strategy costs, on one private Redis, for a namespace with 2 tags per entry.
 *
 * - Tag index (what the library does): every write also adds the entry to a set per tag; a tag
 *   invalidation walks that set and tombstones every entry (O(entries)); reads are untouched.
 * - Lazy tag timestamps (the alternative, emulated here with plain ioredis): writes store their
 *   time inside the value; a tag invalidation is one HSET of the tag's time (O(1)); every L2 hit must
 *   also read its tags' times and compare.
 *
 * Reads first, so the plain GET is the table's floor; "vs floor" on the write rows only says how a
 * write compares with a GET. Each row's own comparison is in its extra column.
 */
import { Redis } from 'ioredis';
import { benchValueSchema, errorMessage, forEachLimit, isBenchValue, makeValue } from '../data.js';
import { bestOf, errorRow, formatUs, type LoopResult, percentile } from '../measure.js';
import type { BenchValue, Role, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'tags';
const CALLERS = 64;
const RUNS = 3;
/** Entries of the read rows and of the set rows' key space. */
const KEYS = 10_000;
const DEFAULT_READ_N = 100_000;
const DEFAULT_WRITE_N = 20_000;
/** Every fill writes a new entry; the cap keeps `--n 1000000` from filling Redis with them. */
const MAX_WRITE_N = 50_000;
const SMALL_TAG = 1_000;
const BIG_TAG = 10_000;
const LAZY_INVALIDATIONS = 200;
const FILL_BATCH = 500;
/** Below this --n, invalidateTags is measured once per tag size instead of best of RUNS. */
const QUICK_N = 10_000;

/**
 * Two tags per entry, from the number at the end of its id: `a-<i/1000>` is on 1,000 entries,
 * `b-<i/10000>` on 10,000 (once 10,000 consecutive ids exist).
 */
function tagsOfId(id: string): [string, string] {
  const i = Number(id.slice(id.lastIndexOf('-') + 1));
  return [`a-${Math.floor(i / SMALL_TAG)}`, `b-${Math.floor(i / BIG_TAG)}`];
}

interface OpsResult extends LoopResult {
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** CALLERS loops share one op counter, as in l2-hit; `op` resolves whether the op did its job. */
async function callersLoop(n: number, op: (i: number) => Promise<boolean>): Promise<OpsResult> {
  const latencies = new Float64Array(n);
  let next = 0;
  let bad = 0;
  const caller = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const start = performance.now();
      const good = await op(i);
      latencies[i] = performance.now() - start;
      if (!good) bad++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, caller));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort();
  return { opsPerSec: n / seconds, bad, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

interface Measured {
  readonly name: string;
  readonly role: Role;
  readonly best: OpsResult;
  readonly bad: number;
  readonly all: number[];
}

async function measureOps(
  name: string,
  role: Role,
  n: number,
  op: (i: number) => Promise<boolean>,
  warmN: number,
): Promise<Measured> {
  await callersLoop(warmN, op);
  const { best, bad, all } = await bestOf(RUNS, () => callersLoop(n, op));
  return { name, role, best, bad, all };
}

function opsRow(m: Measured, note: string): Row {
  const parts = [`p50 ${formatUs(m.best.p50Ms)} µs`, `p99 ${formatUs(m.best.p99Ms)} µs`];
  if (note !== '') parts.push(note);
  if (m.bad > 0) parts.push(`${m.bad} BAD (invalid)`);
  return {
    workload: NAME,
    name: m.name,
    role: m.role,
    opsPerSec: m.best.opsPerSec,
    extra: parts.join(', '),
    runs: m.all,
  };
}

const times = (a: Measured, b: Measured): string => `${(a.best.opsPerSec / b.best.opsPerSec).toFixed(2)}×`;

// ---------------------------------------------------------------------------------------------
// (b) Lazy tag timestamps, emulated: the entry carries its write time and its tags; a hash holds
// each tag's last invalidation time. Written and read with plain ioredis (the l2-hit floor's client).

interface LazyEntry {
  readonly at: number;
  readonly tags: readonly string[];
  readonly v: BenchValue;
}

function parseLazy(raw: string | null): LazyEntry | undefined {
  if (raw === null) return undefined;
  const value: unknown = JSON.parse(raw);
  if (typeof value !== 'object' || value === null) return undefined;
  if (!('at' in value) || typeof value.at !== 'number') return undefined;
  if (!('tags' in value) || !Array.isArray(value.tags)) return undefined;
  if (!('v' in value) || !isBenchValue(value.v)) return undefined;
  const tags = value.tags.filter((t): t is string => typeof t === 'string');
  return { at: value.at, tags, v: value.v };
}

/** Fresh when written after the last invalidation of every one of its tags (absent = never). */
function fresh(entry: LazyEntry, tagTimes: readonly (string | null)[]): boolean {
  for (const t of tagTimes) if (t !== null && Number(t) >= entry.at) return false;
  return true;
}

/**
 * The cheapest lazy read: one command, the check done in Redis. The entry is stored as
 * `<tag>,<tag>|<written at>|<value>`; the script returns the value, or false when a tag was
 * invalidated after the write. Two keys in one script: on a Cluster the hash would need a hash tag
 * shared with every entry (one slot for the namespace), which the tag index does not need.
 */
const LAZY_GET_LUA = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local a = string.find(v, '|', 1, true)
local b = string.find(v, '|', a + 1, true)
local at = tonumber(string.sub(v, a + 1, b - 1))
local tags = {}
for t in string.gmatch(string.sub(v, 1, a - 1), '[^,]+') do tags[#tags + 1] = t end
local times = redis.call('HMGET', KEYS[2], unpack(tags))
for i = 1, #tags do
  local t = tonumber(times[i])
  if t and t >= at then return false end
end
return string.sub(v, b + 1)
`;

async function lazyRows(ctx: WorkloadContext, n: number): Promise<Row[]> {
  const redis = new Redis({
    host: '127.0.0.1',
    port: ctx.port,
    enableAutoPipelining: true,
    lazyConnect: true,
  });
  await redis.connect();
  const base = `${ctx.runId}:${NAME}:lazy:`;
  const hash = `${base}__tagtimes`;
  const keyOf = (i: number): string => `${base}e-${i % KEYS}`;
  const headedKeyOf = (i: number): string => `${base}h:e-${i % KEYS}`;
  try {
    // Tags invalidated an hour ago: every entry is newer, so each read runs the comparison and passes.
    const anHourAgo = Date.now() - 3_600_000;
    const allTags = new Set<string>();
    for (let i = 0; i < KEYS; i++) for (const t of tagsOfId(`e-${i}`)) allTags.add(t);
    await redis.hset(hash, Object.fromEntries([...allTags].map((t) => [t, String(anHourAgo)])));
    const ids = Array.from({ length: KEYS }, (_, i) => i);
    await forEachLimit(ids, CALLERS, async (i) => {
      const id = `e-${i}`;
      const entry: LazyEntry = { at: Date.now(), tags: tagsOfId(id), v: makeValue(id) };
      await redis.set(keyOf(i), JSON.stringify(entry));
      await redis.set(headedKeyOf(i), `${entry.tags.join(',')}|${entry.at}|${JSON.stringify(entry.v)}`);
    });
    const sha = await redis.script('LOAD', LAZY_GET_LUA);
    if (typeof sha !== 'string') throw new Error('SCRIPT LOAD did not return a sha');
    const idAt = (i: number): string => `e-${i % KEYS}`;
    const warmN = Math.min(n, 20_000);

    const plain = await measureOps(
      'L2 hit: GET (tag index: no tag read)',
      'floor',
      n,
      async (i) => parseLazy(await redis.get(keyOf(i)))?.v.id === idAt(i),
      warmN,
    );
    const scripted = await measureOps(
      'L2 hit, lazy: 1 script (GET + HMGET + compare in Redis)',
      'peer',
      n,
      async (i) => {
        const raw = await redis.evalsha(sha, 2, headedKeyOf(i), hash);
        if (typeof raw !== 'string') return false;
        const v: unknown = JSON.parse(raw);
        return isBenchValue(v) && v.id === idAt(i);
      },
      warmN,
    );
    const pipelined = await measureOps(
      'L2 hit, lazy: GET + HMGET 2 tag times (1 round trip)',
      'peer',
      n,
      async (i) => {
        // Best case: the tags follow from the id, so both commands leave together (auto-pipelined).
        const [t1, t2] = tagsOfId(idAt(i));
        const [raw, tagTimes] = await Promise.all([redis.get(keyOf(i)), redis.hmget(hash, t1, t2)]);
        const entry = parseLazy(raw);
        return entry !== undefined && fresh(entry, tagTimes) && entry.v.id === idAt(i);
      },
      warmN,
    );
    const twoTrips = await measureOps(
      'L2 hit, lazy: GET, then HMGET its tags (2 round trips)',
      'peer',
      n,
      async (i) => {
        // General case: the tags are a function of the value, known only once it is read.
        const entry = parseLazy(await redis.get(keyOf(i)));
        if (entry === undefined) return false;
        const tagTimes = await redis.hmget(hash, ...entry.tags);
        return fresh(entry, tagTimes) && entry.v.id === idAt(i);
      },
      warmN,
    );

    // A lazy tag invalidation is one HSET, whatever the number of entries.
    const hsetMs = new Float64Array(LAZY_INVALIDATIONS);
    for (let k = 0; k < LAZY_INVALIDATIONS; k++) {
      const t0 = performance.now();
      await redis.hset(hash, `lazy-bench-${k}`, String(Date.now()));
      hsetMs[k] = performance.now() - t0;
    }
    hsetMs.sort();

    return [
      opsRow(plain, `${CALLERS} callers over ${KEYS} entries, JSON.parse + id check`),
      opsRow(
        scripted,
        `${times(scripted, plain)} of GET; tags stored in front of the value; needs 1 slot on a Cluster`,
      ),
      opsRow(pipelined, `${times(pipelined, plain)} of GET; tags known from the id, compared in JS`),
      opsRow(twoTrips, `${times(twoTrips, plain)} of GET; when the tags are only known from the value`),
      {
        workload: NAME,
        name: 'lazy: invalidate a tag = HSET tagtimes',
        role: 'peer',
        opsPerSec: null,
        extra: `p50 ${ms(percentile(hsetMs, 50))} ms, p99 ${ms(percentile(hsetMs, 99))} ms (${LAZY_INVALIDATIONS} awaited), O(1): same for 1 or 10,000 entries`,
      },
    ];
  } finally {
    await redis.quit();
  }
}

const ms = (v: number): string => (v < 1 ? v.toFixed(3) : v.toFixed(1));

// ---------------------------------------------------------------------------------------------
// (a) The tag index, through the library: tagged vs untagged writes, then invalidateTags.

async function openCache(ctx: WorkloadContext, part: string) {
  const { createCache, defineNamespace } = await import('@cachefleet/tiered-cache');
  const definition = {
    version: 1,
    ttl: { l1: 300, l2: 1800 },
    schema: benchValueSchema,
    load: async (id: string) => makeValue(id),
  };
  const tagged = defineNamespace<BenchValue>({ ...definition, name: 'tagged', tags: (v) => tagsOfId(v.id) });
  const plain = defineNamespace<BenchValue>({ ...definition, name: 'plain' });
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url: `redis://127.0.0.1:${ctx.port}` },
    prefix: `${ctx.runId}:${NAME}:${part}:`,
    l1: { maxEntries: 200_000, maxBytes: 512 * 1024 * 1024 },
  });
  await cache.start();
  const status = await cache.store.health();
  if (!status.ok) {
    await cache.close();
    throw new Error(`cache did not reach Redis: ${status.detail ?? 'unhealthy'}`);
  }
  return { cache, tagged, plain };
}

async function writeRows(ctx: WorkloadContext, n: number): Promise<Row[]> {
  const { cache, tagged, plain } = await openCache(ctx, 'writes');
  try {
    const warmN = Math.min(n, 5_000);
    const setOp =
      (ns: typeof tagged) =>
      async (i: number): Promise<boolean> => {
        const id = `s-${i % KEYS}`;
        return (await cache.set(ns, id, makeValue(id))).ok;
      };
    // Every fill needs an id that is in neither tier: a counter across all runs of the row.
    const fillOp = (ns: typeof tagged) => {
      let serial = 0;
      return async (): Promise<boolean> => {
        const id = `f-${serial++}`;
        const r = await cache.get(ns, id);
        return r.ok && r.value?.id === id;
      };
    };
    const setPlain = await measureOps('cachefleet set, no tags', 'project', n, setOp(plain), warmN);
    const setTagged = await measureOps(
      'cachefleet set, 2 tags (tag index)',
      'project',
      n,
      setOp(tagged),
      warmN,
    );
    const fillPlain = await measureOps(
      'cachefleet fill (miss → loader → L2), no tags',
      'project',
      n,
      fillOp(plain),
      warmN,
    );
    const fillTagged = await measureOps(
      'cachefleet fill, 2 tags (tag index)',
      'project',
      n,
      fillOp(tagged),
      warmN,
    );
    return [
      opsRow(setPlain, `${CALLERS} callers over ${KEYS} ids; SET + bus event`),
      opsRow(setTagged, `${times(setTagged, setPlain)} of untagged set; + 2 tag-add scripts per write`),
      opsRow(fillPlain, `${CALLERS} callers, a new id each; lock, fill script`),
      opsRow(fillTagged, `${times(fillTagged, fillPlain)} of untagged fill; + 2 tag-add scripts per fill`),
    ];
  } finally {
    await cache.close();
  }
}

async function invalidateRows(ctx: WorkloadContext, runs: number): Promise<Row[]> {
  const { cache, tagged } = await openCache(ctx, 'invalidate');
  // Read-through fills in batches (getMany: one L2 read, the loader, fill scripts with the tag
  // index), the way a warm-up job refills: a tombstoned entry reads as a miss and is filled again.
  const fill = async (ids: readonly number[]): Promise<void> => {
    for (let at = 0; at < ids.length; at += FILL_BATCH) {
      const batch = ids.slice(at, at + FILL_BATCH).map((i) => `e-${i}`);
      const r = await cache.getMany(tagged, batch);
      if (!r.ok) throw r.error;
      if (r.value.some((v, j) => v?.id !== batch[j])) throw new Error('a refill read back a wrong value');
    }
  };
  const timed = async (tag: string, expected: number): Promise<number> => {
    const t0 = performance.now();
    const r = await cache.invalidateTags(tagged, [tag]);
    const took = performance.now() - t0;
    if (!r.ok) throw r.error;
    if (r.value !== expected) throw new Error(`invalidateTags(${tag}) removed ${r.value}, not ${expected}`);
    return took;
  };
  try {
    const small: number[] = [];
    const big: number[] = [];
    const all = Array.from({ length: BIG_TAG }, (_, i) => i);
    for (let run = 0; run < runs; run++) {
      // All 10,000 entries live and indexed: `a-<run>` holds 1,000 of them, `b-0` all 10,000.
      await fill(all);
      small.push(await timed(`a-${run}`, SMALL_TAG));
      await fill(all.slice(run * SMALL_TAG, (run + 1) * SMALL_TAG));
      big.push(await timed('b-0', BIG_TAG));
    }
    const row = (entries: number, took: number[]): Row => {
      const best = Math.min(...took);
      return {
        workload: NAME,
        name: `cachefleet invalidateTags, tag on ${entries.toLocaleString('en-US')} entries`,
        role: 'project',
        opsPerSec: null,
        extra: `best ${ms(best)} ms of ${runs} (${took.map(ms).join(', ')}), ${formatUs(best / entries)} µs per entry: SSCAN + tombstone each + bus event`,
      };
    };
    return [row(SMALL_TAG, small), row(BIG_TAG, big)];
  } finally {
    await cache.close();
  }
}

export const tags: Workload = {
  name: NAME,
  describe: `2 tags per entry, ${CALLERS} callers, best of ${RUNS}. Tag index (the library): cost on writes, O(entries) invalidation. Lazy tag timestamps (emulated, ioredis): cost on every L2 hit, O(1) invalidation. vs floor = vs a plain GET`,
  async run(ctx) {
    const readN = ctx.n ?? DEFAULT_READ_N;
    const writeN = Math.min(ctx.n ?? DEFAULT_WRITE_N, MAX_WRITE_N);
    // Each run refills 11,000 entries: a quick run (small --n) measures each tag size once.
    const invalidateRuns = ctx.n !== undefined && ctx.n < QUICK_N ? 1 : RUNS;
    const rows: Row[] = [];
    const parts: Array<[string, Role, () => Promise<Row[]>]> = [
      [`L2 hits (n=${readN})`, 'floor', () => lazyRows(ctx, readN)],
      [`writes (n=${writeN})`, 'project', () => writeRows(ctx, writeN)],
      [`invalidateTags ${SMALL_TAG} / ${BIG_TAG}`, 'project', () => invalidateRows(ctx, invalidateRuns)],
    ];
    for (const [label, role, part] of parts) {
      ctx.log(`${NAME}: ${label}`);
      try {
        rows.push(...(await part()));
      } catch (err) {
        rows.push(errorRow(NAME, label, role, errorMessage(err)));
      }
    }
    return rows;
  },
};
