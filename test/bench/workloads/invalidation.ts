/**
 * How long an invalidation takes to reach every pod (DESIGN target: p99 < 5 ms), beside the floor
 * measured in the same run: a bare PUBLISH to plain ioredis subscribers in the same 8 processes.
 *
 * Each receiver process holds one plain subscriber and one pod (a tiered cache on a shared prefix);
 * the bench process publishes to one or the other in blocks that take turns, on one pacing clock,
 * so background noise on a shared machine falls on both rows alike and neither row's deliveries
 * overlap the other's except at a block boundary. Receipt times are compared with the publisher's
 * on `performance.timeOrigin + performance.now()` (wall clock at process start plus a monotonic
 * offset). Receivers keep their times and report them at the end, so no stdout traffic competes
 * with the deliveries being measured.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { ChildLines, ChildTimeoutError } from '../child.js';
import { errorMessage, itemDefinition, sleep } from '../data.js';
import { errorRow, percentile } from '../measure.js';
import type { BenchValue, Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'invalidation';
const PODS = 8;
const DEFAULT_N = 1000;
/** Deliveries the receivers see first (JIT, first connections), left out of the statistics. */
const WARMUP = 50;
/** One awaited invalidation starts at least this long after the previous one started. */
const INTERVAL_MS = 3;
/** The two rows take turns in blocks of this many messages. */
const BLOCK = 50;
/** The floor's message is padded to about the size of a bus message, so both move as many bytes. */
const FLOOR_MESSAGE_BYTES = 220;
const TARGET_P99_MS = 5;
const READY_TIMEOUT_MS = 60_000;
const SETTLE_MS = 1_000;
const REPORT_TIMEOUT_MS = 5_000;
const CHILD = fileURLToPath(new URL('../invalidation-child.ts', import.meta.url));

/** A receiver's first line; `podError` when its cache could not start (the floor still runs). */
export interface ReceiverReady {
  readonly ready: true;
  readonly podError?: string;
}

/** What a receiver prints at the end: time per sequence number, null when it never arrived. */
export interface ReceiverReport {
  readonly sub: readonly (number | null)[];
  readonly pod: readonly (number | null)[];
  /** The fleet-acknowledged row's invalidations (ids `f-<seq>`). */
  readonly fleet: readonly (number | null)[];
}

type Kind = keyof ReceiverReport;

/**
 * Invalidated ids are `k-<seq>` (`f-<seq>` for the fleet-acknowledged row, so each row removes its
 * own L1 entries); floor messages are `<seq>|<padding>`.
 */
export const idOf = (seq: number): string => `k-${seq}`;
export const fleetIdOf = (seq: number): string => `f-${seq}`;
export const seqOf = (s: string): number =>
  Number.parseInt(s.startsWith('k-') || s.startsWith('f-') ? s.slice(2) : s, 10);

const now = (): number => performance.timeOrigin + performance.now();

/** A receiver process: its stdout lines, and the report it sends at the end. */
class Child extends ChildLines {
  /** The receiver's times: it reports by itself once it has everything; asked after a timeout. */
  async report(): Promise<ReceiverReport> {
    let line: string;
    try {
      line = await this.nextLine(REPORT_TIMEOUT_MS);
    } catch (err) {
      if (!(err instanceof ChildTimeoutError)) throw err;
      this.proc.stdin?.write('report\n');
      line = await this.nextLine(REPORT_TIMEOUT_MS);
    }
    return parseLine(reportSchema, line);
  }
}

const times = z.array(z.number().nullable());
const reportSchema = z.object({ sub: times, pod: times, fleet: times });
const readySchema = z.object({ ready: z.literal(true), podError: z.string().optional() });

function parseLine<T>(schema: z.ZodType<T>, line: string): T {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`unexpected receiver line: ${line.slice(0, 200)}`);
  return parsed.data;
}

/** Sends invalidation `seq` and resolves when the sender's call resolved (it is awaited). */
interface Publisher {
  readonly how: string;
  send(seq: number): Promise<void>;
  close(): Promise<void>;
}

async function floorPublisher(port: number, channel: string): Promise<Publisher> {
  const pub = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await pub.connect();
  return {
    how: 'one awaited PUBLISH',
    async send(seq) {
      const head = `${seq}|`;
      await pub.publish(channel, head.padEnd(FLOOR_MESSAGE_BYTES, 'x'));
    },
    async close() {
      await pub.quit();
    },
  };
}

type BenchCache = import('@cachefleet/tiered-cache').Cache;
type Items = import('@cachefleet/tiered-cache').Namespace<BenchValue>;

/** The publishing cache, shared by the two cache rows (one process: one live pod fewer to wait for). */
async function publishingCache(port: number, prefix: string): Promise<{ cache: BenchCache; items: Items }> {
  const { createCache, defineNamespace } = await import('@cachefleet/tiered-cache');
  // The pods' definition: same name and version, hence the same keys and the same bus events.
  const items = defineNamespace(itemDefinition());
  const cache = createCache({
    impl: 'tiered',
    redis: { mode: 'single', url: `redis://127.0.0.1:${port}` },
    prefix,
  });
  await cache.start();
  if (cache.bus?.connected !== true) {
    await cache.close();
    throw new Error('the publishing cache is not on the bus');
  }
  return { cache, items };
}

function cachePublisher({ cache, items }: { cache: BenchCache; items: Items }): Publisher {
  return {
    how: 'one awaited cache.delete (L1, L2 tombstone, bus publish)',
    async send(seq) {
      const r = await cache.delete(items, idOf(seq));
      if (!r.ok) throw r.error;
    },
    close: () => Promise.resolve(),
  };
}

/** What the fleet-acknowledged row saw besides times: calls that timed out, live pods per call. */
interface FleetTally {
  missing: number;
  pods: Set<number>;
}

function fleetPublisher({ cache, items }: { cache: BenchCache; items: Items }, tally: FleetTally): Publisher {
  return {
    how: "one awaited cache.delete(…, { wait: 'fleet' }) (the same, then every live pod's ack)",
    async send(seq) {
      const r = await cache.delete(items, fleetIdOf(seq), { wait: 'fleet', timeoutMs: 2_000 });
      if (!r.ok) throw r.error;
      if (r.value.fleet.missing.length > 0) tally.missing++;
      tally.pods.add(r.value.fleet.pods.length);
    },
    close: () => Promise.resolve(),
  };
}

interface Delivery {
  /** Per invalidation: time until the last of the receivers had it, ms (sorted). */
  readonly all: Float64Array;
  /** Per invalidation and receiver, ms (sorted). */
  readonly each: Float64Array;
  /** Per invalidation: time until the publisher's call resolved, ms (sorted). */
  readonly ack: Float64Array;
  readonly lost: number;
  readonly measured: number;
  readonly how: string;
}

/** One row: a publisher, and the receivers' side it reaches (`sub` or `pod`). */
interface Target {
  readonly kind: Kind;
  readonly sent: Float64Array;
  readonly acked: Float64Array;
  publisher?: Publisher;
  error?: string;
}

async function openTarget(target: Target, open: () => Promise<Publisher>): Promise<void> {
  if (target.error !== undefined) return;
  try {
    target.publisher = await open();
  } catch (err) {
    target.error = errorMessage(err);
  }
}

/**
 * The targets take turns in blocks of BLOCK messages, all on one pacing clock. Paced, not a
 * burst: each call starts at least INTERVAL_MS after the previous one, so the rows measure
 * delivery, not a queue.
 */
async function publishInterleaved(targets: readonly Target[], total: number): Promise<number> {
  let previous = Number.NEGATIVE_INFINITY;
  let sends = 0;
  const first = performance.now();
  for (let from = 0; from < total; from += BLOCK) {
    for (const target of targets) {
      for (let seq = from; seq < Math.min(from + BLOCK, total); seq++) {
        const publisher = target.publisher;
        if (publisher === undefined || target.error !== undefined) break;
        const wait = previous + INTERVAL_MS - performance.now();
        if (wait > 0) await sleep(Math.ceil(wait));
        previous = performance.now();
        target.sent[seq] = now();
        try {
          await publisher.send(seq);
        } catch (err) {
          target.error = errorMessage(err);
        }
        target.acked[seq] = now();
        sends++;
      }
    }
  }
  return sends === 0 ? Number.NaN : (performance.now() - first) / sends;
}

function summarise(target: Target, reports: readonly ReceiverReport[]): Delivery {
  const { sent, acked } = target;
  const all: number[] = [];
  const each: number[] = [];
  const ack: number[] = [];
  let lost = 0;
  for (let seq = WARMUP; seq < sent.length; seq++) {
    const t0 = sent[seq] ?? Number.NaN;
    ack.push((acked[seq] ?? Number.NaN) - t0);
    let last = Number.NEGATIVE_INFINITY;
    let missing = false;
    for (const r of reports) {
      const at = r[target.kind][seq];
      if (at === null || at === undefined) {
        lost++;
        missing = true;
        continue;
      }
      each.push(at - t0);
      last = Math.max(last, at - t0);
    }
    // "All pods applied" only exists when every pod did; a lost delivery is counted separately.
    if (!missing) all.push(last);
  }
  const sorted = (xs: number[]): Float64Array => Float64Array.from(xs).sort();
  return {
    all: sorted(all),
    each: sorted(each),
    ack: sorted(ack),
    lost,
    measured: sent.length - WARMUP,
    how: target.publisher?.how ?? '',
  };
}

/** Deliveries of the target that a pod applied after the sender's call had resolved. */
function appliedLate(target: Target, reports: readonly ReceiverReport[]): number {
  let late = 0;
  for (let seq = WARMUP; seq < target.acked.length; seq++)
    for (const r of reports) {
      const at = r[target.kind][seq];
      if (at !== null && at !== undefined && at > (target.acked[seq] ?? Number.NaN)) late++;
    }
  return late;
}

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '—');

function stats(sorted: Float64Array): { p50: number; p99: number; max: number; min: number } {
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    min: sorted[0] ?? Number.NaN,
  };
}

const triple = (s: Float64Array): string => {
  const x = stats(s);
  return `p50 ${ms(x.p50)} / p99 ${ms(x.p99)} / max ${ms(x.max)} ms`;
};

function describeDelivery(d: Delivery, who: string, verb: string, meanGapMs: number): string[] {
  const parts = [
    `all ${PODS} ${verb}: ${triple(d.all)}`,
    `per ${who}: ${triple(d.each)}`,
    `call resolved: ${triple(d.ack)}`,
    `${d.each.length}/${d.measured * PODS} deliveries`,
    `paced: ${d.how} every ≥ ${INTERVAL_MS} ms (mean ${meanGapMs.toFixed(2)} ms), blocks of ${BLOCK} taking turns with the other row, first ${WARMUP} left out`,
  ];
  if (d.lost > 0) parts.push(`${d.lost} LOST`);
  // Times from two processes: a negative delay would mean the clocks are not comparable.
  const min = stats(d.each).min;
  if (min < 0) parts.push(`CLOCK SKEW: min delay ${ms(min)} ms (invalid)`);
  return parts;
}

async function stopChildren(children: readonly Child[], failed: boolean): Promise<void> {
  for (const c of children) c.proc.stdin?.end();
  for (const c of children) {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
    // A failed run may have children stuck in setup; a finished one only closes its clients.
    if (failed) c.proc.kill('SIGKILL');
    const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
    await c.exited;
    clearTimeout(timer);
  }
}

const FLOOR_NAME = `redis pub/sub → ${PODS} subscribers`;
const PROJECT_NAME = `cachefleet invalidation → ${PODS} pods`;
const FLEET_NAME = `cachefleet invalidation, wait: 'fleet' → ${PODS} pods`;

async function measure(ctx: WorkloadContext, count: number): Promise<Row[]> {
  const total = WARMUP + count;
  const channel = `${ctx.runId}:${NAME}:floor`;
  const prefix = `${ctx.runId}:${NAME}:`;
  const args = ['--import', 'tsx', CHILD, String(ctx.port), channel, prefix, String(total)];
  const t0 = performance.now();
  const children = Array.from(
    { length: PODS },
    () => new Child(spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })),
  );
  const floor: Target = { kind: 'sub', sent: new Float64Array(total), acked: new Float64Array(total) };
  const project: Target = { kind: 'pod', sent: new Float64Array(total), acked: new Float64Array(total) };
  const fleet: Target = { kind: 'fleet', sent: new Float64Array(total), acked: new Float64Array(total) };
  const tally: FleetTally = { missing: 0, pods: new Set() };
  let publishing: { cache: BenchCache; items: Items } | undefined;
  let finished = false;
  try {
    for (const c of children) {
      const ready = parseLine(readySchema, await c.nextLine(READY_TIMEOUT_MS));
      if (ready.podError !== undefined) project.error ??= `a pod did not start: ${ready.podError}`;
    }
    fleet.error = project.error;
    await openTarget(floor, () => floorPublisher(ctx.port, channel));
    try {
      publishing = await publishingCache(ctx.port, prefix);
    } catch (err) {
      project.error ??= errorMessage(err);
      fleet.error ??= errorMessage(err);
    }
    const shared = publishing;
    if (shared !== undefined) {
      await openTarget(project, async () => cachePublisher(shared));
      await openTarget(fleet, async () => fleetPublisher(shared, tally));
    }
    ctx.log(`${NAME}: ${PODS} receivers ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // Processes that just started on the same cores: let their start-up work drain first.
    await sleep(SETTLE_MS);
    const meanGapMs = await publishInterleaved([floor, project, fleet], total);
    const reports = await Promise.all(children.map((c) => c.report()));
    finished = true;
    const rows: Row[] = [];
    const floorD = floor.error === undefined ? summarise(floor, reports) : undefined;
    if (floorD === undefined) rows.push(errorRow(NAME, FLOOR_NAME, 'floor', floor.error ?? ''));
    else {
      const extra = describeDelivery(floorD, 'subscriber', 'received', meanGapMs).join('; ');
      rows.push({ workload: NAME, name: FLOOR_NAME, role: 'floor', opsPerSec: null, extra });
    }
    const projectD = project.error === undefined ? summarise(project, reports) : undefined;
    if (project.error !== undefined) rows.push(errorRow(NAME, PROJECT_NAME, 'project', project.error));
    else {
      const d = projectD ?? summarise(project, reports);
      const parts = describeDelivery(d, 'pod', 'applied', meanGapMs);
      const p99 = stats(d.all).p99;
      const over = floorD === undefined ? '' : `, ${ms(p99 - stats(floorD.all).p99)} ms over the floor's`;
      parts.splice(
        1,
        0,
        `target p99 < ${TARGET_P99_MS} ms: ${p99 < TARGET_P99_MS ? 'met' : 'MISSED'}${over}`,
      );
      rows.push({
        workload: NAME,
        name: PROJECT_NAME,
        role: 'project',
        opsPerSec: null,
        extra: parts.join('; '),
      });
    }
    if (fleet.error !== undefined) rows.push(errorRow(NAME, FLEET_NAME, 'project', fleet.error));
    else
      rows.push(
        fleetRow(summarise(fleet, reports), projectD, floorD, tally, meanGapMs, appliedLate(fleet, reports)),
      );
    return rows;
  } finally {
    await floor.publisher?.close().catch(() => {});
    await project.publisher?.close().catch(() => {});
    await publishing?.cache.close().catch(() => {});
    await stopChildren(children, !finished);
  }
}

/**
 * The fleet-acknowledged row (issue 15): what matters is the call → resolved time (the caller's
 * read-your-writes across pods), beside the plain delete's and the floor's; and that every pod had
 * applied the invalidation by then (a delivery after the call resolved would be a broken promise).
 */
function fleetRow(
  d: Delivery,
  plain: Delivery | undefined,
  floorD: Delivery | undefined,
  tally: FleetTally,
  meanGapMs: number,
  late: number,
): Row {
  const resolved = stats(d.ack);
  const applied = stats(d.all);
  const ratio = (other: Delivery | undefined, what: string) =>
    other === undefined
      ? []
      : [
          `resolved p50 ${(resolved.p50 / stats(other.ack).p50).toFixed(1)}× / p99 ${(resolved.p99 / stats(other.ack).p99).toFixed(1)}× ${what}'s call resolved`,
        ];
  const parts = [
    `call → resolved (every live pod acked): ${triple(d.ack)}`,
    ...ratio(plain, 'the plain delete'),
    ...(floorD === undefined
      ? []
      : [
          `resolved p50 / p99 over the floor's all-${PODS}-received: ${ms(resolved.p50 - stats(floorD.all).p50)} / ${ms(resolved.p99 - stats(floorD.all).p99)} ms`,
        ]),
    `all ${PODS} applied: p50 ${ms(applied.p50)} / p99 ${ms(applied.p99)} / max ${ms(applied.max)} ms`,
    `live pods per call: ${[...tally.pods].sort().join(', ')}`,
    `calls that timed out (missing pods): ${tally.missing}`,
    `${d.each.length}/${d.measured * PODS} deliveries`,
    `paced like the other rows (mean gap ${meanGapMs.toFixed(2)} ms)`,
  ];
  parts.push(`pods that applied after the call resolved: ${late}`);
  if (d.lost > 0) parts.push(`${d.lost} LOST`);
  return { workload: NAME, name: FLEET_NAME, role: 'project', opsPerSec: null, extra: parts.join('; ') };
}

export const invalidation: Workload = {
  name: NAME,
  describe: `publisher in the bench process → ${PODS} receiver processes, ${DEFAULT_N} messages per row (fewer with --n); ms from just before the call until receipt (floor) / until the pod's onEvent ran, after its L1 applied it (project)`,
  async run(ctx) {
    const count = Math.min(ctx.n ?? DEFAULT_N, DEFAULT_N);
    ctx.log(`${NAME}: ${PODS} processes, each a plain subscriber + a pod; ${count} messages per row`);
    try {
      return await measure(ctx, count);
    } catch (err) {
      const message = errorMessage(err);
      return [
        errorRow(NAME, FLOOR_NAME, 'floor', message),
        errorRow(NAME, PROJECT_NAME, 'project', message),
        errorRow(NAME, FLEET_NAME, 'project', message),
      ];
    }
  },
};
