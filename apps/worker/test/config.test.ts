import { describe, expect, it } from 'vitest';
import { loadWorkerConfig, WorkerError } from '../src/index.js';

function refusal(env: Record<string, string>, argv: string[] = []): WorkerError {
  try {
    loadWorkerConfig(env, argv);
  } catch (error) {
    if (error instanceof WorkerError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('worker settings', () => {
  it('serves every queue at its default concurrency unless told; --queues wins over WORKER_QUEUES', () => {
    expect(loadWorkerConfig({}, []).queues).toEqual([
      { queue: 'warm', concurrency: 2 },
      { queue: 'invalidate', concurrency: 4 },
      { queue: 'migrate', concurrency: 1 },
      { queue: 'sweep', concurrency: 1 },
      { queue: 'backup', concurrency: 1 },
      { queue: 'tune', concurrency: 1 },
    ]);
    expect(loadWorkerConfig({ WORKER_QUEUES: 'warm:3' }, ['--queues', 'invalidate:1']).queues).toEqual([
      { queue: 'invalidate', concurrency: 1 },
    ]);
  });

  it('refuses a bad setting with E_WORKER_CONFIG naming the variable or the flag', () => {
    for (const [env, argv, message] of [
      [{ WORKER_HTTP_PORT: '70000' }, [], /^WORKER_HTTP_PORT: /],
      [{ WORKER_LOCK_MS: '5' }, [], /^WORKER_LOCK_MS: /],
      // Only below the lock does the takeover bound (lock + interval) hold: issue 9.7.
      [{ WORKER_STALLED_MS: '30000' }, [], /^WORKER_STALLED_MS: must be less than WORKER_LOCK_MS/],
      [{ WORKER_LOCK_MS: '2000', WORKER_STALLED_MS: '2000' }, [], /^WORKER_STALLED_MS: /],
      [{ WORKER_QUEUES: 'warm,bogus' }, [], /^WORKER_QUEUES: unknown queue "bogus"/],
      [{ WORKER_QUEUES: 'warm' }, ['--queues', 'warm:0'], /^--queues: concurrency of warm/],
      [{}, ['--queues'], /^--queues: expected a list/],
    ] as const) {
      const error = refusal(env, [...argv]);
      expect(error.code).toBe('E_WORKER_CONFIG');
      expect(error.message).toMatch(message);
    }
    // The queue list's own error is kept as the cause.
    expect(refusal({ WORKER_QUEUES: 'nope' }).cause).toMatchObject({ code: 'E_JOB_CONFIG' });
  });

  it('`capture` in the list is the change-capture role, alone or beside queues', () => {
    expect(loadWorkerConfig({}, ['--queues', 'capture'])).toMatchObject({ queues: [], capture: true });
    expect(loadWorkerConfig({ WORKER_QUEUES: 'warm:3, capture' }, [])).toMatchObject({
      queues: [{ queue: 'warm', concurrency: 3 }],
      capture: true,
    });
    expect(loadWorkerConfig({}, []).capture).toBe(false);
  });
});
