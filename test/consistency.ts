/**
 * DESIGN invariant 2 as a randomized, history-based check (issue 3): no stale read after an
 * acknowledged invalidation, beyond the bus delay.
 *
 * Worker processes (fixtures/consistency-worker.ts, one tiered cache each) run a random mix of
 * reads and "database writes" over a small id space and record a history. The source of truth is
 * a plain Redis integer per id (`INCR` is the write); the namespace's loader reads it, so every
 * value carries the version it was loaded at. The checker then applies one rule:
 *
 *   a read R of id k that started after an invalidation W covering k was acknowledged
 *   (W.completedAt + busDelayMs < R.invokedAt) returns a version ≥ the version W wrote for k.
 *
 * Every invalidating operation is a write: `write` is INCR k then `delete(ns, k)`; `pattern`,
 * `tags` and `namespace` first INCR every id they cover (in one MULTI), then call
 * `invalidatePattern` / `invalidateTags` / `invalidateNamespace`. So all four kinds are checked
 * with the same rule: an invalidation that returns while some pod can still serve the value from
 * before its INCR is a violation, whichever API made it. An operation whose cache call failed is not
 * acknowledged and proves nothing; its INCR still happened, which the sanity check below accounts for.
 *
 * Times come from `process.hrtime` (CLOCK_MONOTONIC on Linux: one clock for every process on the
 * machine, no wall-clock steps), in milliseconds. A second, sanity rule catches clock or wiring
 * mistakes: a read can never return a version that no write had begun to produce before the read
 * completed ("future" violations).
 *
 * consistency-sql.ts feeds the same rule from outside the fleet: a writer changes the rows of a
 * PostgreSQL table by plain SQL (kind `sql`), the pods only read (`FleetOptions.sql`), and change
 * capture is what must invalidate (consistency-sql.test.ts).
 *
 * This module also runs the fleet (`runFleet`), shared by consistency.test.ts and the bench workload.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CacheEvent } from '@cachefleet/tiered-cache';
import { z } from 'zod';

/** A documented allowance for pub/sub delivery plus event-loop lag under load (loopback: ~1 ms). */
export const DEFAULT_BUS_DELAY_MS = 50;

/** `sql`: a change committed by the SQL writer (consistency-sql.ts), invalidated by change capture. */
export const INVALIDATION_KINDS = ['write', 'pattern', 'tags', 'namespace', 'sql'] as const;
export type InvalidationKind = (typeof INVALIDATION_KINDS)[number];

export const readOpSchema = z.object({
  kind: z.literal('read'),
  worker: z.string(),
  id: z.string(),
  /** The version the cache returned; null when the read failed (not checked). */
  version: z.number().int().nonnegative().nullable(),
  invokedAt: z.number(),
  completedAt: z.number(),
  error: z.string().optional(),
});
export type ReadOp = z.infer<typeof readOpSchema>;

export const invalidationOpSchema = z.object({
  kind: z.enum(INVALIDATION_KINDS),
  worker: z.string(),
  /** What the cache call named: the id, the glob, the tag, or '*' for the namespace. */
  scope: z.string(),
  /** [id, version] for every id the operation INCRed (the ids the invalidation covers). */
  writes: z.array(z.tuple([z.string(), z.number().int().positive()])),
  invokedAt: z.number(),
  completedAt: z.number(),
  /** false: the cache call failed, so nothing was acknowledged. */
  ok: z.boolean(),
  error: z.string().optional(),
});
export type InvalidationOp = z.infer<typeof invalidationOpSchema>;

/** An event from another pod, as this worker's `onEvent` saw it (after it was applied to L1). */
const appliedEventSchema = z.object({
  kind: z.literal('applied'),
  worker: z.string(),
  sourcePod: z.string(),
  /** Same shape as InvalidationOp.kind + scope, to pair the event with the operation that sent it. */
  signature: z.string(),
  at: z.number(),
});

const podLineSchema = z.object({ kind: z.literal('pod'), worker: z.string(), podId: z.string() });

export const historyLineSchema = z.union([
  readOpSchema,
  invalidationOpSchema,
  appliedEventSchema,
  podLineSchema,
]);
export type HistoryLine = z.infer<typeof historyLineSchema>;
export type HistoryOp = ReadOp | InvalidationOp;

function signatureOf(op: Pick<InvalidationOp, 'kind' | 'scope'>): string {
  return `${op.kind}:${op.scope}`;
}

/** The signature of the operation that published this event (undefined: not an invalidation). */
export function signatureOfEvent(e: CacheEvent): string | undefined {
  if (e.event_type !== 'invalidate') return undefined;
  if (e.generation !== undefined) return 'namespace:*';
  if (e.keys !== undefined) return `write:${e.keys.join(',')}`;
  if (e.tags !== undefined) return `tags:${e.tags.join(',')}`;
  return `pattern:${e.key_pattern}`;
}

interface StaleRead {
  readonly type: 'stale';
  readonly read: ReadOp;
  /** The acknowledged operation whose version the read missed (the newest one before the read). */
  readonly missed: InvalidationOp;
  readonly expectedAtLeast: number;
  /** R.invokedAt − W.completedAt, ms. */
  readonly lagMs: number;
  /**
   * When the reader's pod had applied the missed invalidation, if the history says: its own call
   * (`own`), the event from the bus (`at`, possibly after the read began), or unknown. A read that
   * began after its pod applied the invalidation is stale whatever the bus delay; one that began
   * before is the bus being slower than the allowance.
   */
  readonly appliedInReader: { readonly own: true } | { readonly own: false; readonly at: number } | undefined;
}

interface FutureRead {
  readonly type: 'future';
  readonly read: ReadOp;
  /** The highest version any write had begun to produce before the read completed. */
  readonly highestPossible: number;
}

export type Violation = StaleRead | FutureRead;

export interface CheckResult {
  readonly busDelayMs: number;
  readonly readsChecked: number;
  /** Reads that failed (an error Result): nothing to check. */
  readonly readsFailed: number;
  readonly acknowledged: number;
  readonly unacknowledged: number;
  readonly violations: Violation[];
}

interface Point {
  readonly at: number;
  readonly version: number;
  readonly op: InvalidationOp;
}

/** Points sorted by time with a running maximum of the version: "the highest version by time t". */
class MaxByTime {
  readonly #at: number[];
  readonly #best: Point[];

  constructor(points: Point[]) {
    points.sort((a, b) => a.at - b.at);
    this.#at = points.map((p) => p.at);
    this.#best = [];
    let best: Point | undefined;
    for (const p of points) {
      if (best === undefined || p.version > best.version) best = p;
      this.#best.push(best);
    }
  }

  /** The point with the highest version among those strictly before `t`. */
  before(t: number): Point | undefined {
    let lo = 0;
    let hi = this.#at.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#at[mid] as number) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : this.#best[lo - 1];
  }
}

/**
 * Checks a history (any order, any number of workers) against invariant 2. `applied` and `pod`
 * lines, when present, only enrich the report (when each pod applied each invalidation).
 */
export function checkHistory(
  lines: Iterable<HistoryLine>,
  options: { busDelayMs?: number } = {},
): CheckResult {
  const busDelayMs = options.busDelayMs ?? DEFAULT_BUS_DELAY_MS;
  const all = [...lines];
  const acked = new Map<string, Point[]>();
  const begun = new Map<string, Point[]>();
  const reads: ReadOp[] = [];
  let acknowledged = 0;
  let unacknowledged = 0;
  for (const op of all) {
    if (op.kind === 'applied' || op.kind === 'pod') continue;
    if (op.kind === 'read') {
      reads.push(op);
      continue;
    }
    if (op.ok) acknowledged++;
    else unacknowledged++;
    for (const [id, version] of op.writes) {
      push(begun, id, { at: op.invokedAt, version, op });
      if (op.ok) push(acked, id, { at: op.completedAt, version, op });
    }
  }
  const ackedBy = new Map([...acked].map(([id, points]) => [id, new MaxByTime(points)]));
  const begunBy = new Map([...begun].map(([id, points]) => [id, new MaxByTime(points)]));
  let deliveries: Map<InvalidationOp, Map<string, number>> | undefined;
  const violations: Violation[] = [];
  let readsChecked = 0;
  let readsFailed = 0;
  for (const read of reads) {
    if (read.version === null) {
      readsFailed++;
      continue;
    }
    readsChecked++;
    const missed = ackedBy.get(read.id)?.before(read.invokedAt - busDelayMs);
    if (missed !== undefined && read.version < missed.version) {
      deliveries ??= pairDeliveries(all);
      const at = deliveries.get(missed.op)?.get(read.worker);
      violations.push({
        type: 'stale',
        read,
        missed: missed.op,
        expectedAtLeast: missed.version,
        lagMs: read.invokedAt - missed.op.completedAt,
        appliedInReader:
          missed.op.worker === read.worker
            ? { own: true }
            : at === undefined
              ? undefined
              : { own: false, at },
      });
    }
    const highestPossible = begunBy.get(read.id)?.before(read.completedAt)?.version ?? 0;
    if (read.version > highestPossible) violations.push({ type: 'future', read, highestPossible });
  }
  violations.sort((a, b) => a.read.invokedAt - b.read.invokedAt);
  return { busDelayMs, readsChecked, readsFailed, acknowledged, unacknowledged, violations };
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

/**
 * When each pod applied each acknowledged invalidation of another pod. For each (publisher P,
 * receiver Q, signature) the n-th event Q applied from P is paired with the n-th acknowledged
 * operation P made with that signature (stream order ≈ acknowledgement order).
 */
function pairDeliveries(lines: readonly HistoryLine[]): Map<InvalidationOp, Map<string, number>> {
  const podOf = new Map<string, string>();
  const sent = new Map<string, InvalidationOp[]>();
  const got = new Map<string, number[]>();
  for (const l of lines) if (l.kind === 'pod') podOf.set(l.podId, l.worker);
  for (const l of lines) {
    if (l.kind === 'applied') {
      const from = podOf.get(l.sourcePod);
      if (from !== undefined) push(got, `${from}|${l.worker}|${l.signature}`, l.at);
    } else if (l.kind !== 'read' && l.kind !== 'pod' && l.ok) {
      push(sent, `${l.worker}|${signatureOf(l)}`, l);
    }
  }
  for (const ops of sent.values()) ops.sort((a, b) => a.completedAt - b.completedAt);
  const out = new Map<InvalidationOp, Map<string, number>>();
  for (const [key, at] of got) {
    const [from = '', to = '', signature = ''] = key.split('|');
    const ops = sent.get(`${from}|${signature}`);
    if (ops === undefined) continue;
    at.sort((a, b) => a - b);
    // A receiver stops recording when its run ends, so the last few events may be missing there.
    for (let i = 0; i < Math.min(ops.length, at.length); i++) {
      const op = ops[i] as InvalidationOp;
      let byPod = out.get(op);
      if (byPod === undefined) {
        byPod = new Map();
        out.set(op, byPod);
      }
      byPod.set(to, at[i] as number);
    }
  }
  return out;
}

type ViolationClass = 'after-apply' | 'bus-lag' | 'unknown' | 'future';

/**
 * `after-apply`: the reader's pod had applied the invalidation (or made it) before the read began:
 * stale whatever the bus delay. `bus-lag`: the event reached the reader's pod only after the read
 * began, later than the allowance. `unknown`: the history cannot tell. `future`: see checkHistory.
 */
function classify(v: Violation): ViolationClass {
  if (v.type === 'future') return 'future';
  const a = v.appliedInReader;
  if (a === undefined) return 'unknown';
  return a.own || a.at <= v.read.invokedAt ? 'after-apply' : 'bus-lag';
}

/** Violations counted by class and by the kind of invalidation missed, e.g. "after-apply/tags: 3". */
export function summarize(violations: readonly Violation[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of violations) {
    const key = `${classify(v)}/${v.type === 'stale' ? v.missed.kind : 'read'}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

/** One line a human can act on: which read, which acknowledged write it missed, and by how much. */
export function describeViolation(v: Violation, t0 = 0): string {
  const r = v.read;
  const at = (t: number) => (t - t0).toFixed(3);
  const read = `${r.worker} read ${r.id} [${at(r.invokedAt)} → ${at(r.completedAt)}] got v${r.version}`;
  if (v.type === 'future')
    return `${read}, but no write had begun v${v.read.version} (max v${v.highestPossible})`;
  const w = v.missed;
  const applied = v.appliedInReader;
  const where =
    applied === undefined
      ? `; when ${r.worker} applied it is unknown`
      : applied.own
        ? ' (its own invalidation)'
        : applied.at <= r.invokedAt
          ? `; ${r.worker} had applied its event ${(r.invokedAt - applied.at).toFixed(3)} ms before the read`
          : `; ${r.worker} applied its event only ${(applied.at - r.invokedAt).toFixed(3)} ms after the read began (bus lag)`;
  return (
    `${read} < v${v.expectedAtLeast}, written by ${w.worker} ${w.kind}(${w.scope}) ` +
    `[${at(w.invokedAt)} → ${at(w.completedAt)}] acknowledged ${v.lagMs.toFixed(3)} ms before the read began${where}`
  );
}

interface BusDelayStats {
  readonly samples: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * Observed bus delay: a pod's apply time of another pod's invalidation − its acknowledgement
 * (pairDeliveries). Negative values are normal: the event is out before the publisher's call resolves.
 */
export function busDelays(lines: readonly HistoryLine[]): BusDelayStats | undefined {
  const delays: number[] = [];
  for (const [op, byPod] of pairDeliveries(lines))
    for (const at of byPod.values()) delays.push(at - op.completedAt);
  if (delays.length === 0) return undefined;
  delays.sort((a, b) => a - b);
  const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))] as number;
  return { samples: delays.length, p50: q(0.5), p99: q(0.99), max: delays[delays.length - 1] as number };
}

// ---------------------------------------------------------------------------------------------
// The fleet: N worker processes against one Redis, started together, histories read back.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WORKER = fileURLToPath(new URL('./fixtures/consistency-worker.ts', import.meta.url));

/** Relative weights of the operations a worker draws. */
export interface Mix {
  readonly read: number;
  readonly write: number;
  readonly pattern: number;
  readonly tags: number;
  readonly namespace: number;
}

/** A database read: a few milliseconds. */
const DEFAULT_LOAD_MS = 5;

const DEFAULT_MIX: Mix = { read: 80, write: 17, pattern: 1, tags: 1, namespace: 1 };

function formatMix(mix: Mix): string {
  return Object.entries(mix)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export interface FleetOptions {
  readonly redisUrl: string;
  readonly workers: number;
  /** Operations per worker (the run ends at whichever of ops and durationMs comes first). */
  readonly opsPerWorker?: number;
  /** Default 5,000; 0 = no time limit (opsPerWorker decides). */
  readonly durationMs?: number;
  /** Concurrent operation loops in each worker. */
  readonly concurrency?: number;
  readonly ids?: number;
  readonly mix?: Mix;
  /**
   * The loader's latency, ms: each load sleeps a random 0..loadMs after reading the source, as a
   * database read would (default 5). It is the window in which a loaded value becomes old.
   */
  readonly loadMs?: number;
  /**
   * Grace on: the namespace's L2 TTL, ms (values expire during the run, kept 60 s longer), and the
   * share of loads that fail, so that stale values are served between invalidations.
   */
  readonly grace?: { readonly ttlMs: number; readonly failRate: number };
  readonly seed?: number;
  /**
   * Every invalidation passes `{ wait: 'fleet' }` (issue 15): acknowledged once every live pod
   * applied it, so the checker can run with a 0 ms allowance.
   */
  readonly waitFleet?: boolean;
  readonly prefix?: string;
  /**
   * The source is fixtures/sql-items.ts's table in this database and schema, changed by a writer
   * outside the fleet (consistency-sql.ts): the mix must be reads only.
   */
  readonly sql?: { readonly url: string; readonly schema: string };
  /** Called when the workers are told to go (every one is ready): a writer outside starts here. */
  readonly onGo?: () => void;
  readonly log?: (message: string) => void;
}

export const workerSummarySchema = z.object({
  done: z.literal(true),
  worker: z.string(),
  ops: z.number(),
  reads: z.number(),
  failed: z.number(),
  ms: z.number(),
  fencedFills: z.number(),
  loads: z.number(),
  l1Hits: z.number(),
  l2Hits: z.number(),
  staleServed: z.number(),
});
export type WorkerSummary = z.infer<typeof workerSummarySchema>;

interface FleetRun {
  readonly lines: HistoryLine[];
  readonly ops: HistoryOp[];
  readonly summaries: WorkerSummary[];
  /** From "go" to the last worker's report. */
  readonly wallMs: number;
  /** hrtime (ms) when the parent said go: a readable origin for times in reports. */
  readonly startedAt: number;
}

export function hrNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A child's stdout as a queue of lines. */
class WorkerProcess {
  readonly #lines: string[] = [];
  readonly #waiters: Array<() => void> = [];
  #stderr = '';
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    if (proc.stdout === null || proc.stderr === null) throw new Error('worker has no stdout/stderr pipe');
    createInterface({ input: proc.stdout }).on('line', (line) => {
      this.#lines.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-4000);
    });
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    void this.exited.then(() => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** The next line that parses as JSON. */
  async next(timeoutMs: number): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        try {
          return JSON.parse(line);
        } catch {
          continue;
        }
      }
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(
          `${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}): ${this.#stderr}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name} sent nothing within ${timeoutMs} ms: ${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  async close(kill: boolean): Promise<void> {
    this.proc.stdin?.end();
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (kill) this.proc.kill('SIGKILL');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

const Ready = z.object({ ready: z.literal(true), worker: z.string() });

/** Starts the workers, lets them run together, and returns their merged history. */
export async function runFleet(options: FleetOptions): Promise<FleetRun> {
  const dir = await mkdtemp(join(tmpdir(), 'cachefleet-consistency-'));
  const prefix = options.prefix ?? `cons${Date.now().toString(36)}:`;
  const durationMs = options.durationMs ?? 5_000;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  options.log?.(
    `consistency fleet: ${options.workers} workers, prefix ${prefix}, seed ${seed}, ` +
      `mix ${formatMix(options.mix ?? DEFAULT_MIX)}`,
  );
  const workers = Array.from({ length: options.workers }, (_, i) => {
    const name = `w${i}`;
    const args = [
      '--import',
      'tsx',
      WORKER,
      `--redis=${options.redisUrl}`,
      `--prefix=${prefix}`,
      `--worker=${name}`,
      `--out=${join(dir, `${name}.jsonl`)}`,
      `--duration-ms=${durationMs}`,
      `--ops=${options.opsPerWorker ?? 0}`,
      `--concurrency=${options.concurrency ?? 4}`,
      `--ids=${options.ids ?? 20}`,
      `--mix=${formatMix(options.mix ?? DEFAULT_MIX)}`,
      `--load-ms=${options.loadMs ?? DEFAULT_LOAD_MS}`,
      `--seed=${seed + i}`,
      ...(options.waitFleet === true ? ['--wait-fleet'] : []),
      ...(options.sql ? [`--database-url=${options.sql.url}`, `--sql-schema=${options.sql.schema}`] : []),
      ...(options.grace
        ? [`--grace-ttl-ms=${options.grace.ttlMs}`, `--fail-rate=${options.grace.failRate}`]
        : []),
    ];
    return new WorkerProcess(name, spawn(process.execPath, args, { cwd: ROOT, stdio: 'pipe' }));
  });
  let finished = false;
  try {
    for (const w of workers) Ready.parse(await w.next(60_000));
    const startedAt = hrNow();
    for (const w of workers) w.proc.stdin?.write('go\n');
    options.onGo?.();
    const runTimeoutMs = durationMs > 0 ? durationMs + 60_000 : 30 * 60_000;
    const summaries = await Promise.all(
      workers.map(async (w) => workerSummarySchema.parse(await w.next(runTimeoutMs))),
    );
    const wallMs = hrNow() - startedAt;
    finished = true;
    const lines: HistoryLine[] = [];
    for (const w of workers) {
      const text = await readFile(join(dir, `${w.name}.jsonl`), 'utf8');
      for (const line of text.split('\n'))
        if (line !== '') lines.push(historyLineSchema.parse(JSON.parse(line)));
    }
    const ops = lines.filter((l): l is HistoryOp => l.kind !== 'applied' && l.kind !== 'pod');
    return { lines, ops, summaries, wallMs, startedAt };
  } finally {
    await Promise.allSettled(workers.map((w) => w.close(!finished)));
    await rm(dir, { recursive: true, force: true });
  }
}
