import { formatError, isCodedError, issueMessage } from '@cachefleet/config';
import type { Cache } from '@cachefleet/tiered-cache';
import { DelayedError, type Job, UnrecoverableError, WaitingChildrenError, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { BackupConfig } from './backup/config.js';
import {
  DEFAULT_CONCURRENCY,
  isJobName,
  JOB_NAMES,
  JOBS,
  type JobData,
  type JobName,
  type PayloadOf,
  QUEUE_NAMES,
  type QueueName,
  type ResultOf,
  type StateOf,
} from './catalogue.js';
import { type JobClient, parsePayload } from './client.js';
import { isJobError, JobError } from './errors.js';
import {
  AbortedError,
  type Definitions,
  type JobContext,
  namespaceLookup,
  type TuneDeps,
} from './handlers/context.js';
import { HANDLERS } from './handlers/index.js';
import { INVALID_KIND, JOB_KINDS, jobKind } from './job-kinds.js';
import { queueTelemetry } from './telemetry.js';
import { loadTuneConfig, type TuneConfig } from './tune/config.js';

export interface QueueConcurrency {
  readonly queue: QueueName;
  readonly concurrency: number;
}

export interface RuntimeOptions {
  readonly queues: readonly QueueConcurrency[];
  /** BullMQ lock: a worker that stops renewing it (killed) loses its jobs after this long, ms. */
  readonly lockDurationMs: number;
  /** How often workers look for jobs whose lock expired, ms. */
  readonly stalledIntervalMs: number;
  /** SIGTERM: time to finish or hand back running jobs before closing by force, ms. */
  readonly shutdownMs: number;
}

export interface RuntimeDeps {
  readonly cache: Cache;
  readonly jobs: JobClient;
  readonly definitions: Definitions;
  readonly logger: Logger;
  readonly metrics: Registry;
  /** Backup settings; without them backup and restore jobs fail (E_JOB_CONFIG). */
  readonly backups?: BackupConfig;
  /** The tuner's settings (TUNE_*; the defaults without them). */
  readonly tune?: TuneConfig;
}

/** One attempt of a job as the processor received it, before its name is known to be ours. */
interface Attempt {
  readonly queue: QueueName;
  readonly job: Job<JobData>;
  readonly token: string | undefined;
  /** BullMQ's: aborted when the job is cancelled. */
  readonly signal: AbortSignal | undefined;
  readonly started: number;
  readonly log: Logger;
  /** One sample of `cachefleet_job_duration_seconds` for this attempt, ended now. */
  observe(kind: string, status: string): void;
}

/**
 * The cursor an earlier attempt saved, checked against the catalogue: one that no longer parses
 * (saved by another version) is dropped and the job starts over, which every handler allows.
 */
function savedState<N extends JobName>(name: N, saved: unknown, log: Logger): StateOf<N> | undefined {
  if (saved === undefined || saved === null) return undefined;
  const parsed = JOBS[name].state.safeParse(saved);
  if (parsed.success) return parsed.data as StateOf<N>; // the entry is N's (see parsePayload)
  log.warn(
    { err: issueMessage(parsed.error, { root: '(state)' }) },
    'saved cursor unreadable: starting over',
  );
  return undefined;
}

/** The cache's refusals of an input: the same payload is refused again on every attempt. */
const REFUSED_INPUT: ReadonlySet<string> = new Set(['E_CACHE_INVALID_ID', 'E_CACHE_INVALID_EVENT']);

/**
 * Whether no retry can mend the error: a catalogue rule broken (an unknown namespace, no valid
 * id) or an input the cache refuses. An aborted attempt (timeout, cancel) is not one: it continues
 * from its cursor on the next; nor is a fault of Redis or a loader.
 */
function isPermanent(error: unknown): boolean {
  if (error instanceof AbortedError) return false;
  if (isJobError(error) && error.code === 'E_JOB_BACKUP_BUSY') return false;
  return isJobError(error) || (isCodedError(error) && REFUSED_INPUT.has(error.code));
}

/**
 * What BullMQ is handed to fail an attempt: it keeps the message as the job's failedReason (read
 * by the API and the CLI) and the stack in its stacktrace (what the dashboard shows), so a coded
 * error's code goes in front of both, once. A permanent failure is an UnrecoverableError (no
 * retries). The trace's frames stay the original's: where it was thrown, not this function.
 */
function failureOf(error: unknown, permanent: boolean): unknown {
  if (!permanent && !isCodedError(error)) return error;
  const failure = permanent
    ? new UnrecoverableError(formatError(error))
    : new Error(formatError(error), { cause: error });
  if (error instanceof Error && error.stack !== undefined) {
    const header = `${error.name}: ${error.message}`;
    if (error.stack.startsWith(header))
      failure.stack = `${failure.name}: ${failure.message}${error.stack.slice(header.length)}`;
  }
  return failure;
}

/**
 * The worker side: one BullMQ Worker per served queue with its own concurrency, a processor that
 * validates every job against the catalogue before touching anything, cooperative timeouts, and a
 * graceful shutdown that hands running jobs back rather than losing them.
 */
export class FleetRuntime {
  readonly #deps: RuntimeDeps;
  readonly #opts: RuntimeOptions;
  readonly #workers: Worker[] = [];
  /** BullMQ's tracing, chosen once: present only when a tracer provider is registered (telemetry.ts). */
  readonly #telemetry = queueTelemetry();
  /** Aborted at shutdown: handlers save their cursor and the job is handed back. */
  readonly #shutdown = new AbortController();
  readonly #namespace: (name: string) => ReturnType<ReturnType<typeof namespaceLookup>>;
  readonly #duration: Histogram<'queue' | 'name' | 'kind' | 'status'>;
  readonly #failures: Counter<'queue' | 'name' | 'kind' | 'reason'>;
  readonly #stalled: Counter<'queue'>;
  readonly #tune: TuneDeps;
  #closing: Promise<void> | undefined;

  constructor(deps: RuntimeDeps, opts: RuntimeOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.#namespace = namespaceLookup(deps.definitions);
    const registers = [deps.metrics];
    this.#duration = new Histogram({
      name: 'cachefleet_job_duration_seconds',
      help: 'Time a worker spent on one attempt of a job, by job name, kind and outcome',
      labelNames: ['queue', 'name', 'kind', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
      registers,
    });
    this.#failures = new Counter({
      name: 'cachefleet_job_failures_total',
      help: 'Failed job attempts by job name, kind and reason (error, invalid, timeout, cancelled)',
      labelNames: ['queue', 'name', 'kind', 'reason'],
      registers,
    });
    this.#stalled = new Counter({
      name: 'cachefleet_job_stalled_total',
      help: "Jobs this worker's stalled checks found without a live lock (their worker died or hung) and moved back to wait, or failed past maxStalledCount",
      labelNames: ['queue'],
      registers,
    });
    const decisions = new Counter({
      name: 'cachefleet_tune_decisions_total',
      help: 'Decisions of the tune job by rule and action (recommend: scale Redis, no action) and mode (applied, dry-run)',
      labelNames: ['rule', 'action', 'mode'],
      registers,
    });
    this.#tune = {
      config: deps.tune ?? loadTuneConfig({}),
      counted: (d, mode) => decisions.inc({ rule: d.rule, action: d.action, mode }),
    };
  }

  start(): void {
    for (const { queue } of this.#opts.queues) this.#zeroSeries(queue);
    for (const { queue, concurrency } of this.#opts.queues) {
      const worker = new Worker<JobData>(
        queue,
        (job, token, signal) => this.#process(queue, job, token, signal),
        {
          connection: this.#deps.jobs.connection,
          prefix: this.#deps.jobs.prefix,
          concurrency,
          lockDuration: this.#opts.lockDurationMs,
          stalledInterval: this.#opts.stalledIntervalMs,
          maxStalledCount: 3,
          ...this.#telemetry,
        },
      );
      worker.on('error', (error) => this.#deps.logger.warn({ queue, err: error.message }, 'worker error'));
      // A worker cut from Redis past its lock finds, once back, that another took its jobs over:
      // stop them at their next checkpoint instead of doing the rest of the work a second time.
      worker.on('lockRenewalFailed', (jobIds) => {
        for (const jobId of jobIds) {
          this.#deps.logger.warn({ queue, jobId }, 'job lock lost: attempt cancelled');
          worker.cancelJob(jobId, 'lock lost');
        }
      });
      worker.on('stalled', (jobId) => {
        this.#stalled.inc({ queue });
        this.#deps.logger.warn({ queue, jobId }, 'job stalled: handed to another attempt');
      });
      this.#workers.push(worker);
    }
  }

  /** Every worker is connected and taking jobs. */
  get ready(): boolean {
    return (
      this.#closing === undefined && this.#workers.length > 0 && this.#workers.every((w) => w.isRunning())
    );
  }

  async #process(
    queue: QueueName,
    job: Job<JobData>,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const started = performance.now();
    const name = job.name;
    const attempt: Attempt = {
      queue,
      job,
      token,
      signal,
      started,
      log: this.#deps.logger.child({ jobId: job.id, queue, job: name, attempt: job.attemptsMade + 1 }),
      observe: (kind, status) =>
        this.#duration.observe({ queue, name, kind, status }, (performance.now() - started) / 1000),
    };
    if (!isJobName(name) || JOBS[name].queue !== queue) {
      // Any name can be added to a queue: the label says `unknown`, never the name (unbounded).
      this.#failures.inc({ queue, name: 'unknown', kind: INVALID_KIND, reason: 'invalid' });
      const error = new JobError('E_JOB_UNKNOWN', `no job named ${JSON.stringify(name)} on queue ${queue}`);
      throw failureOf(error, true);
    }
    return this.#run(name, attempt);
  }

  /**
   * Every series a failure or a finished attempt of this queue's jobs moves, created at 0 when the
   * worker starts (the kinds are a fixed set: JOB_KINDS). Prometheus' rate() and increase() take a
   * series' first sample as its start: a counter born at 1 would hide the first failure of a job
   * kind in a process's life from CachefleetJobsFailing.
   */
  #zeroSeries(queue: QueueName): void {
    for (const name of JOB_NAMES) {
      if (JOBS[name].queue !== queue) continue;
      for (const kind of JOB_KINDS[name]) {
        for (const reason of ['error', 'invalid', 'timeout', 'cancelled'] as const)
          this.#failures.inc({ queue, name, kind, reason }, 0);
        for (const status of ['completed', 'failed'] as const)
          this.#duration.zero({ queue, name, kind, status });
      }
    }
  }

  /** One attempt of job `name`, typed from here on by its catalogue entry. */
  async #run<N extends JobName>(name: N, attempt: Attempt): Promise<ResultOf<N>> {
    const { queue, job, token, log } = attempt;
    let payload: PayloadOf<N>;
    try {
      payload = parsePayload(name, job.data?.payload);
    } catch (error) {
      this.#failures.inc({ queue, name, kind: INVALID_KIND, reason: 'invalid' });
      log.warn({ err: formatError(error) }, 'job refused: invalid payload');
      throw failureOf(error, true);
    }
    const kind = jobKind(name, payload);
    const observe = (status: string) => attempt.observe(kind, status);
    const policy = JOBS[name];
    if (policy.dedupe === 'payload' && job.attemptsMade === 0) await job.removeDeduplicationKey();
    const controller = new AbortController();
    const abort = (reason: AbortedError) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const timer = setTimeout(() => abort(new AbortedError('timeout')), policy.timeoutMs);
    const onShutdown = () => abort(new AbortedError('shutdown'));
    const onCancel = () => abort(new AbortedError('cancelled'));
    this.#shutdown.signal.addEventListener('abort', onShutdown);
    attempt.signal?.addEventListener('abort', onCancel);
    const ctx: JobContext<N> = {
      job,
      payload,
      state: savedState(name, job.data?.state, log),
      signal: controller.signal,
      token,
      cache: this.#deps.cache,
      jobs: this.#deps.jobs,
      definitions: this.#deps.definitions,
      backups: this.#deps.backups,
      tune: this.#tune,
      log,
      namespace: this.#namespace,
      save: async (state) => {
        await job.updateData({ payload: job.data.payload, state });
      },
      progress: (p) => job.updateProgress(p),
    };
    try {
      const result = await HANDLERS[name](ctx);
      observe('completed');
      log.info({ result, ms: Math.round(performance.now() - attempt.started) }, 'job completed');
      return result;
    } catch (error) {
      if (error instanceof WaitingChildrenError) {
        observe('waiting-children');
        throw error;
      }
      if (error instanceof AbortedError && error.reason === 'shutdown' && token !== undefined) {
        // Hand the job back now (its cursor is saved) instead of waiting for its lock to expire.
        observe('handed-back');
        log.info('worker shutting down: job handed back');
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      const permanent = isPermanent(error);
      const reason = error instanceof AbortedError ? error.reason : permanent ? 'invalid' : 'error';
      this.#failures.inc({ queue, name, kind, reason });
      observe('failed');
      log.warn({ err: formatError(error), reason }, 'job attempt failed');
      throw failureOf(error, permanent);
    } finally {
      clearTimeout(timer);
      this.#shutdown.signal.removeEventListener('abort', onShutdown);
      attempt.signal?.removeEventListener('abort', onCancel);
    }
  }

  /**
   * Graceful shutdown: stop taking jobs; let running ones finish for half of `shutdownMs`; then ask
   * them to stop at their next batch (they save their cursor and are handed back); past
   * `shutdownMs`, close by force (their locks expire and another worker takes them over).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closing = Promise.all(this.#workers.map((w) => w.close()));
      const half = this.#opts.shutdownMs / 2;
      if (await settlesWithin(closing, half)) return;
      this.#deps.logger.info('shutdown: asking running jobs to hand back');
      this.#shutdown.abort(new AbortedError('shutdown'));
      if (await settlesWithin(closing, half)) return;
      this.#deps.logger.warn('shutdown deadline passed: closing by force');
      // BullMQ's forced close has been seen to wait forever on a connection that was reconnecting
      // (the queue Redis restarted just before): a shutdown must end, so it is bounded too; the
      // connections left are dropped with the process (jobs' locks expire: another worker takes them).
      const forced = Promise.all(this.#workers.map((w) => w.close(true)));
      if (!(await settlesWithin(forced, half)))
        this.#deps.logger.error('shutdown: BullMQ workers did not close; leaving their connections behind');
    })();
    return this.#closing;
  }
}

async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = p.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([done, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every queue at its default concurrency: what a worker serves unless told otherwise. */
export const DEFAULT_QUEUE_LIST = QUEUE_NAMES.map((q) => `${q}:${DEFAULT_CONCURRENCY[q]}`).join(',');

/** `warm:2,invalidate:4` or `warm,invalidate` (concurrency `fallback`) → per-queue concurrency. */
export function parseQueueList(spec: string, fallback = 1): QueueConcurrency[] {
  const out: QueueConcurrency[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [name, n] = part.split(':');
    if (!QUEUE_NAMES.includes(name as QueueName)) {
      throw new JobError(
        'E_JOB_CONFIG',
        `unknown queue ${JSON.stringify(name)} (queues: ${QUEUE_NAMES.join(', ')})`,
      );
    }
    const concurrency = n === undefined ? fallback : Number(n);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
      throw new JobError(
        'E_JOB_CONFIG',
        `concurrency of ${name} must be an integer 1–256, got ${JSON.stringify(n)}`,
      );
    }
    if (out.some((q) => q.queue === name)) throw new JobError('E_JOB_CONFIG', `queue ${name} listed twice`);
    out.push({ queue: name as QueueName, concurrency });
  }
  if (out.length === 0) throw new JobError('E_JOB_CONFIG', 'no queues to serve');
  return out;
}
