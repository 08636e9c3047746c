/**
 * One API pod for a test file, as `startApi` runs it: real HTTP on a free port, the run's PostgreSQL
 * (testDatabaseUrl) for the catalogue (a schema of its own, seeded, dropped by `close`), a private redis-server as the cache
 * and queue Redis, optionally a real worker serving the queues. The pod's pino lines are kept in
 * `logs`, so a test can read what an operator would.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { type RedisProcess, startRedis, testDatabaseUrl } from '@cachefleet/test';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { pino } from 'pino';
import { type RunningApi, startApi } from '../src/index.js';

export const DATABASE_URL = testDatabaseUrl();

export interface Response {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  readonly json: unknown;
}

export interface CallOptions {
  readonly method?: string;
  /** true: the pod's admin token; a string: that token. */
  readonly token?: true | string;
  /** Sent as JSON, or as is when a string (with the content-type given in `headers`). */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
}

/** One HTTP request to a pod at `base`, as a test makes it (`token: true` sends `token`). */
export async function request(
  base: string,
  token: string,
  path: string,
  o: CallOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token === true ? token : o.token}`;
  let body: string | undefined;
  if (typeof o.body === 'string') body = o.body;
  else if (o.body !== undefined) {
    headers['content-type'] ??= 'application/json';
    body = JSON.stringify(o.body);
  }
  const res = await fetch(`${base}${path}`, {
    method: o.method ?? 'GET',
    headers,
    redirect: 'manual',
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  let json: unknown;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, text, json };
}

export interface TestPod {
  readonly api: RunningApi;
  readonly url: string;
  readonly token: string;
  readonly schema: string;
  readonly db: Db;
  readonly redis: RedisProcess;
  /** Every JSON line the pod logged so far. */
  readonly logs: readonly Record<string, unknown>[];
  call(path: string, options?: CallOptions): Promise<Response>;
  close(): Promise<void>;
}

interface TestPodOptions {
  readonly products?: number;
  /** Run a worker (in this process) on the pod's queues. */
  readonly worker?: boolean;
  /** More environment for the pod (and the worker). */
  readonly env?: Readonly<Record<string, string>>;
}

export async function startTestPod(options: TestPodOptions = {}): Promise<TestPod> {
  const tag = randomBytes(4).toString('hex');
  const schema = `apit_${tag}`;
  const token = `api-test-token-${tag}-0123456789`;
  const redis = await startRedis();
  const db = connectPg(DATABASE_URL, { max: 2 });
  await migrate(db, { schema });
  await seed(db, { schema, count: options.products ?? 200 });
  const env: NodeJS.ProcessEnv = {
    API_PORT: '0',
    ADMIN_TOKEN: token,
    DATABASE_URL,
    CATALOGUE_SCHEMA: schema,
    CACHE_REDIS_URL: redis.url,
    QUEUE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: `${schema}:`,
    QUEUE_PREFIX: `q${schema}`,
    API_CRITICAL_WARM: 'false',
    ...options.env,
  };
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const api = await startApi(env, logger);
  let worker: RunningWorker | undefined;
  if (options.worker) {
    worker = await startWorker(
      loadWorkerConfig({ WORKER_HTTP_PORT: '0', WORKER_SHUTDOWN_MS: '2000' }, []),
      { ...env, SCHEDULES_ENABLED: 'false' },
      pino({ level: 'silent' }),
    );
  }
  const call = (path: string, o: CallOptions = {}): Promise<Response> => request(api.url, token, path, o);
  return {
    api,
    url: api.url,
    token,
    schema,
    db,
    redis,
    logs,
    call,
    close: async () => {
      await worker?.close();
      await api.close();
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.close();
      await redis.stop();
    },
  };
}
