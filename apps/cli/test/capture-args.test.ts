/** `cachefleet capture`'s arguments, without a database: every bad input is a usage error (exit 2). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXIT, type Output, run } from '../src/index.js';

class Text implements Output {
  text = '';
  write(s: string): void {
    this.text += s;
  }
}

async function cli(args: readonly string[], env: Record<string, string> = {}) {
  const stdout = new Text();
  const stderr = new Text();
  const code = await run(['capture', ...args], { env, stdout, stderr, now: () => 0 });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('cachefleet capture arguments', () => {
  it('names what is wrong: no action, an unknown one, no DATABASE_URL, a bad CAPTURE_SCHEMA', async () => {
    expect(await cli([])).toMatchObject({
      code: EXIT.USAGE,
      stderr: expect.stringMatching(/E_CLI_USAGE: expected install or sql/),
    });
    expect((await cli(['uninstall'])).stderr).toMatch(/expected install or sql/);
    expect((await cli(['install'])).stderr).toMatch(/E_CLI_USAGE: DATABASE_URL: required/);
    expect((await cli(['sql', 'more'])).stderr).toMatch(/unexpected argument "more"/);
    const bad = await cli(['install'], {
      DATABASE_URL: 'postgres://x@127.0.0.1:1/x',
      CAPTURE_SCHEMA: 'Bad;',
    });
    expect(bad).toMatchObject({
      code: EXIT.USAGE,
      stderr: expect.stringMatching(/E_CAPTURE_CONFIG: CAPTURE_SCHEMA/),
    });
  });

  it('any other arguments: exit 2 with one error line, nothing on stdout, no connection (property)', async () => {
    const arg = fc.oneof(fc.constantFrom('install', 'sql', '--json', '--nope', '-x', '--', ''), fc.string());
    await fc.assert(
      fc.asyncProperty(fc.array(arg, { maxLength: 4 }), async (args) => {
        fc.pre(!args.includes('--help') && !args.includes('-h'));
        const r = await cli(args);
        expect(r.code).toBe(EXIT.USAGE);
        expect(r.stdout).toBe('');
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
      }),
      { numRuns: 200 },
    );
  });
});
