import { createInterface } from 'node:readline/promises';
import { loadTracingConfig, startTracing, type Tracing } from '@cachefleet/telemetry';
import { run } from './cli.js';
import { describeFailure } from './errors.js';

/** A y/N question on the terminal; only when both stdin and stderr are one (never in a pipe or CI). */
async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/**
 * `cachefleet` (bin/cachefleet.js), or `node --import tsx apps/cli/src/main.ts`. The exit code is
 * set, not forced: every connection is closed by then, so the process ends by itself.
 */
let tracing: Tracing | undefined;
try {
  tracing = startTracing(loadTracingConfig(process.env, 'cachefleet-cli'));
} catch (error) {
  const failure = describeFailure(error);
  process.stderr.write(`cachefleet: ${failure.text}\n`);
  process.exit(failure.exit);
}
process.exitCode = await run(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  now: Date.now,
  ...(process.stdin.isTTY && process.stderr.isTTY ? { confirm } : {}),
});
// The command's spans are sent before the process ends (it ends by itself once all is closed).
await tracing?.shutdown().catch(() => undefined);
