import { parseArgs } from 'node:util';
import { QUEUE_NAMES } from '@cachefleet/jobs';
import type { FleetView } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { check, flagName, parseFlags, wholeNumber } from '../args.js';
import { fleetLines, must, openViewer } from '../cache-viewer.js';
import { type CaptureView, captureView } from '../capture-state.js';
import type { Command } from '../command.js';
import { CONNECT_TIMEOUT_MS, deadline } from '../connect.js';
import { CliError, describeFailure, EXIT } from '../errors.js';
import { flatten, formatScalar, isoTime, table } from '../format.js';
import type { Session } from '../session.js';

const COUNT_STATES = [
  'waiting',
  'active',
  'delayed',
  'waiting-children',
  'prioritized',
  'failed',
  'completed',
] as const;

const statusFlags = z.object({
  json: z.boolean().default(false),
  samples: wholeNumber.pipe(z.number().int().min(0).max(10_000)).default(200),
});

/** The cache Redis is named (REDIS_URL, CACHE_REDIS_URL, or a Sentinel / Cluster mode): never a default address. */
function hasCacheRedis(session: Session): boolean {
  const env = session.env;
  return Boolean(
    env.CACHE_REDIS_URL || env.REDIS_URL || (env.CACHE_REDIS_MODE && env.CACHE_REDIS_MODE !== 'single'),
  );
}

async function fleetOf(session: Session, samples: number): Promise<FleetView> {
  const cache = await openViewer(session);
  return must(await deadline(cache.fleetView(samples), 'reading the fleet view'));
}

/** The API is built elsewhere: its body is only required to be a JSON object. */
const statsBody = z.record(z.string(), z.unknown());

export const status: Command = {
  name: 'status',
  summary:
    'job counts per queue and state, job schedulers, change capture, the fleet, and the API cache stats',
  help: `Usage:
  cachefleet status [--json]

Prints the system id (CACHEFLEET_SYSTEM_ID, else the one the queue Redis holds; another id in the
Redis is E_JOB_SYSTEM_ID, exit 2) and which Redis the queues are on, the job counts of every queue by state, the job schedulers (id, cron pattern or interval,
next run), with CACHE_REDIS_URL set the change-capture reader (holder, position, lag at its last
turn: cachefleet_capture_lag_seconds) and the fleet (every process's last telemetry snapshot:
role, uptime, L1 size, bus state and lag, failovers seen; per namespace the versions running and
hit rates per tier summed over the processes, L2 keys and bytes estimated from --samples random
keys; each Redis master's memory, pressure, policy, evictions, clients and replicas), and, when CACHEFLEET_API_URL is set, GET $CACHEFLEET_API_URL/cache/stats (sent with
Authorization: Bearer $CACHEFLEET_ADMIN_TOKEN) as a table. The queue part is printed before the
API is asked, so an API that does not answer (exit 3) still leaves the queue figures.

Flags:
  --samples <n>         random keys sized for the L2 estimates (default 200, 0: none, at most 10000)
  --json                one JSON object: {"system", "queues", "schedulers", "capture"?, "fleet"?, "api"?}`,

  async run(args, session) {
    const { values } = parseFlags('status', () =>
      parseArgs({
        args,
        options: { json: { type: 'boolean' }, samples: { type: 'string' } },
        allowPositionals: false,
        strict: true,
      }),
    );
    const flags = check(statusFlags, values, flagName);
    const { jobs, system: checked, redis } = await session.connected();
    // Which system this is (CACHEFLEET_SYSTEM_ID, or the id the queue Redis holds) and which Redis.
    const system = { id: checked.id ?? null, how: checked.how, queueRedis: redis };
    const perQueue = await deadline(
      Promise.all(
        QUEUE_NAMES.map(async (name) => {
          const queue = jobs.queue(name);
          const [counts, schedulers] = await Promise.all([
            queue.getJobCounts(...COUNT_STATES),
            queue.getJobSchedulers(0, -1, true),
          ]);
          return {
            name,
            counts,
            schedulers: schedulers.map((s) => ({
              id: s.key,
              queue: name,
              job: s.name,
              pattern: s.pattern ?? (s.every !== undefined ? `every ${s.every} ms` : '-'),
              ...(s.tz ? { tz: s.tz } : {}),
              next: s.next,
            })),
          };
        }),
      ),
      'reading queue counts',
    );
    const queues = Object.fromEntries(perQueue.map((q) => [q.name, q.counts]));
    const schedulers = perQueue.flatMap((q) => q.schedulers);
    const capture = await captureView(session);
    const fleet = hasCacheRedis(session) ? await fleetOf(session, flags.samples) : undefined;
    const apiUrl = session.env.CACHEFLEET_API_URL;
    if (flags.json) {
      let api: Record<string, unknown> | undefined;
      let apiError: unknown;
      if (apiUrl) {
        try {
          api = await cacheStats(apiUrl, session);
        } catch (error) {
          apiError = error;
        }
      }
      const failed = apiError === undefined ? {} : { apiError: describeFailure(apiError).message };
      session.out(
        JSON.stringify({
          system,
          queues,
          schedulers,
          ...(capture ? { capture } : {}),
          ...(fleet ? { fleet } : {}),
          ...(api ? { api } : {}),
          ...failed,
        }),
      );
      if (apiError !== undefined) throw apiError;
      return EXIT.OK;
    }
    session.out(`system ${systemLine(system)}`);
    session.out(`queue Redis ${redis}`);
    session.out();
    for (const line of table(
      ['QUEUE', ...COUNT_STATES.map((s) => s.toUpperCase())],
      perQueue.map((q) => [q.name, ...COUNT_STATES.map((s) => formatScalar(q.counts[s] ?? 0))]),
    ))
      session.out(line);
    session.out();
    if (schedulers.length === 0) session.out('no job schedulers');
    else
      for (const line of table(
        ['SCHEDULER', 'QUEUE', 'JOB', 'PATTERN', 'NEXT RUN'],
        schedulers.map((s) => [s.id, s.queue, s.job, s.pattern, isoTime(s.next)]),
      ))
        session.out(line);
    if (capture !== undefined) {
      session.out();
      for (const line of captureLines(capture)) session.out(line);
    }
    if (fleet !== undefined) {
      session.out();
      for (const line of fleetLines(fleet)) session.out(line);
    }
    if (!apiUrl) return EXIT.OK;
    session.out();
    const api = await cacheStats(apiUrl, session);
    session.out(`cache stats from ${apiUrl}`);
    const rows = flatten(api).map(([k, v]) => [k, formatScalar(v)]);
    for (const line of table(['STAT', 'VALUE'], rows)) session.out(line);
    return EXIT.OK;
  },
};

function systemLine(s: { id: string | null; how: string }): string {
  if (s.id === null) return 'none (CACHEFLEET_SYSTEM_ID unset and the queue Redis holds no id)';
  return s.how === 'adopted'
    ? `${s.id} (the id the queue Redis holds; CACHEFLEET_SYSTEM_ID unset)`
    : `${s.id} (CACHEFLEET_SYSTEM_ID, the same in the queue Redis)`;
}

function captureLines(c: CaptureView): string[] {
  if (c.position === null && !c.active)
    return ['capture: no reader has run (a worker with --queues capture)'];
  const age = c.updatedAt === null ? '-' : `${((Date.now() - c.updatedAt) / 1000).toFixed(1)} s ago`;
  return table(
    ['CAPTURE', 'HOLDER', 'FENCE', 'POSITION', 'LAG (S)', 'UPDATED'],
    [
      [
        c.active ? 'active' : 'no reader',
        c.holder ?? '-',
        formatScalar(c.fence ?? '-'),
        formatScalar(c.position ?? '-'),
        c.lagSeconds === null ? '-' : c.lagSeconds.toFixed(3),
        age,
      ],
    ],
  );
}

/** GET /cache/stats; a refused token is E_CLI_API_TOKEN (exit 2), anything else but a JSON object within 3 s E_CLI_API (exit 3). */
async function cacheStats(base: string, session: Session): Promise<Record<string, unknown>> {
  let url: URL;
  try {
    url = new URL('cache/stats', base.endsWith('/') ? base : `${base}/`);
  } catch {
    throw new CliError('E_CLI_USAGE', `CACHEFLEET_API_URL: not a URL (got ${JSON.stringify(base)})`);
  }
  const token = session.env.CACHEFLEET_ADMIN_TOKEN;
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
    });
  } catch (error) {
    const why = error instanceof Error ? (causeOf(error) ?? error.message) : String(error);
    throw new CliError('E_CLI_API', `GET ${url.href}: ${why}`, { cause: error });
  }
  if (!response.ok) {
    await response.body?.cancel();
    // A refused token is a setting to fix (exit 2), not an API that is down (exit 3).
    if (response.status === 401 || response.status === 403) {
      throw new CliError(
        'E_CLI_API_TOKEN',
        `GET ${url.href}: ${response.status} ${response.statusText}: CACHEFLEET_ADMIN_TOKEN ${token ? 'is not the admin token' : 'is unset'}`,
      );
    }
    throw new CliError('E_CLI_API', `GET ${url.href}: ${response.status} ${response.statusText}`);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new CliError('E_CLI_API', `GET ${url.href}: the answer is not JSON`);
  }
  const parsed = statsBody.safeParse(body);
  if (!parsed.success) throw new CliError('E_CLI_API', `GET ${url.href}: expected a JSON object`);
  return parsed.data;
}

/** fetch() says only "fetch failed"; the socket error (ECONNREFUSED …) is in its cause. */
function causeOf(error: Error): string | undefined {
  const cause = error.cause;
  return cause instanceof Error ? cause.message : undefined;
}
