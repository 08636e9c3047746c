import { randomUUID } from 'node:crypto';
import { issueMessage } from '@cachefleet/config';
import {
  createRedisClient,
  Downtime,
  type Heartbeat,
  type RedisClient,
  startHeartbeat,
} from '@cachefleet/redis';
import { type JobState, type JobsOptions, Queue } from 'bullmq';
import type { z } from 'zod';
import {
  dedupeId,
  isJobName,
  JOB_NAMES,
  JOBS,
  type JobData,
  type JobName,
  type PayloadInputOf,
  type PayloadOf,
  QUEUE_NAMES,
  type QueueName,
} from './catalogue.js';
import type { QueueConfig } from './config.js';
import { queueDown, withDeadline } from './deadline.js';
import { JobError } from './errors.js';
import { isJobId } from './job-ids.js';
import { SentinelMasterCheck } from './master-check.js';
import { type NamespaceRule, payloadSchemaWith } from './namespaces.js';
import { queueTelemetry } from './telemetry.js';

/**
 * Validates a payload against the catalogue (and `schema`, the catalogue's with the deployment's
 * namespaces: `payloadSchemaWith`); a bad one throws E_JOB_INVALID_PAYLOAD naming the field.
 */
export function parsePayload<N extends JobName>(
  name: N,
  payload: unknown,
  schema: z.ZodType = JOBS[name].payload,
): PayloadOf<N> {
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    const message = `${name}: ${issueMessage(parsed.error, { root: '(payload)' })}`;
    throw new JobError('E_JOB_INVALID_PAYLOAD', message, { cause: parsed.error });
  }
  // Indexing JOBS by a generic name gives the union of every schema; the entry is N's.
  return parsed.data as PayloadOf<N>;
}

/** BullMQ options of a job, from its catalogue entry. */
export function jobOptions(name: JobName, payload: unknown, jobId: string): JobsOptions {
  const policy = JOBS[name];
  return {
    jobId,
    attempts: policy.attempts,
    backoff: policy.backoff,
    removeOnComplete: policy.removeOnComplete,
    removeOnFail: policy.removeOnFail,
    // The worker removes the key when the job starts: only *pending* identical jobs are one, so a
    // caller always gets a job that begins after its request (the one running may be past its key).
    ...(policy.dedupe === 'payload' ? { deduplication: { id: dedupeId(name, payload) } } : {}),
  };
}

export interface Enqueued {
  readonly id: string;
  readonly queue: QueueName;
  readonly name: JobName;
  /** An identical job was already waiting: `id` is that job. */
  readonly deduplicated: boolean;
}

export interface EnqueueOptions {
  /**
   * Keep trying this long while the queue Redis cannot take or confirm the job (down, failing
   * over), ms; then E_JOB_QUEUE_UNAVAILABLE. 0 (default): one attempt, bounded only by the caller.
   */
  readonly retryMs?: number;
  /** With `retryMs`: the bound of one attempt (default 1,500 ms). */
  readonly attemptMs?: number;
  /** With `retryMs`: called before each new attempt, with why the last one failed. */
  readonly onRetry?: (reason: string, attempt: number) => void;
}

export interface JobView {
  readonly id: string;
  readonly queue: QueueName;
  readonly name: string;
  readonly state: JobState | 'unknown';
  readonly progress: unknown;
  readonly payload: unknown;
  readonly attemptsMade: number;
  readonly result: unknown;
  readonly failedReason: string | undefined;
  readonly createdAt: number;
  readonly finishedAt: number | undefined;
}

export interface JobClientOptions {
  /**
   * The namespaces payloads may name, with their id schemas (a definitions module's namespaces):
   * a payload naming another, or an id its schema refuses, is refused here. Without them only the
   * catalogue's rules apply, and the worker is the one to find a bad id (it skips and reports it).
   */
  readonly namespaces?: readonly NamespaceRule[];
  /** A queue connection to share; by default the client makes its own (and closes it). */
  readonly connection?: RedisClient;
}

/** The replicas a master's ROLE reply lists (those connected now); 0 for any other reply. */
function connectedReplicas(role: unknown): number {
  return Array.isArray(role) && role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
}

/** How long an enqueue waits for its replicas (WAIT); within the API's queue budget (1.5 s). */
const REPLICA_WAIT_MS = 1_000;

/** When retrying an enqueue: the bound of one attempt (a WAIT of REPLICA_WAIT_MS fits), ms. */
const ATTEMPT_MS = 1_500;

/** When retrying an enqueue: the pause between attempts unless the connection is ready sooner, ms. */
const RETRY_PAUSE_MS = 250;

/** Replies of a server that cannot take writes *now*: a failover or a load under way. */
const TRANSIENT_REPLY = /^(READONLY|LOADING|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|BUSY|NOREPLICAS)\b/;

/**
 * An enqueue attempt worth making again: the queue Redis could not take or confirm it (a JobError
 * E_JOB_QUEUE_UNAVAILABLE: down, too slow, not replicated), the connection failed, or the server
 * answered that it cannot take writes now. Any other reply error (NOPERM, WRONGTYPE, …) is final.
 */
function retryable(error: unknown): boolean {
  if (error instanceof JobError) return error.code === 'E_JOB_QUEUE_UNAVAILABLE';
  if (!(error instanceof Error)) return false;
  // ioredis exports ReplyError untyped; redis-errors gives it this name.
  return error.name === 'ReplyError' ? TRANSIENT_REPLY.test(error.message) : true;
}

/** The queue connection is PINGed this often (and must answer within as long), ms. */
const QUEUE_HEARTBEAT_MS = 2_000;

/**
 * The producer side: API pods, the CLI and tests enqueue through it. Every payload is validated
 * here (and again by the worker), so a bad request never becomes a job.
 */
export class JobClient {
  readonly connection: RedisClient;
  readonly prefix: string;
  readonly #queues = new Map<QueueName, Queue>();
  readonly #ownsConnection: boolean;
  readonly #downtime: Downtime;
  readonly #heartbeat: Heartbeat;
  readonly #waitReplicas: number;
  readonly #masterCheck: SentinelMasterCheck | undefined;
  /** BullMQ's tracing, chosen once: present only when a tracer provider is registered (telemetry.ts). */
  readonly #telemetry = queueTelemetry();
  /** Per job name, the payload schema with the namespaces' rules (built once), if given. */
  readonly #schemas: Partial<Record<JobName, z.ZodType>> = {};

  constructor(config: QueueConfig, options: JobClientOptions = {}) {
    const { connection, namespaces } = options;
    if (namespaces !== undefined)
      for (const name of JOB_NAMES) this.#schemas[name] = payloadSchemaWith(name, namespaces);
    this.prefix = config.prefix;
    this.#ownsConnection = connection === undefined;
    this.connection =
      connection ?? createRedisClient(config.redis, { role: 'queue', connectionName: 'cachefleet:jobs' });
    this.#downtime = new Downtime(this.connection);
    // A silent partition would leave the connection `ready` and every call hanging: PINGed, it is
    // dropped and counts as down (readiness) until Redis answers again.
    this.#heartbeat = startHeartbeat(this.connection, { intervalMs: QUEUE_HEARTBEAT_MS });
    this.#waitReplicas = config.waitReplicas ?? 0;
    this.#masterCheck =
      config.redis.mode === 'sentinel' && this.#waitReplicas > 0
        ? new SentinelMasterCheck(config.redis)
        : undefined;
  }

  /** How long the queue connection has been down (0 while it is ready), ms: for readiness probes. */
  get downMs(): number {
    return this.#downtime.ms;
  }

  queue(name: QueueName): Queue {
    let q = this.#queues.get(name);
    if (q === undefined) {
      q = new Queue(name, { connection: this.connection, prefix: this.prefix, ...this.#telemetry });
      q.on('error', () => {}); // connection errors: ioredis reconnects; calls reject on their own
      this.#queues.set(name, q);
    }
    return q;
  }

  /**
   * What `enqueue` checks, without enqueueing (no I/O): the job name, the payload against the
   * catalogue and the namespaces. Throws E_JOB_UNKNOWN, E_JOB_INTERNAL or E_JOB_INVALID_PAYLOAD.
   */
  check<N extends JobName>(name: N, payload: PayloadInputOf<N>): PayloadOf<N> {
    if (!isJobName(name)) throw new JobError('E_JOB_UNKNOWN', `no job named ${JSON.stringify(name)}`);
    if (JOBS[name].internal)
      throw new JobError('E_JOB_INTERNAL', `${name} jobs are added by other jobs only`);
    return parsePayload(name, payload, this.#schemas[name]);
  }

  /**
   * Validates and adds a job. By default one attempt, as long as the queue connection takes (its
   * offline queue waits for Redis). With `retryMs`, each attempt is bounded by `attemptMs` and an
   * attempt the queue Redis could not take or confirm — down, reconnecting, a failover under way
   * (READONLY, not replicated, another master) — is made again until `retryMs` has passed, then
   * E_JOB_QUEUE_UNAVAILABLE. Every attempt adds under the same job id: one that did land (or is
   * still in the offline queue) is found, not added twice. Other errors (NOPERM, …) end it at once.
   */
  async enqueue<N extends JobName>(
    name: N,
    payload: PayloadInputOf<N>,
    options: EnqueueOptions = {},
  ): Promise<Enqueued> {
    const parsed = this.check(name, payload);
    const policy = JOBS[name];
    const jobId = randomUUID();
    const data: JobData = { payload: parsed };
    const add = () =>
      this.replicated(() => this.queue(policy.queue).add(name, data, jobOptions(name, parsed, jobId)));
    const job = await this.#retrying(add, options);
    const id = job.id ?? jobId;
    return { id, queue: policy.queue, name, deduplicated: id !== jobId };
  }

  async #retrying<T>(attempt: () => Promise<T>, options: EnqueueOptions): Promise<T> {
    const retryMs = options.retryMs ?? 0;
    if (retryMs <= 0) return attempt();
    const attemptMs = options.attemptMs ?? ATTEMPT_MS;
    const deadline = performance.now() + retryMs;
    for (let tries = 1; ; tries++) {
      try {
        if (queueDown(this.connection.status))
          throw new JobError('E_JOB_QUEUE_UNAVAILABLE', 'the queue Redis is not connected');
        return await withDeadline(attempt(), Math.min(attemptMs, Math.max(1, deadline - performance.now())));
      } catch (error) {
        const left = deadline - performance.now();
        if (!retryable(error)) throw error;
        if (left <= 0) {
          const why = error instanceof Error ? error.message : String(error);
          throw new JobError(
            'E_JOB_QUEUE_UNAVAILABLE',
            `the queue Redis did not take the job within ${retryMs} ms (${tries} attempts; last: ${why})`,
            { cause: error },
          );
        }
        options.onRetry?.(error instanceof Error ? error.message : String(error), tries + 1);
        await this.#readyOr(Math.min(left, RETRY_PAUSE_MS));
      }
    }
  }

  /** Resolves when the queue connection is (again) ready, or after `ms`. */
  #readyOr(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.connection.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.connection.once('ready', done);
    });
  }

  /**
   * Runs `add` (queue writes over this client's connection) and resolves only once they are
   * replicated as `enqueue` requires: the enqueue itself, and the jobs a worker adds (a pattern
   * invalidation's slices), which a failover must not lose either.
   */
  async replicated<T>(add: () => Promise<T>): Promise<T> {
    const added = await add();
    // The socket that answered the add (taken after it: before the first command there is none);
    // WAIT must come back over the same one, or the add may have gone to a server since replaced.
    await this.#replicated(SentinelMasterCheck.socketOf(this.connection));
    return added;
  }

  /**
   * Redis replicates asynchronously: a job the master took can be lost in a failover (SIGKILL before
   * it reached a replica; or a stopped master that took it after waking, before being demoted — seen
   * by the chaos runs, issue 17). With waitReplicas, an enqueue is acknowledged only once that many
   * replicas have it (WAIT), over the socket that took it, and — on Sentinel — a majority of the
   * sentinels still name that server master; otherwise it fails E_JOB_QUEUE_UNAVAILABLE (it may
   * still run). WAIT asks for every replica connected now (ROLE), not only the minimum: a second
   * failover soon after the first may promote any of them, and one that had not confirmed the job
   * would lose it (the chaos runs' last lost job). The minimum still decides after the time-out, so
   * a lagging replica slows enqueues by at most REPLICA_WAIT_MS and a missing one not at all —
   * except, on Sentinel, a replica the sentinels see up (SentinelMasterCheck.replicasUp): right after
   * a failover it may not be linked to the new master yet, and a second failover may promote it, so
   * until it confirms the job the enqueue is not acknowledged (retried with `retryMs`).
   */
  async #replicated(socket: unknown): Promise<void> {
    const n = this.#waitReplicas;
    if (n === 0) return;
    const unconfirmed = (why: string) =>
      new JobError(
        'E_JOB_QUEUE_UNAVAILABLE',
        `the job is not confirmed (${why}): it may be lost in a failover, or run`,
      );
    // A user without ROLE (an ACL of its own) still gets the minimum: WAIT n, as before.
    const [role, up] = await Promise.all([
      this.connection.call('ROLE').catch(() => undefined),
      this.#masterCheck?.replicasUp() ?? 0,
    ]);
    const acked = await this.connection.call(
      'WAIT',
      Math.max(n, connectedReplicas(role), up),
      REPLICA_WAIT_MS,
    );
    if (typeof acked !== 'number' || acked < n)
      throw unconfirmed(`no ${n} replica(s) within ${REPLICA_WAIT_MS} ms`);
    if (acked < up) throw unconfirmed(`${acked} of the ${up} replicas the sentinels see up`);
    if (SentinelMasterCheck.socketOf(this.connection) !== socket) throw unconfirmed('the connection changed');
    if (this.#masterCheck && !(await this.#masterCheck.confirms(this.connection)))
      throw unconfirmed('the sentinels name another master');
  }

  /** A job by id, looked up in every queue (ids are unique across them). */
  async job(id: string): Promise<JobView | undefined> {
    for (const queueName of QUEUE_NAMES) {
      const view = await this.jobIn(queueName, id);
      if (view !== undefined) return view;
    }
    return undefined;
  }

  /** A job by id in a queue known to hold it; an id no job can have (`isJobId`) is none. */
  async jobIn(queueName: QueueName, id: string): Promise<JobView | undefined> {
    if (!isJobId(id)) return undefined;
    const queue = this.queue(queueName);
    // State first, then the job: BullMQ writes a job's result and moves it in one script, so a
    // final state read first always comes with its result or failure reason.
    const state = await queue.getJobState(id);
    if (state === 'unknown') return undefined;
    const job = await queue.getJob(id);
    if (job === undefined) return undefined;
    const data = job.data as Partial<JobData>;
    return {
      id,
      queue: queueName,
      name: job.name,
      state,
      progress: job.progress,
      payload: data.payload,
      attemptsMade: job.attemptsMade,
      result: job.returnvalue,
      failedReason: job.failedReason || undefined,
      createdAt: job.timestamp,
      finishedAt: job.finishedOn,
    };
  }

  async close(): Promise<void> {
    this.#heartbeat.stop();
    await Promise.all([...this.#queues.values()].map((q) => q.close()));
    this.#queues.clear();
    this.#masterCheck?.close();
    if (this.#ownsConnection) await this.connection.quit().catch(() => undefined);
  }
}
