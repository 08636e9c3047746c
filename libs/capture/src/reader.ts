import { formatError } from '@cachefleet/config';
import type { CacheKeys, RedisClient } from '@cachefleet/redis';
import type { Cache, Namespace, Result } from '@cachefleet/tiered-cache';
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CaptureConfig } from './config.js';
import { CaptureError } from './errors.js';
import { type CaptureFanOutJob, splitTags } from './fanout.js';
import { CaptureLease } from './lease.js';
import { type OutboxRow, planBatch } from './plan.js';
import { type CapturedSource, capturedSources } from './source.js';
import { captureChannel, outboxTable } from './sql.js';

export interface CaptureReaderOptions {
  /** The cache the invalidations go through (its bus reaches every pod). */
  readonly cache: Cache;
  /** A client of the cache Redis, for the lease and the position. */
  readonly redis: RedisClient;
  readonly keys: CacheKeys;
  readonly databaseUrl: string;
  readonly namespaces: readonly Namespace<unknown>[];
  readonly config: CaptureConfig;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** Names this reader in the lease and the position (e.g. the worker's pod id). */
  readonly holder: string;
  /**
   * Enqueues a large tag fan-out as an invalidate job (the worker passes its JobClient's
   * `enqueue('invalidate', …)`) and resolves the job's id once the queue took it. Without it, or
   * with `config.jobAt` 0, every tag is invalidated by the reader itself.
   */
  readonly enqueue?: (job: CaptureFanOutJob) => Promise<string>;
}

/** Events carry at most 10,000 keys and 1,000 tags; smaller calls keep each round trip short. */
const CHUNK = 1_000;
const MAX_BACKOFF_MS = 5_000;

class LeaseLost extends Error {}

interface ReadRow extends OutboxRow {
  readonly age: number;
}

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

function isUndefinedTable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === '42P01';
}

/**
 * The capture reader: while it holds the lease, it reads the outbox oldest first, invalidates
 * through the cache, records the position and deletes exactly the rows it applied; LISTEN wakes it
 * early, a poll covers lost notifications. Without the lease it waits on standby. See
 * docs/design-capture.md.
 */
export class CaptureReader {
  readonly #o: CaptureReaderOptions;
  readonly #sources: readonly CapturedSource[];
  readonly #lease: CaptureLease;
  readonly #pool: pg.Pool;
  readonly #select: string;
  readonly #prune: string;
  readonly #channel: string;
  readonly #log: Logger;
  #listener: pg.Client | undefined;
  #listenerAt = 0;
  #loop: Promise<void> | undefined;
  #closed = false;
  #wake: (() => void) | undefined;
  #pending = false;
  #backoffMs = 0;
  #renewTimer: NodeJS.Timeout | undefined;
  #renewedAt = 0;
  #pos = 0;
  #lag = 0;
  #notInstalledLogged = false;
  readonly #m: {
    lag: Gauge;
    active: Gauge;
    rows: Counter;
    images: Counter;
    invalidations: Counter<'kind'>;
    errors: Counter<'stage'>;
  };

  constructor(options: CaptureReaderOptions) {
    this.#o = options;
    this.#sources = capturedSources(options.namespaces);
    this.#lease = new CaptureLease(options.redis, options.keys, options.config.leaseMs, options.holder);
    this.#log = options.logger.child({ role: 'capture' });
    this.#pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: 2,
      application_name: 'cachefleet-capture',
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    });
    this.#pool.on('error', (e) => this.#log.warn({ err: e.message }, 'idle PostgreSQL connection failed'));
    const outbox = outboxTable(options.config.schema);
    this.#select = `SELECT pos::text AS pos, ns, tbl, op, rows,
  extract(epoch FROM clock_timestamp() - at)::float8 AS age
FROM ${outbox} ORDER BY pos LIMIT $1`;
    this.#prune = `DELETE FROM ${outbox} WHERE pos = ANY($1::bigint[])`;
    this.#channel = captureChannel(options.config.schema);
    const registers = [options.metrics];
    this.#m = {
      lag: new Gauge({
        name: 'cachefleet_capture_lag_seconds',
        help: 'Age of the oldest outbox row not yet applied, at the last turn of the active capture reader (0: caught up)',
        registers,
      }),
      active: new Gauge({
        name: 'cachefleet_capture_active',
        help: '1 while this process holds the capture lease (the one active reader), 0 on standby',
        registers,
      }),
      rows: new Counter({
        name: 'cachefleet_capture_outbox_rows_total',
        help: 'Outbox rows (one per captured statement) applied and pruned',
        registers,
      }),
      images: new Counter({
        name: 'cachefleet_capture_changes_total',
        help: 'Changed row images (old and new) read from the outbox',
        registers,
      }),
      invalidations: new Counter({
        name: 'cachefleet_capture_invalidations_total',
        help: 'Invalidations the capture reader made, by kind (ids, tags, namespace; job: invalidate jobs enqueued for large tags)',
        labelNames: ['kind'],
        registers,
      }),
      errors: new Counter({
        name: 'cachefleet_capture_errors_total',
        help: 'Failed turns of the capture reader, by stage (read, apply, prune, lease); each is retried',
        labelNames: ['stage'],
        registers,
      }),
    };
  }

  /** Whether this reader holds the lease. */
  get active(): boolean {
    return this.#lease.fence !== 0;
  }

  get fence(): number {
    return this.#lease.fence;
  }

  /** Lag at the last turn, seconds. */
  get lag(): number {
    return this.#lag;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#loop;
    this.#stopRenewing();
    await this.#lease.release().catch(() => undefined);
    this.#m.active.set(0);
    await this.#closeListener();
    await this.#pool.end().catch(() => undefined);
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let stage = 'lease';
      try {
        if (!this.active) {
          const fence = await this.#lease.acquire();
          if (fence === 0) {
            await this.#sleep(Math.max(100, Math.floor(this.#o.config.leaseMs / 3)));
            continue;
          }
          this.#becomeActive();
        }
        await this.#ensureListener();
        stage = 'turn';
        const n = await this.#turn();
        this.#backoffMs = 0;
        if (n >= this.#o.config.batch) continue;
        await this.#sleep(this.#o.config.pollMs);
      } catch (error) {
        if (error instanceof LeaseLost) {
          this.#stepDown('lease lost before the position was recorded: the batch is left to the new holder');
          continue;
        }
        const s = error instanceof TurnError ? error.stage : stage;
        this.#m.errors.inc({ stage: s });
        const cause = error instanceof TurnError ? error.cause : error;
        if (cause instanceof CaptureError && cause.code === 'E_CAPTURE_NOT_INSTALLED') {
          if (!this.#notInstalledLogged)
            this.#log.error({ err: formatError(cause) }, 'capture is not installed');
          this.#notInstalledLogged = true;
        } else this.#log.warn({ err: formatError(cause), stage: s }, 'capture turn failed: retrying');
        this.#backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(100, this.#backoffMs * 2));
        await this.#sleep(this.#backoffMs);
      }
    }
  }

  #becomeActive(): void {
    this.#renewedAt = Date.now();
    this.#m.active.set(1);
    this.#log.info(
      { fence: this.#lease.fence, holder: this.#o.holder },
      'capture reader active (lease taken)',
    );
    const every = Math.max(100, Math.floor(this.#o.config.leaseMs / 3));
    this.#renewTimer = setInterval(() => void this.#renew(), every);
    this.#renewTimer.unref();
  }

  async #renew(): Promise<void> {
    if (!this.active) return;
    try {
      if (await this.#lease.commit()) this.#renewedAt = Date.now();
      else this.#stepDown('lease taken by another reader');
    } catch (error) {
      // Redis unreachable: past the lease's own length another reader may hold it by now.
      if (Date.now() - this.#renewedAt >= this.#o.config.leaseMs) {
        this.#lease.forget();
        this.#stepDown(`lease not renewed for ${this.#o.config.leaseMs} ms (${formatError(error)})`);
      }
    }
  }

  #stopRenewing(): void {
    clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  #stepDown(why: string): void {
    this.#lease.forget();
    this.#stopRenewing();
    this.#m.active.set(0);
    this.#log.warn({ why }, 'capture reader on standby');
    void this.#closeListener();
  }

  async #ensureListener(): Promise<void> {
    if (this.#listener !== undefined || Date.now() - this.#listenerAt < 1_000) return;
    this.#listenerAt = Date.now();
    const client = new pg.Client({
      connectionString: this.#o.databaseUrl,
      application_name: 'cachefleet-capture-listen',
    });
    const drop = () => {
      if (this.#listener === client) this.#listener = undefined;
      client.end().catch(() => undefined);
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', () => {
      this.#pending = true;
      this.#wake?.();
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
      this.#listener = client;
    } catch (error) {
      // The poll still covers every change; the next turn tries again.
      this.#log.warn({ err: formatError(error) }, 'capture LISTEN failed: polling only for now');
      drop();
    }
  }

  async #closeListener(): Promise<void> {
    const client = this.#listener;
    this.#listener = undefined;
    await client?.end().catch(() => undefined);
  }

  #sleep(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.#wake = undefined;
        self.#pending = false;
        resolve();
      }
      this.#wake = done;
    });
  }

  /** One turn: read, apply, record, prune. Resolves how many outbox rows it applied. */
  async #turn(): Promise<number> {
    const { batch, coalesceAt, jobAt } = this.#o.config;
    let rows: ReadRow[];
    try {
      rows = (await this.#pool.query<ReadRow>(this.#select, [batch])).rows;
    } catch (error) {
      const cause = isUndefinedTable(error)
        ? new CaptureError('E_CAPTURE_NOT_INSTALLED', undefined, { cause: error })
        : error;
      throw new TurnError('read', cause);
    }
    this.#notInstalledLogged = false;
    this.#lag = rows[0]?.age ?? 0;
    this.#m.lag.set(this.#lag);
    if (rows.length === 0) return 0;
    if (!this.active) throw new LeaseLost();
    const started = performance.now();
    const plan = planBatch(rows, this.#sources, coalesceAt);
    let ids = 0;
    let tags = 0;
    const jobs: string[] = [];
    try {
      for (const p of plan.namespaces) {
        this.#m.images.inc(p.images);
        if (p.whole) {
          must(await this.#o.cache.invalidateNamespace(p.namespace));
          this.#m.invalidations.inc({ kind: 'namespace' });
          continue;
        }
        const { enqueue, keys, redis } = this.#o;
        const { inline, queued } =
          enqueue === undefined || jobAt === 0 || p.tags.length === 0
            ? { inline: p.tags, queued: [] }
            : await splitTags(redis, keys, p.namespace.name, p.tags, jobAt);
        // Awaited before the position is recorded: a reader killed before the queue took the job
        // leaves the rows in the outbox, and the next holder enqueues it again.
        for (let i = 0; i < queued.length && enqueue !== undefined; i += CHUNK) {
          const tags = queued.slice(i, i + CHUNK);
          jobs.push(await this.#enqueueJob(enqueue, { scope: 'tags', namespace: p.namespace.name, tags }));
        }
        for (let i = 0; i < inline.length; i += CHUNK) {
          must(await this.#o.cache.invalidateTags(p.namespace, inline.slice(i, i + CHUNK)));
        }
        for (let i = 0; i < p.ids.length; i += CHUNK) {
          must(await this.#o.cache.delete(p.namespace, ...p.ids.slice(i, i + CHUNK)));
        }
        this.#m.invalidations.inc({ kind: 'tags' }, inline.length);
        this.#m.invalidations.inc({ kind: 'ids' }, p.ids.length);
        ids += p.ids.length;
        tags += inline.length;
      }
    } catch (error) {
      throw new TurnError('apply', error);
    }
    if (plan.unknown > 0)
      this.#log.warn(
        { rows: plan.unknown },
        'outbox rows of a namespace or table these definitions do not declare: skipped',
      );
    let max = this.#pos;
    for (const r of rows) max = Math.max(max, Number(r.pos));
    let held: boolean;
    try {
      held = await this.#lease.commit({ pos: max, at: Date.now(), lag: this.#lag, holder: this.#o.holder });
    } catch (error) {
      throw new TurnError('lease', error);
    }
    if (!held) throw new LeaseLost();
    this.#pos = max;
    this.#renewedAt = Date.now();
    try {
      await this.#pool.query(this.#prune, [rows.map((r) => r.pos)]);
    } catch (error) {
      throw new TurnError('prune', error);
    }
    this.#m.rows.inc(rows.length);
    // One line per turn would be one per commit at a steady trickle: info only for the large or late.
    const big = rows.length >= 1_000 || this.#lag >= 5 || jobs.length > 0;
    this.#log[big ? 'info' : 'debug'](
      {
        rows: rows.length,
        pos: max,
        ids,
        tags,
        jobs,
        lag: this.#lag,
        ms: Math.round(performance.now() - started),
      },
      'capture turn applied',
    );
    return rows.length;
  }

  async #enqueueJob(
    enqueue: (job: CaptureFanOutJob) => Promise<string>,
    job: CaptureFanOutJob,
  ): Promise<string> {
    const id = await enqueue(job);
    this.#m.invalidations.inc({ kind: 'job' });
    this.#log.info(
      { namespace: job.namespace, tags: job.tags.length, jobId: id },
      'capture fan-out enqueued as an invalidate job',
    );
    return id;
  }
}

/** A failed stage of a turn, for the error counter's label. */
class TurnError extends Error {
  constructor(
    readonly stage: 'read' | 'apply' | 'prune' | 'lease',
    cause: unknown,
  ) {
    super(`capture ${stage} failed`, { cause });
  }
}
