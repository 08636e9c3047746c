/**
 * Ids of a keys warm or invalidation, against the namespace's id schema (issue 9.3), with a real
 * redis-server and a real FleetRuntime serving both queues over a namespace whose ids are numbers:
 *
 *  - a producer given the namespaces refuses a bad id or an unknown namespace, naming the field,
 *    and enqueues nothing;
 *  - a job that still holds bad ids (added by a producer that was not given them) does the valid
 *    part, reports the bad ids in its result, and fails at once, without retries, only when no
 *    id is valid.
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
  invalidateResultSchema,
  JobClient,
  type JobView,
  loadQueueConfig,
  warmResultSchema,
} from '../src/index.js';

const TAG = randomBytes(3).toString('hex');
const PREFIX = `ids${TAG}`;
/** The source of truth: what a read loads; the test changes it behind the cache's back. */
const source = new Map<string, { id: string; v: number }>();
const item = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 60, l2: 600 },
  schema: z.object({ id: z.string(), v: z.number() }),
  idSchema: z.string().regex(/^[1-9]\d{0,8}$/, 'item ids are positive integers'),
  load: async (id) => source.get(id),
  loadMany: async (ids) =>
    new Map(ids.flatMap((id) => (source.has(id) ? [[id, source.get(id)]] : [])) as never),
});
const definitions: Definitions = { namespaces: [item], critical: {}, close: async () => {} };

let redis: RedisProcess;
let worker: TestRuntime;
/** A producer that knows the namespaces (as the API and the CLI are). */
let checked: JobClient;

beforeAll(async () => {
  redis = await startRedis();
  worker = await startTestRuntime({
    redisUrl: redis.url,
    prefix: PREFIX,
    definitions,
    queues: [
      { queue: 'warm', concurrency: 1 },
      { queue: 'invalidate', concurrency: 1 },
    ],
  });
  checked = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: PREFIX }), {
    namespaces: definitions.namespaces,
  });
});

afterAll(async () => {
  await checked?.close();
  await worker?.close();
  await redis?.stop();
});

function settled(id: string): Promise<JobView> {
  return waitUntil(`job ${id} to complete or fail`, async () => {
    const view = await worker.jobs.job(id);
    if (view?.state === 'completed' && view.result != null) return view;
    if (view?.state === 'failed' && view.failedReason !== undefined) return view;
    return undefined;
  });
}

async function total(): Promise<number> {
  let n = 0;
  for (const q of ['warm', 'invalidate'] as const)
    n += Object.values(await checked.queue(q).getJobCounts()).reduce((a, b) => a + b, 0);
  return n;
}

describe('a producer given the namespaces', () => {
  it('refuses an id the namespace refuses, or a namespace it does not have, naming the field; enqueues nothing', async () => {
    const before = await total();
    for (const [name, payload, message] of [
      [
        'invalidate',
        { scope: 'keys', namespace: 'item', keys: ['77777', 'not-an-id'] },
        /^invalidate: keys\.1: /,
      ],
      [
        'warm',
        { type: 'keys', namespace: 'item', keys: ['x1'] },
        /^warm: keys\.0: .*item ids are positive integers/,
      ],
      [
        'invalidate',
        { scope: 'pattern', namespace: 'nosuch', pattern: '1*' },
        /^invalidate: namespace: .*"nosuch"/,
      ],
      ['warm', { type: 'all', namespaces: ['item', 'nosuch'] }, /^warm: namespaces\.1: .*"nosuch"/],
    ] as const) {
      await expect(checked.enqueue(name, payload as never), JSON.stringify(payload)).rejects.toMatchObject({
        code: 'E_JOB_INVALID_PAYLOAD',
        message: expect.stringMatching(message),
      });
    }
    expect(await total()).toBe(before);
    const ok = await checked.enqueue('invalidate', { scope: 'keys', namespace: 'item', keys: ['1', '2'] });
    expect((await settled(ok.id)).state).toBe('completed');
  });
});

describe('a job that holds bad ids (added by a producer without the namespaces)', () => {
  // BUG (issue 9.3): {keys: ['77777', 'not-an-id']} failed five times in the worker (the cache
  // refuses the whole delete for one bad id) and 77777 was never invalidated: the stale value stayed.
  it('a keys invalidation invalidates the valid ids and reports the others, in one attempt', async () => {
    source.set('77777', { id: '77777', v: 1 });
    expect((await worker.cache.set(item, '77777', { id: '77777', v: 0 })).ok).toBe(true); // stale in L2
    const { id } = await worker.jobs.enqueue('invalidate', {
      scope: 'keys',
      namespace: 'item',
      keys: ['77777', 'not-an-id'],
    });
    const view = await settled(id);
    expect(view.state, view.failedReason).toBe('completed');
    expect(view.attemptsMade).toBe(1);
    expect(invalidateResultSchema.parse(view.result)).toMatchObject({
      removed: 1,
      invalid: 1,
      invalidIds: ['not-an-id'],
    });
    const read = await worker.cache.get(item, '77777');
    expect(read.ok && read.value).toEqual({ id: '77777', v: 1 });
  });

  it('a keys warm warms the valid ids and reports the others', async () => {
    source.set('88888', { id: '88888', v: 8 });
    const { id } = await worker.jobs.enqueue('warm', {
      type: 'keys',
      namespace: 'item',
      keys: ['bad', '88888'],
    });
    const view = await settled(id);
    expect(view.state, view.failedReason).toBe('completed');
    expect(warmResultSchema.parse(view.result)).toMatchObject({
      written: 1,
      invalid: 1,
      invalidIds: ['bad'],
    });
  });

  it('no valid id at all: fails at once, without retries, saying so', async () => {
    for (const [name, payload] of [
      ['invalidate', { scope: 'keys', namespace: 'item', keys: ['a', 'b'] }],
      ['warm', { type: 'keys', namespace: 'item', keys: ['a'] }],
    ] as const) {
      const { id } = await worker.jobs.enqueue(name, payload as never);
      const view = await settled(id);
      expect(view.state).toBe('failed');
      expect(view.attemptsMade).toBe(1);
      expect(view.failedReason).toMatch(/^E_JOB_INVALID_PAYLOAD: .*no valid id.*"a"/);
    }
  });
});
