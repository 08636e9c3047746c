/**
 * `npm start`: the whole system in one command on a fresh machine — Redis (found, or a private
 * redis-server started under .data/redis), one API pod (with an embedded, seeded PGlite database
 * unless DATABASE_URL is set), one worker process serving every queue and installing the
 * schedules. Prints the URLs and the admin token; Ctrl-C stops everything it started.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { issueMessage, pickEnv, portSchema } from '@cachefleet/config';
import { z } from 'zod';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const DATA = resolve(ROOT, process.env.CACHEFLEET_DATA_DIR ?? '.data');

const envSchema = z.object({
  REDIS_URL: z
    .string()
    .regex(/^redis:\/\/(\[[^\]]+\]|[^:/]+):\d+\/?$/, 'redis://host:port')
    .default('redis://127.0.0.1:6379'),
  API_PORT: portSchema.default(3000),
  WORKER_HTTP_PORT: portSchema.default(9465),
});
const env = envSchema.safeParse(pickEnv(process.env, Object.keys(envSchema.shape)));
if (!env.success) fail(issueMessage(env.error));
const settings = env.data;
const children: ChildProcess[] = [];
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

async function ensureRedis(): Promise<void> {
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
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      host,
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  children.push(child);
  child.once('exit', (code) => {
    if (!stopping) fail(`the private redis-server exited (code ${code})`);
  });
  for (let i = 0; i < 50 && !(await ping(host, port)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await ping(host, port))) fail(`started redis-server on port ${port} but it does not answer`);
  say(`nothing answered at ${settings.REDIS_URL}: started a private redis-server there, data in ${dir}`);
}

/** Spawns a service, passes its JSON log lines through, resolves the fields of its ready line. */
function startService(
  name: string,
  script: string,
  extraEnv: Record<string, string>,
  readyMsg: string,
): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, script)], {
    cwd: ROOT,
    env: { ...process.env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolveReady, reject) => {
    child.once('exit', (code) => {
      if (!stopping) {
        say(`${name} exited (code ${code}); stopping everything`);
        void stop(1);
      }
      reject(new Error(`${name} exited before it was ready`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      process.stdout.write(`${line}\n`);
      try {
        const record = JSON.parse(line) as Record<string, unknown>;
        if (record.msg === readyMsg) resolveReady(record);
      } catch {
        // not JSON: passed through as is
      }
    });
  });
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Workers first (they hand their jobs back), then the API, then Redis if we started it.
  for (const child of [...children].reverse()) {
    if (child.exitCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise<void>((r) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        r();
      }, 35_000);
      child.once('exit', () => {
        clearTimeout(timer);
        r();
      });
    });
  }
  process.exit(code);
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  await ensureRedis();
  const adminToken = process.env.ADMIN_TOKEN ?? randomBytes(18).toString('base64url');
  const shared = {
    CACHE_REDIS_URL: process.env.CACHE_REDIS_URL ?? settings.REDIS_URL,
    QUEUE_REDIS_URL: process.env.QUEUE_REDIS_URL ?? settings.REDIS_URL,
  };
  say('starting the API pod (first start seeds 100,000 products into the embedded database)…');
  const api = await startService(
    'api',
    'apps/api/src/main.ts',
    {
      ...shared,
      ADMIN_TOKEN: adminToken,
      API_PORT: String(settings.API_PORT),
      PGLITE_DIR: process.env.PGLITE_DIR ?? resolve(DATA, 'pglite'),
    },
    'api ready',
  );
  const databaseUrl = String(api.databaseUrl);
  const worker = await startService(
    'worker',
    'apps/worker/src/main.ts',
    { ...shared, DATABASE_URL: databaseUrl, WORKER_HTTP_PORT: String(settings.WORKER_HTTP_PORT) },
    'worker ready',
  );
  const url = String(api.url);
  const lines = [
    '',
    'cachefleet is running:',
    `  API            ${url}/products/42`,
    `  dashboard      ${url}/admin/login?token=${adminToken}   (then ${url}/admin/queues)`,
    `  metrics        ${url}/metrics   and   http://127.0.0.1:${String(worker.port)}/metrics (worker)`,
    `  admin token    ${adminToken}`,
    `  database       ${databaseUrl}`,
    '  try            curl -H "authorization: Bearer <token>" -X POST -H "content-type: application/json" \\',
    `                   -d '{"namespace":"product","pattern":"1*"}' ${url}/cache/invalidate`,
    `                 CACHEFLEET_API_URL=${url} CACHEFLEET_ADMIN_TOKEN=<token> npx cachefleet status`,
    '  stop           Ctrl-C',
    '',
  ];
  say(lines.join('\n'));
}

main().catch((error: Error) => {
  say(`failed to start: ${error.message}`);
  void stop(1);
});
