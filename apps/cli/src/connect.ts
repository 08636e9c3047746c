import { createConnection } from 'node:net';
import { redisChoices } from '@cachefleet/config';
import {
  checkSystemId,
  type Enqueued,
  JobClient,
  type JobName,
  loadQueueConfig,
  loadSystemId,
  type PayloadInputOf,
  queueSystemIdKey,
  type SystemIdCheck,
} from '@cachefleet/jobs';
import type { RedisClient, ResolvedRedisConnection } from '@cachefleet/redis';
import { CliError } from './errors.js';

/**
 * A CLI must say "Redis is down" rather than wait: the queue connection (BullMQ's rule: offline
 * queue, retry forever) would otherwise hang on the first command. So the CLI connects first and
 * gives up after this long, and every later call has its own deadline.
 */
export const CONNECT_TIMEOUT_MS = 3_000;
/** One queue call (a few round trips); far above what a healthy Redis needs. */
const CALL_TIMEOUT_MS = 5_000;
/**
 * An enqueue the queue Redis cannot take or confirm yet (a Sentinel failover under way, a replica
 * not yet in sync) is tried again this long, as the API does (API_ENQUEUE_WAIT_MS), saying so once.
 */
export const ENQUEUE_WAIT_MS = 30_000;
/** Closing never holds the process: past this, sockets are dropped. */
const CLOSE_TIMEOUT_MS = 2_000;

/** A connected queue client and the system id its Redis holds (compared with CACHEFLEET_SYSTEM_ID). */
export interface ConnectedJobs {
  readonly jobs: JobClient;
  readonly system: SystemIdCheck;
  /** `redis://h:p (from REDIS_URL)`: where the queue role went and why. */
  readonly redis: string;
}

/**
 * The queue settings from the environment, connected (or E_CLI_UNREACHABLE after 3 s), and the
 * system id checked: a Redis holding another system's id is E_JOB_SYSTEM_ID before any command.
 */
export async function connectJobs(env: Readonly<Record<string, string | undefined>>): Promise<ConnectedJobs> {
  const config = loadQueueConfig(env);
  const configured = loadSystemId(env);
  const what = `queue Redis (${describeRedis(config.redis)})`;
  await probe(config.redis, CONNECT_TIMEOUT_MS, what);
  const jobs = new JobClient(config);
  try {
    await waitReady(jobs.connection, CONNECT_TIMEOUT_MS, what);
    const redis = redisChoices(env).queue;
    const target = {
      client: jobs.connection,
      key: queueSystemIdKey(config.prefix),
      what: `queue Redis ${redis}`,
    };
    const system = await deadline(checkSystemId([target], configured), 'checking the system id');
    return { jobs, system, redis };
  } catch (error) {
    jobs.connection.disconnect();
    throw error;
  }
}

/** Closes the queues and the connection; a Redis gone meanwhile cannot keep the process alive. */
export async function closeJobs(jobs: JobClient): Promise<void> {
  await settle(jobs.close(), CLOSE_TIMEOUT_MS);
  if (jobs.connection.status !== 'end') jobs.connection.disconnect();
}

/**
 * Resolves once one of the connection's endpoints accepts a TCP connection, retrying until `ms`;
 * rejects with E_CLI_UNREACHABLE otherwise. Checked before any Redis client exists because an
 * ioredis client that never connected keeps the process alive for 2 s more after disconnect()
 * (its connector arms a `disconnectTimeout` timer that only the closed socket's 'close' event,
 * long gone, would clear).
 */
export async function probe(conn: ResolvedRedisConnection, ms: number, what: string): Promise<void> {
  const endpoints = endpointsOf(conn);
  const until = Date.now() + ms;
  let last = 'no endpoint';
  for (;;) {
    const left = until - Date.now();
    const results = await Promise.all(endpoints.map((e) => tcpConnect(e.host, e.port, Math.max(100, left))));
    if (results.some((r) => r === undefined)) return;
    last = results.find((r) => r !== undefined) ?? last;
    if (Date.now() + PROBE_PAUSE_MS >= until) break;
    await new Promise((resolve) => setTimeout(resolve, PROBE_PAUSE_MS));
  }
  throw new CliError('E_CLI_UNREACHABLE', `${what} did not answer within ${ms} ms: ${last}`);
}

const PROBE_PAUSE_MS = 200;

function endpointsOf(conn: ResolvedRedisConnection): { host: string; port: number }[] {
  switch (conn.mode) {
    case 'single': {
      const url = new URL(conn.url);
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
      return [{ host, port: url.port ? Number(url.port) : 6379 }];
    }
    case 'sentinel':
      return conn.sentinels;
    case 'cluster':
      return conn.nodes;
  }
}

/** undefined when `host:port` accepted a connection within `ms`, else why not. */
function tcpConnect(host: string, port: number, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (why: string | undefined) => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(ms, () => done(`connect to ${host}:${port} timed out`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (error) => done(error.message));
  });
}

/** Resolves once `client` is ready; rejects with E_CLI_UNREACHABLE (and the last socket error) after `ms`. */
function waitReady(client: RedisClient, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let last: Error | undefined;
    const onError = (error: Error) => {
      last = error;
      // Something answered, but not in Redis's protocol (an HTTP port, say): retrying cannot help.
      if (/Protocol error/i.test(error.message)) {
        cleanup();
        reject(
          new CliError(
            'E_CLI_UNREACHABLE',
            `${what} answered, but not as Redis does (is that the port of another service, an HTTP server?)`,
          ),
        );
      }
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('error', onError);
      client.off('ready', onReady);
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      const why = last ? `: ${last.message}` : '';
      reject(new CliError('E_CLI_UNREACHABLE', `${what} did not answer within ${ms} ms${why}`));
    }, ms);
    client.on('error', onError);
    client.once('ready', onReady);
    // The first refusal rejects connect(); the client keeps retrying until the deadline.
    client.connect().catch((error: Error) => {
      last = error;
    });
  });
}

/** `p`, or E_CLI_UNREACHABLE if it has not settled after `ms` (Redis went away mid-command). */
export async function deadline<T>(p: Promise<T>, what: string, ms = CALL_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CliError('E_CLI_UNREACHABLE', `${what}: no answer from Redis within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Enqueues with ENQUEUE_WAIT_MS of retries (`note` says once that it is retrying), bounded. */
export function enqueueWithRetry<N extends JobName>(
  jobs: JobClient,
  name: N,
  payload: PayloadInputOf<N>,
  note: (line: string) => void,
): Promise<Enqueued> {
  let told = false;
  const onRetry = (reason: string) => {
    if (told) return;
    told = true;
    note(
      `the queue Redis did not take the job yet (${reason}); trying again for up to ${ENQUEUE_WAIT_MS / 1000} s`,
    );
  };
  return deadline(
    jobs.enqueue(name, payload, { retryMs: ENQUEUE_WAIT_MS, onRetry }),
    `enqueueing ${name}`,
    ENQUEUE_WAIT_MS + CALL_TIMEOUT_MS,
  );
}

/** Waits for `p` at most `ms`, whatever its outcome. */
async function settle(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** Where a connection points, without its password. */
export function describeRedis(conn: ResolvedRedisConnection): string {
  switch (conn.mode) {
    case 'single':
      try {
        const url = new URL(conn.url);
        return `${url.protocol}//${url.host}${url.pathname.length > 1 ? url.pathname : ''}`;
      } catch {
        return 'an invalid URL';
      }
    case 'sentinel':
      return `sentinel ${conn.name} via ${conn.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
    case 'cluster':
      return `cluster via ${conn.nodes.map((s) => `${s.host}:${s.port}`).join(',')}`;
  }
}
