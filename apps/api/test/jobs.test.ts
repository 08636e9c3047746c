/** Prewarm and pattern invalidation as jobs through the API pod, and the critical warm enqueued at start. */

import { invalidateResultSchema, warmResultSchema } from '@cachefleet/jobs';
import { waitUntil } from '@cachefleet/test';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  call,
  Enqueued,
  ErrorJson,
  finished,
  JobJson,
  jobClient,
  KEY_BASE,
  l2Keys,
  PRODUCTS,
  QUEUE_PREFIX,
  redis,
  startExtraApi,
  stats,
  useApiSuite,
} from './fixture.js';

useApiSuite();

describe('6. prewarm', () => {
  it('POST /cache/prewarm {type: all, async: false} → 200 with every seeded product written', async () => {
    const res = await call('/cache/prewarm', {
      method: 'POST',
      token: true,
      body: { type: 'all', async: false },
    });
    expect(res.status).toBe(200);
    const body = z
      .object({ jobId: z.string(), state: z.literal('completed'), result: z.unknown() })
      .parse(res.json);
    // The answer may lack the result when the job finished between the two reads of
    // JobClient.job (BUG, below): then it is read from the job.
    const result = warmResultSchema.parse(body.result ?? (await finished(body.jobId)).result);
    expect(result).toMatchObject({
      type: 'all',
      namespaces: ['product'],
      requested: PRODUCTS,
      loaded: PRODUCTS,
      written: PRODUCTS,
      invalid: 0,
    });
    expect(await l2Keys(`${KEY_BASE}*`)).toHaveLength(PRODUCTS);
  });

  it('POST /cache/prewarm {type: critical} → 202 with a job that completes', async () => {
    const res = await call('/cache/prewarm', { method: 'POST', token: true, body: { type: 'critical' } });
    expect(res.status).toBe(202);
    const { jobId, deduplicated, follow } = Enqueued.parse(res.json);
    expect(deduplicated).toBe(false);
    expect(follow).toBe(`/jobs/${jobId}`);
    const view = await finished(jobId);
    expect(view).toMatchObject({ queue: 'warm', name: 'warm', payload: { type: 'critical' } });
    const result = warmResultSchema.parse(view.result);
    expect(result).toMatchObject({ type: 'critical', requested: 100, loaded: 100, prewarmed: 100 });
  });

  it.each([
    [{ type: 'bogus' }, 'type'],
    [{}, 'type'],
    [{ type: 'all', extra: 1 }, 'extra'],
    [{ type: 'all', waitMs: 5 }, 'waitMs'],
    [{ type: 'hot', top: 0 }, 'top'],
    [{ type: 'all', namespaces: ['Bad'] }, 'namespaces'],
  ])('POST /cache/prewarm %j → 400 naming %s', async (body, field) => {
    const res = await call('/cache/prewarm', { method: 'POST', token: true, body });
    expect(res.status).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toContain(field);
  });

  it('a prewarm or invalidation naming a namespace nobody defines → 400 naming it, and no job', async () => {
    const before = await call('/cache/stats', { token: true });
    expect(before.status).toBe(200);
    for (const [path, body] of [
      ['/cache/prewarm', { type: 'all', namespaces: ['nosuch'], async: false, waitMs: 10_000 }],
      ['/cache/invalidate', { namespace: 'nosuch', pattern: '1*' }],
    ] as const) {
      const res = await call(path, { method: 'POST', token: true, body });
      expect(res.status).toBe(400);
      expect(z.object({ message: z.string() }).parse(res.json).message).toContain('"nosuch"');
    }
  });
});

describe('5. invalidation jobs', () => {
  it('POST /cache/invalidate {pattern: 1*} → 202; the job completes; its slice is listed; L2 has no 1* key', async () => {
    // Read a few so they are in L1 as well as L2 (the warm above filled L2).
    for (const id of ['1', '10', '150', '1999']) expect((await call(`/products/${id}`)).status).toBe(200);
    const present = await l2Keys(`${KEY_BASE}1*`);
    expect(present.length).toBeGreaterThanOrEqual(1);

    const res = await call('/cache/invalidate', {
      method: 'POST',
      token: true,
      body: { namespace: 'product', pattern: '1*' },
    });
    expect(res.status).toBe(202);
    const { jobId, deduplicated } = Enqueued.parse(res.json);
    expect(deduplicated).toBe(false);

    const view = await finished(jobId);
    expect(view).toMatchObject({ queue: 'invalidate', name: 'invalidate' });
    const result = invalidateResultSchema.parse(view.result);
    expect(result).toMatchObject({ scope: 'pattern', namespace: 'product' });
    expect(result.removed).toBeGreaterThanOrEqual(1);
    expect(result.removed).toBe(present.length);
    expect(result.slices).toBe(1);
    expect(view.children).toHaveLength(1);
    const child = view.children[0];
    expect(child).toMatchObject({ id: `${jobId}-slice-0`, name: 'invalidate-slice', state: 'completed' });
    expect(child?.progress).toMatchObject({ master: `127.0.0.1:${redis.port}`, unlinked: present.length });
    expect(view.progress).toMatchObject({ step: 'done', removed: present.length });

    expect(await l2Keys(`${KEY_BASE}1*`)).toEqual([]);
    expect((await l2Keys(`${KEY_BASE}2*`)).length).toBeGreaterThan(0); // other ids untouched
    // This pod's L1 dropped them too (the walk's event): the next read goes to the database.
    await waitUntil('the pattern dropped from L1', async () => {
      const before = await stats();
      expect((await call('/products/1999')).status).toBe(200);
      const after = await stats();
      return after.l3.loads > before.l3.loads ? true : undefined;
    });
  });

  it.each([
    [{ namespace: 'product' }, 'pattern'],
    [{ namespace: 'product', pattern: '1*', keys: ['1'] }, 'exactly one'],
    [{ namespace: 'product', pattern: 'a b' }, 'pattern'],
    [{ namespace: 'product', pattern: '{1,2}' }, 'pattern'],
    [{ namespace: 'Bad', all: true }, 'namespace'],
    [{ namespace: 'product', all: true, extra: 1 }, 'extra'],
    [{ namespace: 'product', keys: [] }, 'keys'],
    [{ namespace: 'product', all: false }, 'all'],
    [{ pattern: '1*' }, 'namespace'],
  ])('POST /cache/invalidate %j → 400 naming %s', async (body, field) => {
    const res = await call('/cache/invalidate', { method: 'POST', token: true, body });
    expect(res.status).toBe(400);
    const e = ErrorJson.parse(res.json);
    expect(e.error).toBe('invalid_body');
    expect(e.message).toContain(field);
  });

  it('the same invalidation twice while no worker runs is one job (deduplicated: true, same jobId)', async () => {
    // A pod on a queue prefix no worker serves: the first job stays pending.
    const idle = await startExtraApi({});
    const body = { namespace: 'product', pattern: '42*' };
    const first = await call('/cache/invalidate', { method: 'POST', token: true, body, base: idle.url });
    const second = await call('/cache/invalidate', { method: 'POST', token: true, body, base: idle.url });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    const a = Enqueued.parse(first.json);
    const b = Enqueued.parse(second.json);
    expect(a.deduplicated).toBe(false);
    expect(b).toMatchObject({ jobId: a.jobId, deduplicated: true });
    const other = Enqueued.parse(
      (
        await call('/cache/invalidate', {
          method: 'POST',
          token: true,
          body: { namespace: 'product', pattern: '43*' },
          base: idle.url,
        })
      ).json,
    );
    expect(other.jobId).not.toBe(a.jobId);
    const view = JobJson.parse((await call(`/jobs/${a.jobId}`, { token: true, base: idle.url })).json);
    expect(view.state).toBe('waiting');
    expect(view.children).toEqual([]);
  });

  // BUG, fixed (libs/jobs/src/client.ts, JobClient.job): the job's hash (getJob) and its state (getState) are
  // read in two round trips, so a job that finishes in between is shown `failed` without its
  // failedReason (or `completed` with a null result). GET /jobs/:id and the synchronous
  // POST /cache/prewarm (waitForJob) answer such views. Polled back to back, 30 jobs that fail at
  // once hit the window many times over. (Fixed.)
  it('a job seen failed always carries its failedReason (JobClient.job race)', async () => {
    const jobs = jobClient(QUEUE_PREFIX); // the queues the worker serves, as the API reads them
    for (let i = 0; i < 30; i++) {
      const { id } = await jobs.enqueue('warm', { type: 'all', namespaces: [`nosuch${i}`] });
      for (let polls = 0; ; polls++) {
        if (polls > 10_000) throw new Error(`job ${id} never finished`);
        const view = await jobs.job(id);
        if (view?.state === 'completed') break;
        if (view?.state === 'failed') {
          expect(view.failedReason, `job ${id} seen failed`).toBeDefined();
          break;
        }
      }
    }
  });

  it('GET /jobs/<unknown> → 404', async () => {
    const res = await call('/jobs/unknown', { token: true });
    expect(res.status).toBe(404);
    expect(ErrorJson.parse(res.json).error).toBe('not_found');
  });
});

describe('9. critical warm at start', () => {
  it('API_CRITICAL_WARM=true enqueues a critical warm job in the warm queue', async () => {
    const prefix = `${QUEUE_PREFIX}crit`;
    const pod = await startExtraApi({ API_CRITICAL_WARM: 'true', QUEUE_PREFIX: prefix });
    expect(pod.config.criticalWarm).toBe(true);
    const jobs = jobClient(prefix);
    const found = await waitUntil('a critical warm job', async () => {
      const all = await jobs
        .queue('warm')
        .getJobs(['waiting', 'active', 'completed', 'delayed', 'prioritized']);
      return all.find((j) => j.name === 'warm') ?? undefined;
    });
    expect(found.data).toEqual({ payload: { type: 'critical' } });
    expect(await jobs.queue('warm').count()).toBe(1);
    // Nothing of the kind when it is off (the main pod of this file).
    expect(await jobClient(`${QUEUE_PREFIX}none`).queue('warm').count()).toBe(0);
  });
});
