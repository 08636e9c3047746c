import { type Cache, CacheError, type Namespace, type Result } from '@cachefleet/tiered-cache';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { BackupConfig } from '../backup/config.js';
import type { JobData, JobName, PayloadOf, ResultOf, StateOf } from '../catalogue.js';
import type { JobClient } from '../client.js';
import { JobError } from '../errors.js';
import type { TuneConfig } from '../tune/config.js';
import type { Decision } from '../tune/rules.js';

/** What a worker was given to serve: the namespace definitions (the same module API pods import). */
export interface Definitions {
  readonly namespaces: readonly Namespace<unknown>[];
  /** Ids of each namespace warmed by a `critical` warm (e.g. when the API starts). */
  readonly critical: Readonly<Record<string, readonly string[]>>;
  close(): Promise<void>;
}

/** Everything a handler of job `N` may touch, typed from its catalogue entry; built per job by the runtime. */
export interface JobContext<N extends JobName> {
  readonly job: Job<JobData>;
  /** Validated against the catalogue before the handler runs. */
  readonly payload: PayloadOf<N>;
  /** The cursor saved by an earlier attempt (undefined on the first, or if it no longer parses). */
  readonly state: StateOf<N> | undefined;
  /** Aborts at the job's timeout or when the worker shuts down: save and stop at the next batch. */
  readonly signal: AbortSignal;
  readonly token: string | undefined;
  readonly cache: Cache;
  readonly jobs: JobClient;
  readonly definitions: Definitions;
  /** Backup settings (BACKUP_*), when the worker was given them. */
  readonly backups: BackupConfig | undefined;
  /** The tuner's thresholds (TUNE_*), and where its decisions are counted. */
  readonly tune: TuneDeps;
  readonly log: Logger;
  namespace(name: string): Namespace<unknown>;
  /** Saves the cursor in the job's data, so the next attempt (on any worker) continues from it. */
  save(state: StateOf<N>): Promise<void>;
  progress(progress: Record<string, number | string>): Promise<void>;
}

export interface TuneDeps {
  readonly config: TuneConfig;
  /** Counts a decision in `cachefleet_tune_decisions_total`. */
  counted(decision: Decision, mode: 'applied' | 'dry-run'): void;
}

/** A job kind's handler: its payload, state and result are the catalogue's. */
export type JobHandler<N extends JobName> = (ctx: JobContext<N>) => Promise<ResultOf<N>>;

/** One handler per job of the catalogue (as trigger.dev's WorkerCatalog): a kind without one does not compile. */
export type JobHandlers = { readonly [N in JobName]: JobHandler<N> };

/** Thrown at a batch boundary once the attempt was asked to stop (its cursor is saved by then). */
export class AbortedError extends JobError {
  constructor(readonly reason: 'timeout' | 'shutdown' | 'cancelled') {
    super('E_JOB_ABORTED', `the attempt was stopped: ${reason}`);
  }
}

/** Throws AbortedError if the job was asked to stop; call between batches, after saving. */
export function checkpoint(signal: AbortSignal): void {
  if (!signal.aborted) return;
  const reason = signal.reason;
  throw reason instanceof AbortedError ? reason : new AbortedError('cancelled');
}

/** Unwraps a library Result inside a job: an error fails the attempt (BullMQ retries it). */
export function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

export function namespaceLookup(definitions: Definitions): (name: string) => Namespace<unknown> {
  const byName = new Map(definitions.namespaces.map((ns) => [ns.name, ns]));
  return (name) => {
    const ns = byName.get(name);
    if (ns === undefined) {
      throw new JobError(
        'E_JOB_UNKNOWN_NAMESPACE',
        `no namespace ${JSON.stringify(name)} (known: ${[...byName.keys()].join(', ') || 'none'})`,
      );
    }
    return ns;
  };
}

/**
 * The cache masters a walk should go on with: undefined when they are the ones it saved; else the
 * masters known now (a failover, or a worker that knows them under other names), over which the
 * walk starts again (its saved cursor means nothing on them; what it did again is harmless).
 * None known yet: E_CACHE_L2_UNAVAILABLE, and the job is retried.
 */
export function changedMasters(ctx: JobContext<JobName>, saved: readonly string[]): string[] | undefined {
  const now = must(ctx.cache.fleet.masters());
  if (now.length === saved.length && saved.every((m) => now.includes(m))) return undefined;
  if (now.length === 0)
    throw new CacheError('E_CACHE_L2_UNAVAILABLE', 'no cache master known yet (a failover?): retried');
  return now;
}

/**
 * A long walk's cursor and progress, written at most every `everyMs` while it runs (and whenever
 * `flush` is called: at a walk's end, before a pause or an abort). After every step a walk marks
 * its state `changed` and writes only when `due`: a save and a progress report are two BullMQ round
 * trips, which after every step held the next one back. A worker killed outright leaves a cursor up
 * to `everyMs` old: the steps done since are done again, which the walks' fenced writes allow.
 */
export class PeriodicSave {
  #saved = performance.now();
  #unsaved = false;
  readonly #everyMs: number;
  readonly #write: () => Promise<void>;

  constructor(everyMs: number, write: () => Promise<void>) {
    this.#everyMs = everyMs;
    this.#write = write;
  }

  changed(): void {
    this.#unsaved = true;
  }

  get due(): boolean {
    return performance.now() - this.#saved >= this.#everyMs;
  }

  async flush(): Promise<void> {
    this.#saved = performance.now();
    if (!this.#unsaved) return;
    this.#unsaved = false;
    await this.#write();
  }
}
