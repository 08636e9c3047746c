import type { JobClient, JobName, PayloadInputOf } from '@cachefleet/jobs';
import { enqueueWithRetry } from './connect.js';
import { CliError, EXIT, type ExitCode } from './errors.js';
import { followJob } from './follow.js';
import { duration, pairs } from './format.js';
import { ProgressBar } from './progress.js';
import type { Session } from './session.js';

interface SubmitFlags {
  readonly detach?: boolean | undefined;
  readonly json?: boolean | undefined;
}

/**
 * Enqueues a job (the payload was checked against the catalogue already; the producer checks it
 * again), prints its id, then follows it to its end unless `--detach`. The id goes to stdout (so
 * `id=$(cachefleet warm all --detach)` works); notes and the progress bar go to stderr.
 */
export async function submit<N extends JobName>(
  session: Session,
  name: N,
  payload: PayloadInputOf<N>,
  flags: SubmitFlags,
): Promise<ExitCode> {
  const jobs = await session.jobs();
  const job = await enqueueWithRetry(jobs, name, payload, (line) => session.note(line));
  if (flags.json && flags.detach) {
    session.out(
      JSON.stringify({ id: job.id, queue: job.queue, name: job.name, deduplicated: job.deduplicated }),
    );
    return EXIT.OK;
  }
  if (!flags.json) {
    session.out(job.id);
    if (job.deduplicated) session.note(`deduplicated: joined job ${job.id}`);
  }
  if (flags.detach) return EXIT.OK;
  return followAndReport(session, jobs, job.id, {
    json: flags.json === true,
    deduplicated: job.deduplicated,
  });
}

/**
 * Follows a job to its end and prints the outcome: the result (exit 0), or the failure reason
 * (E_CLI_JOB_FAILED, exit 1). With `json`, no bar and one JSON object at the end, whatever the outcome.
 */
export async function followAndReport(
  session: Session,
  jobs: JobClient,
  id: string,
  options: { readonly json: boolean; readonly deduplicated?: boolean },
): Promise<ExitCode> {
  const started = session.io.now();
  let bar: ProgressBar | undefined;
  if (!options.json) {
    session.note(`following job ${id} (Ctrl-C stops following; the job carries on)`);
    bar = new ProgressBar(session.io.stderr, session.io.now);
  }
  const end = await followJob(jobs, id, bar);
  if (options.json) {
    session.out(
      JSON.stringify({
        id: end.id,
        state: end.state,
        ...(end.state === 'completed'
          ? { result: end.result ?? null }
          : { failedReason: end.failedReason ?? '' }),
        ...(options.deduplicated !== undefined ? { deduplicated: options.deduplicated } : {}),
      }),
    );
  } else if (end.state === 'completed') {
    session.out(`completed in ${duration(session.io.now() - started)}: ${pairs(end.result) || 'no result'}`);
  }
  if (end.state === 'completed') return EXIT.OK;
  const attempts = `${end.attemptsMade} attempt${end.attemptsMade === 1 ? '' : 's'}`;
  throw new CliError(
    'E_CLI_JOB_FAILED',
    `job ${end.id} failed after ${attempts}: ${end.failedReason ?? 'no reason given'}`,
  );
}
