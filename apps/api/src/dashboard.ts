import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import {
  isJobId,
  JOB_NAMES,
  JOBS,
  type JobClient,
  jobTitle,
  QUEUE_NAMES,
  type QueueName,
  SCHEDULE_PREFIX,
  SCHEDULED,
} from '@cachefleet/jobs';
import type { FastifyInstance } from 'fastify';
import type { AdminGuard } from './auth.js';
import { guardServerErrors } from './http-errors.js';

export const DASHBOARD_PATH = '/admin/queues';

/**
 * Queues holding children of flows (catalogue jobs added by other jobs only): retrying or cleaning
 * one by hand would confuse its parent.
 */
const READ_ONLY = new Set<QueueName>(JOB_NAMES.filter((n) => JOBS[n].internal).map((n) => JOBS[n].queue));

/** Largest body of the dashboard's own routes (the pod's default is 16 KiB). */
const DASHBOARD_BODY_LIMIT = 1024 * 1024;

/** Longest string or array shown in the dashboard's job data (ids lists can be 100,000 long). */
const MAX_SHOWN = 50;

/**
 * bull-board for every queue at /admin/queues, behind the admin token (header or the cookie set by
 * /admin/login), read-only where a queue should not be edited, job data truncated, job ids checked.
 */
export async function registerDashboard(
  app: FastifyInstance,
  jobs: JobClient,
  guard: AdminGuard,
): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  const queues = QUEUE_NAMES.map((name) => {
    const adapter = new BullMQAdapter(jobs.queue(name), { readOnlyMode: READ_ONLY.has(name) });
    adapter.setFormatter('data', truncate);
    adapter.setFormatter('returnValue', truncate);
    // A title saying what was asked (`warm keys product (12)`); BullMQ's job name stays `warm`.
    adapter.setFormatter('name', (job: { name?: unknown; data?: unknown }) =>
      jobTitle(typeof job.name === 'string' ? job.name : '', job.data),
    );
    return adapter;
  });
  createBullBoard({ queues, serverAdapter, options: { uiConfig: { boardTitle: 'cachefleet queues' } } });
  serverAdapter.setBasePath(DASHBOARD_PATH);
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', guard);
      // Job data edited in the dashboard may be as large as a payload (100,000 ids).
      scope.addHook('onRoute', (route) => {
        route.bodyLimit ??= DASHBOARD_BODY_LIMIT;
      });
      // bull-board looks any :jobId up as `<prefix>:<queue>:<jobId>`: only ids a job can have get there.
      scope.addHook('onRequest', (req, reply, done) => {
        const id = (req.params as { jobId?: unknown }).jobId;
        if (typeof id === 'string' && !isJobId(id)) {
          void reply.code(404).send({ error: 'not_found', message: `no job ${JSON.stringify(id)}` });
          return;
        }
        done();
      });
      // Our schedulers are the workers' configuration: edited here, the next worker start (or the
      // schedule check after the queue Redis lost them) would put them back as configured.
      scope.addHook('onRequest', (req, reply, done) => {
        const id = (req.params as { schedulerId?: unknown }).schedulerId;
        if (
          typeof id === 'string' &&
          id.startsWith(SCHEDULE_PREFIX) &&
          req.method !== 'GET' &&
          !req.url.endsWith('/run')
        ) {
          void reply.code(403).send({ error: 'forbidden', message: systemSchedulerMessage(id) });
          return;
        }
        done();
      });
      guardServerErrors(scope);
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: DASHBOARD_PATH },
  );
}

/** Why a system scheduler cannot be removed or changed from the dashboard, and where it can. */
function systemSchedulerMessage(id: string): string {
  const variable = SCHEDULED.find((s) => `${SCHEDULE_PREFIX}${s.id}` === id)?.variable;
  const where = variable !== undefined ? `${variable} (a cron, or "off")` : 'the SCHEDULE_* settings';
  return `${id} is installed by the workers from their configuration: change it with ${where} and restart them; "run" is allowed here`;
}

/** Copies a value with long strings and arrays cut to MAX_SHOWN, saying how much was cut. */
function truncate(value: unknown, depth = 0): unknown {
  if (depth > 6) return '…';
  if (typeof value === 'string')
    return value.length > 200 ? `${value.slice(0, 200)}… (${value.length} chars)` : value;
  if (Array.isArray(value)) {
    const shown = value.slice(0, MAX_SHOWN).map((v) => truncate(v, depth + 1));
    return value.length > MAX_SHOWN ? [...shown, `… ${value.length - MAX_SHOWN} more`] : shown;
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, truncate(v, depth + 1)]));
  }
  return value;
}
