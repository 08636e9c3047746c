import { boolishSchema, type Env, intSchema, parseEnv } from '@cachefleet/config';
import { z } from 'zod';
import {
  canonicalJson,
  isJobName,
  JOBS,
  type JobName,
  type PayloadInputOf,
  QUEUE_NAMES,
  type QueueName,
} from './catalogue.js';
import { type JobClient, jobOptions, parsePayload } from './client.js';
import { queueDown } from './deadline.js';
import { JobError } from './errors.js';

/**
 * Recurring jobs as configuration (REQUIREMENTS C5). Each is a BullMQ job scheduler: every replica
 * upserts the same id at start, and BullMQ makes one job per tick of an id however many replicas do.
 */
export interface Schedule {
  /** Scheduler id; ours start with `cachefleet-` so that stale ones can be told apart and removed. */
  readonly id: string;
  readonly name: JobName;
  readonly payload: unknown;
  /** Cron (5 or 6 fields, with seconds first), evaluated in UTC; or `every` ms. */
  readonly pattern?: string;
  readonly every?: number;
}

export const SCHEDULE_PREFIX = 'cachefleet-';

/** A recurring job of the deployment, its cron read from `variable`. */
export interface ScheduledJob<N extends JobName = JobName> {
  readonly variable: string;
  /** Scheduler id, after SCHEDULE_PREFIX. */
  readonly id: string;
  readonly name: N;
  readonly payload: PayloadInputOf<N>;
  /** Default cron (UTC). */
  readonly cron: string;
  /** What it does and when by default, for the help text. */
  readonly what: string;
}

function scheduled<N extends JobName>(job: ScheduledJob<N>): ScheduledJob {
  return job;
}

/** The recurring jobs: a new one (backup every 6 h, tuning every minute) is one more line. */
export const SCHEDULED: readonly ScheduledJob[] = [
  scheduled({
    variable: 'SCHEDULE_WARM_ALL',
    id: 'warm-all',
    name: 'warm',
    payload: { type: 'all' },
    cron: '0 2 * * *',
    what: 'the full warm (daily 02:00)',
  }),
  scheduled({
    variable: 'SCHEDULE_WARM_HOT',
    id: 'warm-hot',
    name: 'warm',
    payload: { type: 'hot' },
    cron: '0 */6 * * *',
    what: 'the hot warm (every 6 h)',
  }),
  scheduled({
    variable: 'SCHEDULE_SWEEP',
    id: 'sweep',
    name: 'sweep',
    payload: {},
    cron: '30 3 * * *',
    what: 'the sweep of unreachable versions and generations (daily 03:30)',
  }),
  scheduled({
    variable: 'SCHEDULE_BACKUP',
    id: 'backup',
    name: 'backup',
    payload: {},
    cron: '15 */6 * * *',
    what: 'the backup of every namespace (every 6 h, at :15)',
  }),
  scheduled({
    variable: 'SCHEDULE_TUNE',
    id: 'tune',
    name: 'tune',
    payload: {},
    cron: '* * * * *',
    what: 'the tuner (every minute)',
  }),
];

const SCHEDULE_SWITCHES = {
  SCHEDULES_ENABLED: 'whether this process installs the schedules (default true)',
  SCHEDULES_CHECK_MS:
    'how often a process that installs them checks that the queue Redis still has them, ms (default 30000; also on every reconnect)',
} as const;

export const SCHEDULE_ENV_VARS: Readonly<Record<string, string>> = {
  ...SCHEDULE_SWITCHES,
  ...Object.fromEntries(
    SCHEDULED.map((s) => [s.variable, `cron (UTC) of ${s.what}, or "off" (default ${s.cron})`]),
  ),
};

const cron = z
  .string()
  .trim()
  .regex(/^(off|(\S+\s+){4,5}\S+)$/, 'a cron expression of 5 or 6 fields, or "off"');

export const SCHEDULES_ENV_SCHEMA = z.object({
  SCHEDULES_ENABLED: boolishSchema.default(true).describe(SCHEDULE_SWITCHES.SCHEDULES_ENABLED),
  SCHEDULES_CHECK_MS: intSchema
    .min(1_000)
    .max(3_600_000)
    .default(30_000)
    .describe(SCHEDULE_SWITCHES.SCHEDULES_CHECK_MS),
});
export const SCHEDULE_CRONS_ENV_SCHEMA = z.object(
  Object.fromEntries(
    SCHEDULED.map((s) => [s.variable, cron.default(s.cron).describe(`cron (UTC) of ${s.what}, or "off"`)]),
  ),
);

/** SCHEDULES_CHECK_MS: how often `keepSchedules` looks for the schedules, ms. */
export function loadScheduleCheckMs(env: Env): number {
  const fail = (message: string, cause: z.ZodError) => new JobError('E_JOB_CONFIG', message, { cause });
  return parseEnv(SCHEDULES_ENV_SCHEMA, env, fail).SCHEDULES_CHECK_MS;
}

/** The schedules of this deployment from the environment; a bad value throws naming the variable. */
export function loadSchedules(env: Env): Schedule[] | undefined {
  const fail = (message: string, cause: z.ZodError) => new JobError('E_JOB_CONFIG', message, { cause });
  const { SCHEDULES_ENABLED } = parseEnv(SCHEDULES_ENV_SCHEMA, env, fail);
  const crons = parseEnv(SCHEDULE_CRONS_ENV_SCHEMA, env, fail);
  if (!SCHEDULES_ENABLED) return undefined;
  return SCHEDULED.flatMap((s) => {
    const pattern = crons[s.variable];
    if (pattern === undefined || pattern === 'off') return [];
    return [{ id: `${SCHEDULE_PREFIX}${s.id}`, name: s.name, payload: s.payload, pattern }];
  });
}

/**
 * Installs `schedules` (idempotent: safe from every replica at once) and removes our schedulers
 * that are no longer configured, so turning one off in config takes effect. Only on `queues`, the
 * queues this process answers for (default all): a worker serving only `invalidate` neither adds
 * nor removes the warm schedules, which are the warm workers' to keep.
 */
export async function applySchedules(
  jobs: JobClient,
  schedules: readonly Schedule[],
  queues: readonly QueueName[] = QUEUE_NAMES,
): Promise<void> {
  for (const s of schedules) {
    if (!s.id.startsWith(SCHEDULE_PREFIX))
      throw new JobError('E_JOB_CONFIG', `schedule id must start with ${SCHEDULE_PREFIX}`);
    if (!isJobName(s.name)) throw new JobError('E_JOB_UNKNOWN', `schedule ${s.id}: no job named ${s.name}`);
    if ((s.pattern === undefined) === (s.every === undefined))
      throw new JobError('E_JOB_CONFIG', `schedule ${s.id}: give exactly one of pattern and every`);
    if (!queues.includes(JOBS[s.name].queue))
      throw new JobError(
        'E_JOB_CONFIG',
        `schedule ${s.id}: queue ${JOBS[s.name].queue} is not among ${queues.join(', ')}`,
      );
    const payload = parsePayload(s.name, s.payload);
    const { attempts, backoff, removeOnComplete, removeOnFail } = jobOptions(s.name, payload, s.id);
    const queue = jobs.queue(JOBS[s.name].queue);
    // Upsert only what changed: an upsert re-adds the next job from this process's clock, and a
    // replica starting just after a tick (clock behind, or slow) made that tick run twice.
    const current = await queue.getJobScheduler(s.id);
    if (
      current !== undefined &&
      current.name === s.name &&
      (current.pattern ?? undefined) === s.pattern &&
      (current.every === undefined || current.every === null ? undefined : Number(current.every)) ===
        s.every &&
      (s.pattern === undefined || current.tz === 'UTC') &&
      canonicalJson(current.template?.data) === canonicalJson({ payload })
    )
      continue;
    await queue.upsertJobScheduler(
      s.id,
      s.pattern !== undefined ? { pattern: s.pattern, tz: 'UTC' } : { every: s.every as number },
      {
        name: s.name,
        data: { payload },
        opts: {
          ...(attempts !== undefined ? { attempts } : {}),
          ...(backoff !== undefined ? { backoff } : {}),
          ...(removeOnComplete !== undefined ? { removeOnComplete } : {}),
          ...(removeOnFail !== undefined ? { removeOnFail } : {}),
        },
      },
    );
  }
  const wanted = new Set(schedules.map((s) => s.id));
  for (const queueName of new Set(queues)) {
    const queue = jobs.queue(queueName);
    for (const existing of await queue.getJobSchedulers(0, -1)) {
      const key = existing.key;
      if (key.startsWith(SCHEDULE_PREFIX) && !wanted.has(key)) await queue.removeJobScheduler(key);
    }
  }
}

/**
 * Set once a queue's schedules are installed, under the queue prefix (`__` is no queue name). A
 * queue Redis that lost its data (restarted without persistence, failed over to an empty replica)
 * has lost it too: that, and not a scheduler missing, is what makes a running worker install them
 * again. A scheduler removed on purpose (a replica started with it turned off) stays removed:
 * replicas whose configuration is older do not put it back. One per queue, as each queue's
 * workers keep its schedules.
 */
export function schedulesMarker(jobs: JobClient, queue: QueueName): string {
  return `${jobs.prefix}:__schedules:${queue}`;
}

/** Installs `schedules` on `queues` (applySchedules), then marks those queues installed. */
export async function installSchedules(
  jobs: JobClient,
  schedules: readonly Schedule[],
  queues: readonly QueueName[] = QUEUE_NAMES,
): Promise<void> {
  await applySchedules(jobs, schedules, queues);
  const at = new Date().toISOString();
  const markers = queues.flatMap((q) => [
    schedulesMarker(jobs, q),
    JSON.stringify({ ids: schedules.filter((s) => JOBS[s.name].queue === q).map((s) => s.id), at }),
  ]);
  if (markers.length > 0) await jobs.connection.mset(...markers);
}

export interface ScheduleKeeper {
  close(): void;
}

/**
 * Keeps the schedules in a queue Redis that may lose its data: on every reconnect and every
 * `checkMs`, one EXISTS of the marker; when it is gone, `installSchedules` again. Every replica
 * may do so at once: applySchedules upserts only what is missing, and a tick's job has a fixed id
 * (`repeat:<scheduler>:<tick>`), so each tick still makes one job.
 */
export function keepSchedules(
  jobs: JobClient,
  schedules: readonly Schedule[],
  options: {
    /** The queues whose schedules this process keeps (default all). */
    readonly queues?: readonly QueueName[];
    readonly checkMs: number;
    readonly onInstalled?: () => void;
    readonly onError?: (e: unknown) => void;
  },
): ScheduleKeeper {
  const queues = options.queues ?? QUEUE_NAMES;
  const markers = queues.map((q) => schedulesMarker(jobs, q));
  let running = false;
  const check = () => {
    if (running || queueDown(jobs.connection.status) || markers.length === 0) return;
    running = true;
    jobs.connection
      .exists(...markers)
      .then(async (present) => {
        if (present === markers.length) return;
        await installSchedules(jobs, schedules, queues);
        options.onInstalled?.();
      })
      .catch((error: unknown) => options.onError?.(error))
      .finally(() => {
        running = false;
      });
  };
  const timer = setInterval(check, options.checkMs);
  timer.unref();
  jobs.connection.on('ready', check);
  return {
    close: () => {
      clearInterval(timer);
      jobs.connection.off('ready', check);
    },
  };
}
