import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { info, type RawCommandOptions, tryCommand } from './resp.js';
import { delay } from './wait.js';

export { delay } from './wait.js';

/**
 * A private `redis-server` for one test file: its own port and data folder, so a test can
 * kill, pause and restart it without touching anybody else's data.
 */
export interface RedisProcess {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** The process is running (not killed or stopped). */
  readonly running: boolean;
  /** SIGKILL: the connection drops at once, as in a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: the process hangs, sockets stay open (a partition or a long GC pause). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start again on the same port and data folder after kill(). */
  restart(): Promise<void>;
  /** Stop and remove the data folder. */
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** Extra `redis-server` arguments, e.g. ['--maxmemory', '64mb']. */
  readonly args?: readonly string[];
  readonly port?: number;
  readonly dir?: string;
}

/** Read at each start, not at import: the bench imports this before its set-up (test/setup) sets it. */
const redisBin = (): string => process.env.REDIS_SERVER_BIN || 'redis-server';

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisProcess> {
  const dir = options.dir ?? (await makeTempDir('cachefleet-redis-'));
  const extra = options.args ?? [];
  try {
    return await withFreePort(options.port, (port) =>
      launchRedis({ port, dir, args: () => redisArgs(port, dir, extra), logFile: logPath(dir, port) }),
    );
  } catch (err) {
    if (options.dir === undefined) await removeTempDir(dir);
    throw err;
  }
}

/**
 * Runs `start` on a free port. Another process may take the port between freePort() and the bind,
 * so on failure it tries again with a new port (unless the caller fixed the port).
 */
export async function withFreePort<T>(
  fixed: number | undefined,
  start: (port: number) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = fixed ?? (await freePort());
    try {
      return await start(port);
    } catch (err) {
      if (fixed !== undefined || attempt >= attempts) throw err;
    }
  }
}

export function logPath(dir: string, port: number): string {
  return join(dir, `redis-${port}.log`);
}

/** The base arguments of a data node: loopback only, no persistence, log into its folder. */
export function redisArgs(port: number, dir: string, extra: readonly string[]): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'no',
    '--daemonize',
    'no',
    '--logfile',
    logPath(dir, port),
    ...extra,
  ];
}

/** Every redis-server this process started and has not seen exit; killed if the process exits. */
const live = new Set<ChildProcess>();
/** Temp folders made by the harness and not yet removed; removed if the process exits. */
const tempDirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test run that exits without stop() (a crash, process.exit) must not leave servers behind:
  // they would hold ports and CPU on a small machine, and their folders would fill /tmp.
  process.once('exit', () => {
    for (const c of live) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
    for (const dir of tempDirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  installExitHook();
}

/** mkdtemp under the OS temp folder, removed at process exit unless removeTempDir() came first. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  installExitHook();
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

async function logTail(logFile: string | undefined): Promise<string> {
  if (logFile === undefined) return '';
  try {
    const text = await readFile(logFile, 'utf8');
    return `\n--- ${logFile} (tail) ---\n${text.split('\n').slice(-8).join('\n')}`;
  } catch {
    return '';
  }
}

/**
 * Spawns a redis-server (or sentinel) and resolves once it answers PING. It also checks that the
 * answer comes from this very process (INFO process_id): if the port was taken meanwhile by another
 * server, PING alone would succeed against the wrong one while ours dies with EADDRINUSE.
 */
async function spawnRedis(
  args: readonly string[],
  port: number,
  logFile?: string,
  auth?: RawCommandOptions['auth'],
): Promise<ChildProcess> {
  const child = spawn(redisBin(), args, { stdio: 'ignore' });
  let exited = false;
  let spawnError: Error | undefined;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', (err) => {
    spawnError = err;
    exited = true;
  });
  track(child);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) {
      const why = spawnError ? `: ${spawnError.message}` : '';
      throw new Error(
        `redis-server on port ${port} exited at start${why} (args: ${args.join(' ')})${await logTail(logFile)}`,
      );
    }
    if (auth === undefined ? await pingOnce(port) : (await tryCommand(port, ['PING'], { auth })) === 'PONG') {
      const server = await info(port, 'server', auth === undefined ? {} : { auth });
      if (server?.process_id === String(child.pid)) return child;
    }
    await delay(25);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s${await logTail(logFile)}`);
}

interface LaunchOptions {
  readonly port: number;
  readonly dir: string;
  /** The argument list, built anew for each (re)start so a restart can follow a changed topology. */
  readonly args: () => readonly string[] | Promise<readonly string[]>;
  /** Quoted in start errors. */
  readonly logFile?: string;
  /** The user the start-up check logs in as, when the server has ACL users. */
  readonly auth?: RawCommandOptions['auth'];
}

/** Starts a server and wraps it in a RedisProcess handle (stop() removes `dir`). */
export async function launchRedis(options: LaunchOptions): Promise<RedisProcess> {
  const { port, dir, logFile, auth } = options;
  let child: ChildProcess | undefined = await spawnRedis(await options.args(), port, logFile, auth);
  let paused = false;
  const waitExit = (c: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) resolve();
      else c.once('exit', () => resolve());
    });
  const proc: RedisProcess = {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get running() {
      return child !== undefined && !paused;
    },
    async kill() {
      if (!child) return;
      const c = child;
      child = undefined;
      paused = false;
      c.kill('SIGKILL');
      await waitExit(c);
    },
    pause() {
      if (!child) return;
      child.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      if (!child) return;
      child.kill('SIGCONT');
      paused = false;
    },
    async restart() {
      if (child) await proc.kill();
      child = await spawnRedis(await options.args(), port, logFile, auth);
    },
    async stop() {
      if (paused) proc.resume();
      await proc.kill();
      await removeTempDir(dir);
    },
  };
  return proc;
}

/** One raw RESP PING, so the harness does not depend on the client under test. */
export function pingOnce(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.once('data', (buf) => done(buf.toString().startsWith('+PONG')));
  });
}
