import { parseArgs } from 'node:util';
import {
  canonicalJson,
  type JobClient,
  type JobView,
  jobTitle,
  QUEUE_NAMES,
  type QueueName,
} from '@cachefleet/jobs';
import { z } from 'zod';
import { check, flagName, parseFlags, usage, wholeNumber } from '../args.js';
import type { Command } from '../command.js';
import { deadline } from '../connect.js';
import { CliError, EXIT, type ExitCode } from '../errors.js';
import { describeProgress, sliceTotals } from '../follow.js';
import { clip, isoTime, pairs, table } from '../format.js';
import type { Session } from '../session.js';
import { followAndReport } from '../submit.js';

const LIST_STATES = ['active', 'waiting', 'waiting-children', 'delayed', 'failed', 'completed'] as const;

const listFlags = z.object({
  queue: z.enum(QUEUE_NAMES).optional(),
  state: z.enum(LIST_STATES).optional(),
  limit: wholeNumber.pipe(z.number().int().min(1).max(1_000)).default(20),
  json: z.boolean().default(false),
});

export const jobs: Command = {
  name: 'jobs',
  summary: 'list jobs, show one, retry a failed one',
  help: `Usage:
  cachefleet jobs list [--queue ${QUEUE_NAMES.join('|')}] [--state ${LIST_STATES.join('|')}] [--limit 20] [--json]
  cachefleet jobs show <id> [--json]
  cachefleet jobs retry <id> [--follow] [--json]

list    the newest jobs (every queue and state unless narrowed), newest first
show    one job: state, attempts, payload, progress, result or failure reason
retry   moves a failed job back to its queue (its attempts count on); any other state is
        refused (E_CLI_NOT_RETRYABLE, exit 2). --follow then follows it like warm/invalidate do.

Flags:
  -q, --queue <q>       list: one queue only
  -s, --state <s>       list: one state only
  -l, --limit <n>       list: at most n jobs (default 20, at most 1000)
  --follow              retry: follow the job to its end (exit 0 completed, 1 failed)
  --json                machine output`,

  async run(args, session) {
    const [sub, ...rest] = args;
    switch (sub) {
      case 'list':
        return list(rest, session);
      case 'show':
        return show(rest, session);
      case 'retry':
        return retry(rest, session);
      case undefined:
        throw usage('<subcommand>: missing: list, show or retry');
      default:
        throw usage(`<subcommand>: unknown ${JSON.stringify(sub)} (list, show or retry)`);
    }
  },
};

async function list(args: string[], session: Session): Promise<ExitCode> {
  const { values } = parseFlags('jobs', () =>
    parseArgs({
      args,
      options: {
        queue: { type: 'string', short: 'q' },
        state: { type: 'string', short: 's' },
        limit: { type: 'string', short: 'l' },
        json: { type: 'boolean' },
      },
      allowPositionals: false,
      strict: true,
    }),
  );
  const flags = check(listFlags, values, flagName);
  const client = await session.jobs();
  const queues: readonly QueueName[] = flags.queue ? [flags.queue] : QUEUE_NAMES;
  const states = flags.state ? [flags.state] : LIST_STATES;
  const found = await deadline(
    Promise.all(
      queues.flatMap((queueName) =>
        states.map(async (state) => {
          const got = await client.queue(queueName).getJobs([state], 0, flags.limit - 1, false);
          return got.map((job) => ({
            id: job.id ?? '',
            queue: queueName,
            name: job.name,
            // What was asked (`warm keys product (12)`), as the dashboard titles it.
            title: jobTitle(job.name, job.data),
            state,
            attemptsMade: job.attemptsMade,
            createdAt: job.timestamp,
            finishedAt: job.finishedOn,
            payload: payloadOf(job.data),
            failedReason: job.failedReason || undefined,
          }));
        }),
      ),
    ),
    'listing jobs',
  );
  const rows = found
    .flat()
    .sort((a, b) => b.createdAt - a.createdAt)
    .slice(0, flags.limit);
  if (flags.json) {
    session.out(JSON.stringify(rows));
    return EXIT.OK;
  }
  if (rows.length === 0) {
    session.out('no jobs');
    return EXIT.OK;
  }
  for (const line of table(
    ['ID', 'QUEUE', 'JOB', 'STATE', 'ATTEMPTS', 'CREATED', 'DETAIL'],
    rows.map((r) => [
      r.id,
      r.queue,
      r.title,
      r.state,
      String(r.attemptsMade),
      isoTime(r.createdAt),
      clip(r.failedReason ?? canonicalJson(r.payload ?? null), 70),
    ]),
  ))
    session.out(line);
  return EXIT.OK;
}

async function show(args: string[], session: Session): Promise<ExitCode> {
  const { values, id } = idArgs(args, {});
  const client = await session.jobs();
  const view = await find(client, id);
  const slices = await deadline(sliceTotals(client, view), `reading job ${id}`);
  if (values.json) {
    session.out(JSON.stringify({ ...view, ...(slices ? { slices } : {}) }));
    return EXIT.OK;
  }
  const lines: [string, string][] = [
    ['id', view.id],
    ['queue', view.queue],
    ['name', view.name],
    ['state', view.state],
    ['attempts', String(view.attemptsMade)],
    ['created', isoTime(view.createdAt)],
    ['finished', isoTime(view.finishedAt)],
    ['payload', canonicalJson(view.payload ?? null)],
    ['progress', describeProgress(view, slices).text],
  ];
  if (view.result !== undefined && view.result !== null) lines.push(['result', pairs(view.result)]);
  if (view.failedReason !== undefined) lines.push(['failed', view.failedReason]);
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) session.out(`${k.padEnd(width)}  ${v}`);
  return EXIT.OK;
}

async function retry(args: string[], session: Session): Promise<ExitCode> {
  const { values, id } = idArgs(args, { follow: { type: 'boolean' } });
  const client = await session.jobs();
  const view = await find(client, id);
  if (view.state !== 'failed') {
    throw new CliError('E_CLI_NOT_RETRYABLE', `job ${id} is ${view.state}: only a failed job can be retried`);
  }
  const job = await deadline(client.queue(view.queue).getJob(id), `reading job ${id}`);
  if (job === undefined) throw notFound(id);
  try {
    await deadline(job.retry('failed'), `retrying job ${id}`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    // BullMQ refuses when the job changed state in between (another retry, removed).
    throw new CliError('E_CLI_NOT_RETRYABLE', `job ${id}: ${(error as Error).message}`, { cause: error });
  }
  if (!values.follow) {
    if (values.json) session.out(JSON.stringify({ id, retried: true, attemptsMade: view.attemptsMade }));
    else
      session.out(`retried job ${id} (${view.name} on ${view.queue}, ${view.attemptsMade} attempts so far)`);
    return EXIT.OK;
  }
  if (!values.json) session.out(id);
  return followAndReport(session, client, id, { json: values.json === true });
}

/** `<id>` plus `--json` and any extra boolean flags. */
function idArgs<O extends Record<string, { type: 'boolean' }>>(args: string[], extra: O) {
  const { values, positionals } = parseFlags('jobs', () =>
    parseArgs({
      args,
      options: { json: { type: 'boolean' }, ...extra },
      allowPositionals: true,
      strict: true,
    }),
  );
  const [id, ...more] = positionals;
  if (id === undefined || id === '') throw usage('<id>: missing job id');
  if (more.length > 0) throw usage(`unexpected argument ${JSON.stringify(more[0])}`);
  return { values: values as Partial<Record<'json' | keyof O, boolean>>, id };
}

async function find(client: JobClient, id: string): Promise<JobView> {
  const view = await deadline(client.job(id), `reading job ${id}`);
  if (view === undefined) throw notFound(id);
  return view;
}

function notFound(id: string): CliError {
  return new CliError('E_CLI_NOT_FOUND', `no job ${JSON.stringify(id)} in queues ${QUEUE_NAMES.join(', ')}`);
}

function payloadOf(data: unknown): unknown {
  return typeof data === 'object' && data !== null && 'payload' in data ? data.payload : undefined;
}
