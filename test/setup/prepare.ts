import { findKubectl } from './kubectl.js';
import { startPrivatePostgres } from './postgres.js';
import { findChromium, findPostgresBin, findPrometheus, findPromtool, findRedisServer } from './tools.js';

export { MissingPiece } from './install.js';

interface PrepareOptions {
  /** The browser test's Chromium (the bench does not need it). */
  readonly chromium: boolean;
  /** kubectl, to render deploy/k8s (test/deploy). */
  readonly kubectl?: boolean;
  /** A PostgreSQL server for TEST_DATABASE_URL. */
  readonly postgres: boolean;
  /** promtool, for the metrics tests' `promtool check metrics` (the bench does not need it). */
  readonly promtool?: boolean;
  /** A Prometheus server, for test/deploy/prometheus-live.test.ts (the bench does not need it). */
  readonly prometheus?: boolean;
  /** One line per piece: what was found, started or installed. */
  readonly say: (line: string) => void;
}

interface Prepared {
  /** Stops what prepare() started (the private PostgreSQL). */
  stop(): void;
}

/**
 * Finds, installs or starts what the tests and benches need, and hands it to them (and their child
 * processes) through the environment: REDIS_SERVER_BIN (read by test/helpers' startRedis),
 * CHROMIUM_PATH (test/browser.test.ts), KUBECTL_BIN (test/deploy), PROMTOOL_BIN (test/metrics.test.ts), PROMETHEUS_BIN
 * (test/deploy/prometheus-live.test.ts) and
 * TEST_DATABASE_URL (testDatabaseUrl()). Every program is
 * found or installed before anything starts, so a missing one fails the run in its first second.
 * A piece that cannot be had throws MissingPiece, whose message is the one line to print.
 */
export async function prepare(options: PrepareOptions): Promise<Prepared> {
  const { say } = options;
  const redis = findRedisServer(say);
  say(`redis-server: ${redis.path}, v${redis.version} (${redis.how})`);
  if (options.chromium) {
    const chromium = findChromium(say);
    say(`chromium: ${chromium.path}, ${chromium.version} (${chromium.how})`);
  }
  if (options.kubectl === true) {
    const kubectl = findKubectl(say);
    say(`kubectl: ${kubectl.path}, ${kubectl.version} (${kubectl.how})`);
  }
  if (options.promtool) {
    const promtool = findPromtool(say);
    say(`promtool: ${promtool.path}, ${promtool.version} (${promtool.how})`);
  }
  if (options.prometheus === true) {
    const prometheus = findPrometheus(say);
    say(`prometheus: ${prometheus.path}, ${prometheus.version} (${prometheus.how})`);
  }
  if (!options.postgres) return { stop: () => {} };
  const own = process.env.TEST_DATABASE_URL;
  if (own !== undefined && own !== '') {
    say(`postgresql: TEST_DATABASE_URL is set: using ${redact(own)}, no private server`);
    return { stop: () => {} };
  }
  const bin = findPostgresBin(say);
  const server = await startPrivatePostgres(bin.path);
  process.env.TEST_DATABASE_URL = server.url;
  say(
    `postgresql: private PostgreSQL ${bin.version} (${bin.how}) at ${server.url}, data in ${server.dir}; removed at the end (TEST_DATABASE_URL to use your own)`,
  );
  return { stop: () => server.stop() };
}

/** A URL without its password, for the set-up's line. */
function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
