/**
 * `npm start`: the whole system in one command on a fresh machine — Redis (found, or a private
 * redis-server started under .data/redis), one API pod (with an embedded, seeded PGlite database
 * unless DATABASE_URL is set), one worker process serving every queue, installing the
 * schedules and reading the change-capture outbox of that database. Prints the URLs and the admin token. A child that crashes is restarted with back-off
 * (supervise.ts); Ctrl-C stops everything it started, workers first.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { issueMessage, pickEnv } from '@cachefleet/config';
import { DEFAULT_QUEUE_LIST, loadSystemId } from '@cachefleet/jobs';
import { adminTokenIn, lockDataDir, systemIdIn } from './data-dir.js';
import { SYSTEM_ENV_SCHEMA } from './settings.js';
import { Service } from './supervise.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const env = SYSTEM_ENV_SCHEMA.safeParse(pickEnv(process.env, Object.keys(SYSTEM_ENV_SCHEMA.shape)));
if (!env.success) fail(issueMessage(env.error));
const settings = env.data;
const DATA = resolve(ROOT, settings.CACHEFLEET_DATA_DIR);
/** What was started, in start order; stopped in the reverse order (workers first). */
const services: Service<unknown>[] = [];
let stopping = false;

function say(message: string): void {
  process.stderr.write(`[cachefleet] ${message}\n`);
}

function fail(message: string): never {
  say(message);
  process.exit(1);
}

function ping(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = createConnection({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => finish(d.toString().startsWith('+PONG')));
  });
}

/** Starts `service` and keeps it (restarted after a crash); rejects if its first start fails. */
async function supervise<R>(service: Service<R>): Promise<R> {
  services.push(service as Service<unknown>);
  return service.start();
}

async function ensureRedis(): Promise<void> {
  // Both roles on Sentinel (CACHE_REDIS_MODE / QUEUE_REDIS_MODE and their settings, passed to the
  // children as they are): REDIS_URL is not used, so nothing is looked for or started there.
  if (process.env.CACHE_REDIS_MODE === 'sentinel' && process.env.QUEUE_REDIS_MODE === 'sentinel') {
    say('cache and queue Redis: the Sentinel sets of CACHE_REDIS_SENTINELS and QUEUE_REDIS_SENTINELS');
    return;
  }
  const url = new URL(settings.REDIS_URL);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port);
  if (await ping(host, port)) {
    say(`Redis answers at ${settings.REDIS_URL}: using it (queues and cache share it; keys are prefixed)`);
    return;
  }
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    fail(
      `nothing answers at ${settings.REDIS_URL} and redis-server is not on PATH.\n` +
        '  Install Redis 7 (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n' +
        '  or point REDIS_URL at a running Redis, then run npm start again.',
    );
  }
  const dir = resolve(DATA, 'redis');
  mkdirSync(dir, { recursive: true });
  // The queue role wants persistence and noeviction (DESIGN "two Redis roles"): one server here.
  // Restarted after a crash like the others; the append-only file brings its data back.
  const args = ['--port', String(port), '--bind', host, '--dir', dir, '--appendonly', 'yes'];
  // Its last lines, to say why when it cannot start (a port held by something else, a bad folder).
  const tail: string[] = [];
  const keep = (stream: Readable) =>
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 8) tail.shift();
    });
  await supervise(
    new Service({
      name: 'the private redis-server',
      stopGraceMs: 5_000,
      say,
      spawn: () => {
        const child = spawn('redis-server', [...args, '--maxmemory-policy', 'noeviction'], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        keep(child.stdout);
        keep(child.stderr);
        return { child, ready: answers(host, port) };
      },
    }),
  ).catch((error: Error) => {
    throw new Error(`${error.message}; its last lines:\n${tail.map((l) => `    ${l}`).join('\n')}`);
  });
  say(`nothing answered at ${settings.REDIS_URL}: started a private redis-server there, data in ${dir}`);
}

/** Resolves once Redis answers PING at host:port; rejects after 5 s. */
async function answers(host: string, port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await ping(host, port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis-server on port ${port} does not answer`);
}

/**
 * A Node service (API pod, worker): its JSON log lines are passed through, and it is ready when it
 * logs `readyMsg` (resolving that line's fields). `env` is read at each (re)start.
 */
function nodeService(
  name: string,
  script: string,
  env: () => Record<string, string>,
  readyMsg: string,
  stopGraceMs: number,
): Service<Record<string, unknown>> {
  return new Service({
    name,
    stopGraceMs,
    say,
    spawn: () => {
      const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, script)], {
        cwd: ROOT,
        env: { ...process.env, ...env() },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const ready = new Promise<Record<string, unknown>>((resolveReady) => {
        createInterface({ input: child.stdout as Readable }).on('line', (line) => {
          process.stdout.write(`${line}\n`);
          if (!line.includes(readyMsg)) return;
          try {
            const record = JSON.parse(line) as Record<string, unknown>;
            if (record.msg === readyMsg) resolveReady(record);
          } catch {
            // not JSON: passed through as is
          }
        });
      });
      return { child, ready };
    },
  });
}

/**
 * Ctrl-C: workers first (they hand their jobs back), then the API, then Redis if we started it,
 * each given its own time; a second Ctrl-C kills what is left at once.
 */
async function stop(code: number): Promise<void> {
  if (stopping) {
    for (const service of services) service.kill();
    process.exit(code === 0 ? 130 : code);
  }
  stopping = true;
  for (const service of services) service.endRestarts();
  for (const service of [...services].reverse()) await service.stop();
  process.exit(code);
}

function keptSystemId(): string {
  // CACHEFLEET_SYSTEM_ID, else the one kept in the data folder since the first start.
  let given: string | undefined;
  try {
    given = loadSystemId(process.env);
  } catch (error) {
    fail((error as Error).message);
  }
  if (given !== undefined) return given;
  const kept = systemIdIn(DATA);
  say(
    `system id ${kept.id} ${kept.created ? 'made and kept in' : 'read from'} ${resolve(DATA, 'system-id')}`,
  );
  return kept.id;
}

/** Settings of this shell the children read as they are: the extra processes need them too. */
function passedOn(): Record<string, string> {
  const names = /^(CACHE_REDIS_|QUEUE_REDIS_|CACHE_KEY_PREFIX$|QUEUE_PREFIX$|CATALOGUE_SCHEMA$)/;
  return Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => names.test(e[0]) && !!e[1]),
  );
}

/** `NAME=value` as a shell reads it back (single-quoted unless plainly safe). */
function assign(name: string, value: string): string {
  return /^[A-Za-z0-9_\-.:/@%+=,]*$/.test(value)
    ? `${name}=${value}`
    : `${name}='${value.replaceAll("'", "'\\''")}'`;
}

/** The ready-to-paste lines that add a CLI, a worker or an API pod to this system. */
function joinLines(shared: Record<string, string>, databaseUrl: string, token: string) {
  const env = (extra: Record<string, string>) =>
    Object.entries({ ...shared, ...extra })
      .map(([k, v]) => assign(k, v))
      .join(' ');
  return {
    cli: (apiUrl: string) =>
      `${env({ CACHEFLEET_API_URL: apiUrl, CACHEFLEET_ADMIN_TOKEN: token })} npx cachefleet status`,
    worker: `${env({ DATABASE_URL: databaseUrl, WORKER_HTTP_PORT: '0' })} npm run worker -- --queues invalidate:4`,
    api: (port: number) =>
      `${env({ DATABASE_URL: databaseUrl, ADMIN_TOKEN: token, API_PORT: String(port) })} npm run api`,
  };
}

/** The first port after `port` that is free now (for the extra pod's line), else one the system picks. */
async function portNear(port: number): Promise<number> {
  for (let p = port + 1; p > 0 && p <= Math.min(port + 20, 65535); p++) if (await isFree(p)) return p;
  return 0;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

function keptToken(): string {
  const kept = adminTokenIn(DATA);
  const file = resolve(DATA, 'admin-token');
  say(
    `admin token ${kept.created ? 'made and kept in' : 'read from'} ${file} (npm run rotate-token replaces it)`,
  );
  return kept.token;
}

async function main(): Promise<void> {
  const lock = lockDataDir(DATA);
  if (!lock.ok) {
    fail(
      `another npm start (pid ${lock.holder}) is using ${DATA}; stop it first, or give this one its own ` +
        'folder with CACHEFLEET_DATA_DIR (and other ports: API_PORT, WORKER_HTTP_PORT, REDIS_URL)',
    );
  }
  process.on('exit', () => lock.release());
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  await ensureRedis();
  // ADMIN_TOKEN, else the one kept in the data folder since the first start (npm run rotate-token).
  const adminToken = settings.ADMIN_TOKEN ?? keptToken();
  const systemId = keptSystemId();
  // REDIS_URL names both roles (CACHE_REDIS_URL / QUEUE_REDIS_URL, when set, split one off: the
  // children read them from this environment, and the lines below repeat them).
  const shared = { REDIS_URL: settings.REDIS_URL, CACHEFLEET_SYSTEM_ID: systemId };
  say('starting the API pod (first start seeds 100,000 products into the embedded database)…');
  // A restarted API serves the embedded database on the port the worker already uses.
  let pglitePort = String(settings.PGLITE_PORT);
  const api = await supervise(
    nodeService(
      'api',
      'apps/api/src/main.ts',
      () => ({
        ...shared,
        ADMIN_TOKEN: adminToken,
        API_PORT: String(settings.API_PORT),
        PGLITE_DIR: settings.PGLITE_DIR ?? resolve(DATA, 'pglite'),
        PGLITE_PORT: pglitePort,
      }),
      'api ready',
      10_000,
    ),
  );
  const databaseUrl = String(api.databaseUrl);
  if (api.embeddedDatabase === true) pglitePort = new URL(databaseUrl).port;
  const worker = await supervise(
    nodeService(
      'worker',
      'apps/worker/src/main.ts',
      () => ({
        ...shared,
        DATABASE_URL: databaseUrl,
        WORKER_HTTP_PORT: String(settings.WORKER_HTTP_PORT),
        BACKUP_DIR: settings.BACKUP_DIR ?? resolve(DATA, 'backups'),
        // Every queue, and the change-capture reader over the same database: a write by psql (or
        // any other writer) reaches the cache too. It installs the outbox and triggers at start.
        WORKER_QUEUES: settings.WORKER_QUEUES ?? `${DEFAULT_QUEUE_LIST},capture`,
        CAPTURE_INSTALL: String(settings.CAPTURE_INSTALL),
      }),
      'worker ready',
      // Its own deadline (WORKER_SHUTDOWN_MS) closes it by force: a margin above that.
      settings.WORKER_SHUTDOWN_MS + 5_000,
    ),
  );
  const url = String(api.url);
  const join = joinLines({ ...shared, ...passedOn() }, databaseUrl, adminToken);
  const lines = [
    '',
    'cachefleet is running:',
    `  API            ${url}/products/42`,
    `  dashboard      ${url}/admin/login?token=${adminToken}   (then ${url}/admin/queues)`,
    `  fleet page     ${url}/admin/fleet   (every process, hit rates, hot ids, jobs running, last invalidations)`,
    `  metrics        ${url}/metrics   and   http://127.0.0.1:${String(worker.port)}/metrics (worker)`,
    `  admin token    ${adminToken}`,
    `  database       ${databaseUrl}`,
    `  system id      ${systemId}   (kept in ${resolve(DATA, 'system-id')}; every Redis of this system holds it)`,
    '  try            curl -H "authorization: Bearer <token>" -X POST -H "content-type: application/json" \\',
    `                   -d '{"namespace":"product","pattern":"1*"}' ${url}/cache/invalidate`,
    '',
    'Join this system from another terminal in this folder (each line carries every setting it needs):',
    `  CLI            ${join.cli(url)}`,
    `  extra worker   ${join.worker}`,
    `  extra API pod  ${join.api(await portNear(settings.API_PORT))}`,
    '  stop           Ctrl-C',
    '',
  ];
  say(lines.join('\n'));
}

main().catch((error: Error) => {
  if (stopping) return;
  say(`failed to start: ${error.message}`);
  void stop(1);
});
