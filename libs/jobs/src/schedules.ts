import { boolishSchema, pickEnv } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { canonicalJson, isJobName, JOBS, type JobName } from './catalogue.js';
import { type JobClient, jobOptions, parsePayload } from './client.js';
import { JobError } from './errors.js';

/**
 * Recurring jobs as configuration (REQUIREMENTS C5; later kinds — backup every 6 h, tuning every
 * minute — are one more entry). Each is a BullMQ job scheduler: every replica upserts the same
 * id at start, and BullMQ makes one job per tick of an id however many replicas do.
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

export const SCHEDULE_ENV_VARS = {
  SCHEDULES_ENABLED: 'whether this process installs the schedules (default true)',
  SCHEDULE_WARM_ALL: 'cron (UTC) of the full warm, or "off" (default 0 2 * * *: daily 02:00)',
  SCHEDULE_WARM_HOT: 'cron (UTC) of the hot warm, or "off" (default 0 */6 * * *: every 6 h)',
} as const;

const cron = z
  .string()
  .trim()
  .regex(/^(off|(\S+\s+){4,5}\S+)$/, 'a cron expression of 5 or 6 fields, or "off"');

const envSchema = z.object({
  SCHEDULES_ENABLED: boolishSchema.default(true),
  SCHEDULE_WARM_ALL: cron.default('0 2 * * *'),
  SCHEDULE_WARM_HOT: cron.default('0 */6 * * *'),
});

/** The schedules of this deployment from the environment; a bad value throws naming the variable. */
export function loadSchedules(env: Readonly<Record<string, string | undefined>>): Schedule[] | undefined {
  const parsed = envSchema.safeParse(pickEnv(env, Object.keys(SCHEDULE_ENV_VARS)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new JobError('E_JOB_CONFIG', `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const e = parsed.data;
  if (!e.SCHEDULES_ENABLED) return undefined;
  const out: Schedule[] = [];
  if (e.SCHEDULE_WARM_ALL !== 'off')
    out.push({
      id: `${SCHEDULE_PREFIX}warm-all`,
      name: 'warm',
      payload: { type: 'all' },
      pattern: e.SCHEDULE_WARM_ALL,
    });
  if (e.SCHEDULE_WARM_HOT !== 'off')
    out.push({
      id: `${SCHEDULE_PREFIX}warm-hot`,
      name: 'warm',
      payload: { type: 'hot' },
      pattern: e.SCHEDULE_WARM_HOT,
    });
  return out;
}

/**
 * Installs `schedules` (idempotent: safe from every replica at once) and removes our schedulers
 * that are no longer configured, so turning one off in config takes effect.
 */
export async function applySchedules(jobs: JobClient, schedules: readonly Schedule[]): Promise<void> {
  for (const s of schedules) {
    if (!s.id.startsWith(SCHEDULE_PREFIX))
      throw new JobError('E_JOB_CONFIG', `schedule id must start with ${SCHEDULE_PREFIX}`);
    if (!isJobName(s.name)) throw new JobError('E_JOB_UNKNOWN', `schedule ${s.id}: no job named ${s.name}`);
    if ((s.pattern === undefined) === (s.every === undefined))
      throw new JobError('E_JOB_CONFIG', `schedule ${s.id}: give exactly one of pattern and every`);
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
  for (const queueName of new Set(Object.values(JOBS).map((j) => j.queue))) {
    const queue = jobs.queue(queueName);
    for (const existing of await queue.getJobSchedulers(0, -1)) {
      const key = existing.key;
      if (key.startsWith(SCHEDULE_PREFIX) && !wanted.has(key)) await queue.removeJobScheduler(key);
    }
  }
}
