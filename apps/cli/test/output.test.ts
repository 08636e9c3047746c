/**
 * What the CLI prints, without Redis: the progress display on a terminal and in a log, the
 * progress text of each kind of job, the error → exit code mapping, and README's tables.
 */
import { readFileSync } from 'node:fs';
import { JobError, type JobView } from '@cachefleet/jobs';
import { CacheError } from '@cachefleet/tiered-cache';
import { describe, expect, it } from 'vitest';
import {
  CliError,
  describeFailure,
  describeProgress,
  EXIT,
  type Output,
  ProgressBar,
  render,
} from '../src/index.js';

class Capture implements Output {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 80,
  ) {}
  write(s: string): void {
    this.text += s;
  }
}

function view(over: Partial<JobView>): JobView {
  return {
    id: 'j1',
    queue: 'warm',
    name: 'warm',
    state: 'active',
    progress: 0,
    payload: {},
    attemptsMade: 0,
    result: undefined,
    failedReason: undefined,
    createdAt: 1,
    finishedAt: undefined,
    ...over,
  };
}

describe('the progress display', () => {
  it('on a terminal: redraws one line in place, then ends it', () => {
    const out = new Capture(true);
    const bar = new ProgressBar(out, () => 0);
    bar.update({ fraction: 0.25, text: 'active 1/4' });
    bar.update({ fraction: 0.25, text: 'active 1/4' }); // unchanged: not redrawn
    bar.update({ fraction: 0.5, text: 'active 2/4' });
    bar.finish({ fraction: 1, text: 'completed 4/4' });
    const frames = out.text.split('\r').filter(Boolean);
    expect(frames).toHaveLength(3);
    expect(frames[0]).toBe(`${render({ fraction: 0.25, text: 'active 1/4' })}\x1b[K`);
    expect(out.text.endsWith('completed 4/4\x1b[K\n')).toBe(true);
    expect(out.text.split('\n')).toHaveLength(2);
  });

  it('in a log: one line per change, at most one a second, and always the final state', () => {
    const out = new Capture(false);
    let now = 10_000;
    const bar = new ProgressBar(out, () => now);
    bar.update({ fraction: 0.1, text: 'active 1/10' });
    now += 400;
    bar.update({ fraction: 0.2, text: 'active 2/10' }); // within the second: skipped
    now += 700;
    bar.update({ fraction: 0.3, text: 'active 3/10' });
    now += 1_000;
    bar.update({ fraction: 0.3, text: 'active 3/10' }); // unchanged: skipped
    now += 10;
    bar.finish({ fraction: 1, text: 'completed 10/10' });
    expect(out.text.split('\n').filter(Boolean)).toEqual([
      render({ fraction: 0.1, text: 'active 1/10' }),
      render({ fraction: 0.3, text: 'active 3/10' }),
      render({ fraction: 1, text: 'completed 10/10' }),
    ]);
    expect(out.text).not.toContain('\r');
  });

  it('draws a bar only when the job reports how far it is', () => {
    expect(render({ fraction: 0.5, text: 'x' })).toBe(`[${'#'.repeat(12)}${'-'.repeat(12)}]  50% x`);
    expect(render({ fraction: undefined, text: 'waiting' })).toBe('waiting');
  });

  it('describes each kind of progress report', () => {
    expect(
      describeProgress(
        view({ progress: { namespace: 'product', done: 500, total: 2000, written: 498 } }),
        undefined,
      ),
    ).toEqual({ fraction: 0.25, text: 'active 500/2000 namespace=product written=498' });
    // The full warm reports its percentage too (issue 10.8): the bar shows it, the text does not repeat it.
    expect(
      describeProgress(
        view({ progress: { namespace: 'product', done: 500, total: 2000, percent: 25, written: 498 } }),
        undefined,
      ),
    ).toEqual({ fraction: 0.25, text: 'active 500/2000 namespace=product written=498' });
    expect(
      describeProgress(view({ progress: { namespace: 'product', done: 1000, written: 7 } }), undefined),
    ).toEqual({ fraction: undefined, text: 'active done=1000 namespace=product written=7' });
    const parent = view({ name: 'invalidate', queue: 'invalidate', state: 'waiting-children' });
    expect(describeProgress(parent, { slices: 3, completed: 1, scanned: 2500, unlinked: 2400 })).toEqual({
      fraction: 1 / 3,
      text: 'waiting-children slices 1/3 scanned=2500 unlinked=2400',
    });
    expect(
      describeProgress(view({ state: 'delayed', attemptsMade: 1, failedReason: 'Redis down' }), undefined)
        .text,
    ).toBe('delayed (attempt 1 failed: Redis down; retrying)');
  });
});

describe('errors', () => {
  it('map to the documented exit codes, with the code once in the line', () => {
    expect(describeFailure(new CliError('E_CLI_NOT_FOUND', 'no job "x"'))).toEqual({
      code: 'E_CLI_NOT_FOUND',
      message: 'no job "x"',
      text: 'E_CLI_NOT_FOUND: no job "x"',
      exit: EXIT.NOT_FOUND,
    });
    expect(describeFailure(new JobError('E_JOB_INVALID_PAYLOAD', '--pattern: bad'))).toEqual({
      code: 'E_JOB_INVALID_PAYLOAD',
      message: '--pattern: bad',
      text: 'E_JOB_INVALID_PAYLOAD: --pattern: bad',
      exit: EXIT.USAGE,
    });
    expect(describeFailure(new CacheError('E_CACHE_L2_UNAVAILABLE')).exit).toBe(EXIT.UNREACHABLE);
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(describeFailure(refused).exit).toBe(EXIT.UNREACHABLE);
    expect(describeFailure(new TypeError('boom\n  at x')).exit).toBe(EXIT.JOB_FAILED);
    expect(describeFailure(new TypeError('boom\n  at x')).message).toBe('boom at x');
    expect(describeFailure(new TypeError('boom\n  at x')).text).toBe('E_CLI_INTERNAL: boom at x');
  });

  it('are documented in the README with every exit code (codes: test/error-codes.test.ts)', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const exit of Object.values(EXIT)) expect(readme).toMatch(new RegExp(`^\\| ${exit} \\|`, 'm'));
  });
});
