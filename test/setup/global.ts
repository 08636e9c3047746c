/**
 * vitest's globalSetup (vitest.config.ts): runs once per `vitest run`, before any test file, in the
 * main process; the test workers it then forks inherit the environment prepare() sets. Its teardown
 * stops the private PostgreSQL.
 */
import { MissingPiece, prepare } from './prepare.js';

export default async function setup(): Promise<() => void> {
  try {
    const prepared = await prepare({
      chromium: true,
      kubectl: true,
      postgres: true,
      promtool: true,
      prometheus: true,
      say: (line) => console.log(`set-up: ${line}`),
    });
    return () => prepared.stop();
  } catch (err) {
    if (!(err instanceof MissingPiece)) throw err;
    // Thrown, vitest would print a stack, a code frame and "No test files found": one line says it.
    console.error(`set-up: ${err.message}`);
    process.exit(1);
  }
}
