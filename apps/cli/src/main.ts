import { run } from './cli.js';

/**
 * `cachefleet` (bin/cachefleet.js), or `node --import tsx apps/cli/src/main.ts`. The exit code is
 * set, not forced: every connection is closed by then, so the process ends by itself.
 */
process.exitCode = await run(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  now: Date.now,
});
