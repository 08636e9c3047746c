/**
 * The worker runtime's contract with what it reads back from the queue Redis: the saved cursor
 * (checked against the catalogue's state schema) and the failure reason BullMQ keeps (a coded
 * error's code in front, once). A real redis-server, a real FleetRuntime, a tiny namespace.
 */
import { randomBytes } from 'node:crypto';
import {
  type RedisProcess,
  startRedis,
  startTestRuntime,
  type TestRuntime,
  waitUntil,
} from '@cachefleet/test';
import { defineNamespace } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Definitions,
  type JobClient,
  type JobView,
  type WarmState,
  warmResultSchema,
} from '../src/index.js';

const TAG = randomBytes(3).toString('hex');
const loads: string[][] = [];
const item = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string() }),
  load: async (id) => ({ id }),
  loadMany: async (ids) => {
    loads.push([...ids]);
    if (ids.some((id) => id.startsWith('bad'))) throw new Error('the source refused');
    return new Map(ids.map((id) => [id, { id }]));
  },
});
const definitions: Definitions = { namespaces: [item], critical: {}, close: async () => {} };

let redis: RedisProcess;
let worker: TestRuntime;
let jobs: JobClient;

beforeAll(async () => {
  redis = await startRedis();
  worker = await startTestRuntime({
    redisUrl: redis.url,
    prefix: `rt${TAG}`,
    definitions,
    queues: [{ queue: 'warm', concurrency: 1 }],
  });
  jobs = worker.jobs;
});

afterAll(async () => {
  await worker?.close();
  await redis?.stop();
});

async function settled(id: string, done: (view: JobView) => boolean): Promise<JobView> {
  return waitUntil(`job ${id}`, async () => {
    const view = await jobs.job(id);
    return view !== undefined && done(view) ? view : undefined;
  });
}

/** Adds a warm of `keys` as a resumed job would look: with a cursor saved by an earlier attempt. */
async function warmWithCursor(keys: string[], state: unknown): Promise<string> {
  const job = await jobs
    .queue('warm')
    .add('warm', { payload: { type: 'keys', namespace: 'item', keys }, state }, { attempts: 1 });
  return job.id as string;
}

describe('the saved cursor', () => {
  it('resumes from a cursor that matches the catalogue state schema', async () => {
    const cursor: WarmState = {
      index: 0,
      offset: 1,
      totals: { requested: 1, loaded: 1, written: 1, changed: 1, invalid: 0 },
    };
    const id = await warmWithCursor(['r1', 'r2'], cursor);
    const view = await settled(id, (v) => v.state === 'completed');
    // Only r2 was loaded; r1's counts come from the cursor.
    expect(loads).toContainEqual(['r2']);
    expect(loads).not.toContainEqual(['r1', 'r2']);
    expect(warmResultSchema.parse(view.result)).toMatchObject({ requested: 2, written: 2 });
  });

  it('starts over when the saved cursor no longer parses (another version saved it)', async () => {
    const id = await warmWithCursor(['s1', 's2'], { index: 'zero', offset: -1 });
    const view = await settled(id, (v) => v.state === 'completed');
    expect(loads).toContainEqual(['s1', 's2']);
    expect(warmResultSchema.parse(view.result)).toMatchObject({ requested: 2, written: 2 });
  });
});

/** The first stack trace BullMQ kept for a job (what bull-board shows on a failed job's card). */
async function firstTrace(id: string): Promise<string | undefined> {
  return (await jobs.queue('warm').getJob(id))?.stacktrace?.[0];
}

describe('failure reasons', () => {
  it("a retried failure keeps the library error's code once in front of its message", async () => {
    const { id } = await jobs.enqueue('warm', { type: 'keys', namespace: 'item', keys: ['bad1'] });
    const view = await settled(id, (v) => v.attemptsMade >= 1 && v.failedReason !== undefined);
    expect(view.state).not.toBe('failed'); // retried: 5 attempts in the catalogue
    expect(view.failedReason).toBe('E_CACHE_LOADER_FAILED: warm: loader of item failed');
    expect(await firstTrace(id)).toMatch(
      /^Error: E_CACHE_LOADER_FAILED: warm: loader of item failed\n\s+at /,
    );
    await jobs.queue('warm').remove(id);
  });

  it('a catalogue rule broken fails at once, its code once in front', async () => {
    const { id } = await jobs.enqueue('warm', { type: 'keys', namespace: 'nosuch', keys: ['1'] });
    const view = await settled(id, (v) => v.state === 'failed');
    expect(view.attemptsMade).toBe(1);
    expect(view.failedReason).toMatch(/^E_JOB_UNKNOWN_NAMESPACE: no namespace "nosuch"/);
    // The dashboard shows the trace: the code heads it too, and its frames are where it was thrown.
    const trace = await firstTrace(id);
    expect(trace).toMatch(/^UnrecoverableError: E_JOB_UNKNOWN_NAMESPACE: no namespace "nosuch"/);
    expect(trace).toMatch(/handlers\/context\.ts/);
  });
});
