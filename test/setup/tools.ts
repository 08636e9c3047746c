import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { aptInstall, isExecutable, MissingPiece, onPath } from './install.js';

/** A program the tests run: where it is, its version, and how it was found (for the set-up's line). */
export interface Found {
  readonly path: string;
  readonly version: string;
  readonly how: string;
}

export type Say = (line: string) => void;

export function versionOf(path: string, args: readonly string[], pattern: RegExp): string {
  const run = spawnSync(path, args, { encoding: 'utf8', timeout: 10_000 });
  return pattern.exec(`${run.stdout ?? ''}${run.stderr ?? ''}`)?.[1] ?? 'version unknown';
}

/** A variable naming a program: a path, or a name looked up on PATH. Wrong values fail, never fall back. */
export function fromVariable(name: string, what: string): string | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const path = value.includes('/') ? value : onPath(value);
  if (path === undefined || !isExecutable(path)) {
    throw new MissingPiece(`${what}: ${name}=${value} is not an executable file; fix or unset it`);
  }
  return path;
}

/**
 * A program named by `variable` when set (an explicit choice wins over PATH), else PATH's, else the
 * Debian package `pkg` installed now (which puts it in /usr/bin). `variable` is set to the path found,
 * for the tests and their child processes.
 */
function findProgram(variable: string, name: string, pkg: string, say: Say): { path: string; how: string } {
  let path = fromVariable(variable, name);
  let how = variable;
  if (path === undefined) {
    path = onPath(name);
    how = 'on PATH';
  }
  if (path === undefined) {
    aptInstall(pkg, `${name}: not on PATH, ${variable} unset`, say);
    path = onPath(name) ?? `/usr/bin/${name}`;
    how = 'installed now with apt-get';
    if (!isExecutable(path))
      throw new MissingPiece(`${name}: the ${pkg} package is installed, yet no ${path}`);
  }
  process.env[variable] = path;
  return { path, how };
}

/**
 * redis-server: REDIS_SERVER_BIN when set (an explicit choice wins over PATH), else PATH, else
 * Debian's package. redis-cli (Cluster set-up) and redis-benchmark (warm bench) are taken from the
 * same folder when it has them, so the three come from one Redis.
 */
export function findRedisServer(say: Say): Found {
  const { path, how } = findProgram('REDIS_SERVER_BIN', 'redis-server', 'redis-server', say);
  for (const [variable, tool] of [
    ['REDIS_CLI_BIN', 'redis-cli'],
    ['REDIS_BENCHMARK_BIN', 'redis-benchmark'],
  ] as const) {
    const sibling = join(dirname(path), tool);
    if (!process.env[variable] && isExecutable(sibling)) process.env[variable] = sibling;
  }
  return { path, how, version: versionOf(path, ['--version'], /v=(\S+)/) };
}

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** Chromium for playwright-core: CHROMIUM_PATH when set, else Debian's, else Debian's package. */
export function findChromium(say: Say): Found {
  let path = fromVariable('CHROMIUM_PATH', 'chromium');
  let how = 'CHROMIUM_PATH';
  if (path === undefined && isExecutable(DEBIAN_CHROMIUM)) {
    path = DEBIAN_CHROMIUM;
    how = "Debian's";
  }
  if (path === undefined) {
    aptInstall('chromium', `chromium: ${DEBIAN_CHROMIUM} is missing, CHROMIUM_PATH unset`, say);
    path = DEBIAN_CHROMIUM;
    how = 'installed now with apt-get';
  }
  process.env.CHROMIUM_PATH = path;
  return { path, how, version: versionOf(path, ['--version'], /(Chromium \S+)/) };
}

/** The newest of Debian's PostgreSQL servers (/usr/lib/postgresql/<major>/bin), if any. */
function debianPostgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && isExecutable(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(root, majors[0], 'bin');
}

/**
 * The folder holding initdb, pg_ctl and postgres: Debian's (not on PATH there), else PATH's (other
 * systems), else Debian's `postgresql` package.
 */
export function findPostgresBin(say: Say): Found {
  let bin = debianPostgresBin();
  let how = "Debian's";
  if (bin === undefined) {
    const initdb = onPath('initdb');
    bin = initdb === undefined ? undefined : dirname(initdb);
    how = 'on PATH';
  }
  if (bin === undefined) {
    aptInstall('postgresql', 'postgresql: no initdb in /usr/lib/postgresql/*/bin nor on PATH', say);
    bin = debianPostgresBin();
    how = 'installed now with apt-get';
    if (bin === undefined)
      throw new MissingPiece('postgresql: installed, yet no /usr/lib/postgresql/*/bin/initdb');
  }
  const postgres = join(bin, 'postgres');
  return { path: bin, how, version: versionOf(postgres, ['--version'], /(\d+(\.\d+)?)/) };
}

/**
 * promtool (`promtool check metrics` on the live /metrics of the API and a worker): PROMTOOL_BIN
 * when set, else PATH, else Debian's `prometheus` package (it ships /usr/bin/promtool).
 */
export function findPromtool(say: Say): Found {
  const { path, how } = findProgram('PROMTOOL_BIN', 'promtool', 'prometheus', say);
  return { path, how, version: versionOf(path, ['--version'], /version (\S+)/) };
}

/**
 * prometheus (test/deploy/prometheus-live.test.ts scrapes a running API pod and worker with the
 * shipped rules): PROMETHEUS_BIN when set, else PATH, else Debian's `prometheus` package (it ships
 * /usr/bin/prometheus; the package's own service is not started, the test runs its own server).
 */
export function findPrometheus(say: Say): Found {
  const { path, how } = findProgram('PROMETHEUS_BIN', 'prometheus', 'prometheus', say);
  return { path, how, version: versionOf(path, ['--version'], /version (\S+)/) };
}
