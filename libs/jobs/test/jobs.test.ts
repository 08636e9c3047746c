import { readFileSync } from 'node:fs';
import { delay, type RedisProcess, startRedis, waitUntil } from '@cachefleet/test';
import { Queue } from 'bullmq';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applySchedules,
  BACKUP_ENV_VARS,
  canonicalJson,
  DEFAULT_CONCURRENCY,
  DEFAULT_QUEUE_LIST,
  dedupeId,
  installSchedules,
  invalidatePayloadOf,
  isJobId,
  JobClient,
  JobError,
  keepSchedules,
  loadQueueConfig,
  loadSchedules,
  parsePayload,
  parseQueueList,
  QUEUE_ENV_VARS,
  QUEUE_METRICS_ENV_VARS,
  QUEUE_NAMES,
  SCHEDULE_ENV_VARS,
  schedulesMarker,
  sliceId,
  TUNE_ENV_VARS,
  warmPayloadOf,
} from '../src/index.js';

/** The catalogue's rules, the producer's checks and the schedules, against a private redis-server. */

let redis: RedisProcess;
let seq = 0;
const clients: JobClient[] = [];

function client(): JobClient {
  const c = new JobClient(
    loadQueueConfig({ QUEUE_REDIS_URL: redis.url, QUEUE_PREFIX: `jt${Date.now()}${seq++}` }),
  );
  clients.push(c);
  return c;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await redis.stop();
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof JobError ? error.code : `not a JobError: ${String(error)}`;
  }
  return undefined;
}

describe('payloads', () => {
  it('accepts each documented shape and fills defaults', () => {
    expect(parsePayload('warm', { type: 'hot' })).toEqual({ type: 'hot', top: 1000 });
    expect(parsePayload('warm', { type: 'keys', namespace: 'product', keys: ['1'] }).type).toBe('keys');
    expect(parsePayload('invalidate', { scope: 'pattern', namespace: 'product', pattern: 'a*' }).scope).toBe(
      'pattern',
    );
    expect(parsePayload('invalidate', { scope: 'namespace', namespace: 'product' }).scope).toBe('namespace');
  });

  it.each([
    ['warm', { type: 'everything' }, 'type'],
    ['warm', { type: 'keys', namespace: 'product', keys: [] }, 'keys'],
    ['warm', { type: 'all', extra: 1 }, ''],
    ['invalidate', { scope: 'pattern', namespace: 'product', pattern: 'a b' }, 'pattern'],
    ['invalidate', { scope: 'pattern', namespace: 'product', pattern: '{x}*' }, 'pattern'],
    ['invalidate', { scope: 'keys', namespace: 'Bad Name', keys: ['1'] }, 'namespace'],
    ['invalidate', { scope: 'tags', namespace: 'product' }, 'tags'],
  ] as const)('%s refuses %j, naming the field', (name, payload, field) => {
    try {
      parsePayload(name, payload);
      expect.unreachable('accepted an invalid payload');
    } catch (error) {
      expect(error).toBeInstanceOf(JobError);
      expect((error as JobError).code).toBe('E_JOB_INVALID_PAYLOAD');
      expect((error as JobError).message).toContain(`${name}: ${field}`);
    }
  });

  it('a pattern is accepted when well formed, refused with an unclosed [ or a lone trailing \\ (generated)', () => {
    const literal = fc.constantFrom('a', 'b', '1', '9', '-', ':', '_', '.');
    const token = fc.oneof(
      literal,
      fc.constant('*'),
      fc.constant('?'),
      fc.constantFrom('\\*', '\\[', '\\]', '\\\\'),
      fc
        .tuple(fc.boolean(), fc.array(fc.oneof(literal, fc.constant('\\]')), { minLength: 1, maxLength: 4 }))
        .map(([not, set]) => `[${not ? '^' : ''}${set.join('')}]`),
    );
    const glob = fc.array(token, { minLength: 1, maxLength: 12 }).map((t) => t.join(''));
    const accepts = (pattern: string) => {
      try {
        parsePayload('invalidate', { scope: 'pattern', namespace: 'product', pattern });
        return true;
      } catch {
        return false;
      }
    };
    fc.assert(
      fc.property(glob, (g) => {
        expect(accepts(g), g).toBe(g.length <= 256);
        // An opening bracket that nothing closes, or a backslash with nothing to escape.
        expect(accepts(`${g}[${g.replaceAll(']', '')}`), `${g}[…`).toBe(false);
        expect(accepts(`${g}\\`), `${g}\\`).toBe(false);
      }),
      { numRuns: 2_000 },
    );
  });

  it('builds the warm and invalidate payloads the API and the CLI both make, from what was asked', () => {
    expect(warmPayloadOf({ type: 'hot', namespaces: ['product'], top: 50 })).toEqual({
      type: 'hot',
      namespaces: ['product'],
      top: 50,
    });
    expect(warmPayloadOf({ type: 'all', top: 50 })).toEqual({ type: 'all' }); // top is hot's only
    expect(warmPayloadOf({ type: 'critical', namespaces: [] })).toEqual({ type: 'critical', namespaces: [] });
    expect(warmPayloadOf({ type: 'keys', namespaces: ['product'], keys: ['1', '2'] })).toEqual({
      type: 'keys',
      namespace: 'product',
      keys: ['1', '2'],
    });
    expect(codeOf(() => warmPayloadOf({ type: 'keys', namespaces: ['a', 'b'], keys: ['1'] }))).toBe(
      'E_JOB_INVALID_PAYLOAD',
    );
    const ns = { namespace: 'product' };
    expect(invalidatePayloadOf({ ...ns, pattern: '1*' })).toEqual({ scope: 'pattern', ...ns, pattern: '1*' });
    expect(invalidatePayloadOf({ ...ns, keys: ['1'] })).toEqual({ scope: 'keys', ...ns, keys: ['1'] });
    expect(invalidatePayloadOf({ ...ns, tags: ['t'] })).toEqual({ scope: 'tags', ...ns, tags: ['t'] });
    expect(invalidatePayloadOf({ ...ns, all: true })).toEqual({ scope: 'namespace', ...ns });
    for (const bad of [{}, { pattern: '1*', keys: ['1'] }, { all: false }])
      expect(
        codeOf(() => invalidatePayloadOf({ ...ns, ...bad })),
        JSON.stringify(bad),
      ).toBe('E_JOB_INVALID_PAYLOAD');
  });

  it('hashes equal payloads equal whatever their key order, and different ones apart', () => {
    const a = { scope: 'pattern', namespace: 'product', pattern: '1*' };
    const b = { pattern: '1*', namespace: 'product', scope: 'pattern' };
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(dedupeId('invalidate', a)).toBe(dedupeId('invalidate', b));
    expect(dedupeId('invalidate', { ...a, pattern: '2*' })).not.toBe(dedupeId('invalidate', a));
    expect(dedupeId('warm', a)).not.toBe(dedupeId('invalidate', a));
  });
});

describe('the producer', () => {
  it('refuses a bad payload before anything reaches the queue', async () => {
    const jobs = client();
    await expect(
      jobs.enqueue('invalidate', { scope: 'pattern', namespace: 'product', pattern: 'a b' }),
    ).rejects.toMatchObject({ code: 'E_JOB_INVALID_PAYLOAD' });
    await expect(
      jobs.enqueue('invalidate-slice', {
        namespace: 'product',
        pattern: '*',
        match: 'x',
        master: 'h:1',
        count: 10,
      }),
    ).rejects.toMatchObject({ code: 'E_JOB_INTERNAL' });
    const counts = await jobs.queue('invalidate').getJobCounts();
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('makes identical pending invalidations one job, until a worker starts it', async () => {
    const jobs = client();
    const payload = { scope: 'pattern', namespace: 'product', pattern: '1*' } as const;
    const first = await jobs.enqueue('invalidate', payload);
    const again = await jobs.enqueue('invalidate', { ...payload });
    const other = await jobs.enqueue('invalidate', { ...payload, pattern: '2*' });
    expect(first.deduplicated).toBe(false);
    expect(again).toMatchObject({ id: first.id, deduplicated: true });
    expect(other.deduplicated).toBe(false);
    expect(other.id).not.toBe(first.id);
    // What the worker does when the job starts: from then on a new request is a new job, since
    // the running one may already have walked past keys written after it began.
    const job = await jobs.queue('invalidate').getJob(first.id);
    expect(await job?.removeDeduplicationKey()).toBe(true);
    const after = await jobs.enqueue('invalidate', payload);
    expect(after.deduplicated).toBe(false);
    expect(after.id).not.toBe(first.id);
    expect((await jobs.job(first.id))?.state).toBe('waiting');
    expect(await jobs.job('no-such-job')).toBeUndefined();
  });

  // BUG (issue 9.4): an id naming one of BullMQ's own keys (`stalled-check`, `events`, `wait`) was
  // looked up as a job hash: WRONGTYPE, a 500 in the dashboard. isJobId tells job ids from the rest.
  it('isJobId: every key BullMQ wrote under a queue is a job id exactly when it is a job', async () => {
    const jobs = client();
    const warm = jobs.queue('warm');
    const { id } = await jobs.enqueue('warm', { type: 'all' });
    const counted = await warm.add('warm', { payload: { type: 'hot' } }); // BullMQ's own counter id
    await applySchedules(jobs, loadSchedules({}) ?? []); // adds each scheduler's next job
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await jobs.connection.scan(
        cursor,
        'MATCH',
        `${jobs.prefix}:warm:*`,
        'COUNT',
        1000,
      );
      keys.push(...found);
      cursor = next;
    } while (cursor !== '0');
    const names = keys.map((k) => k.slice(`${jobs.prefix}:warm:`.length));
    // A job's hash has a `timestamp`; the queue's other hashes (meta, a scheduler's) do not.
    const jobNames: string[] = [];
    for (const name of names) {
      const key = `${jobs.prefix}:warm:${name}`;
      if ((await jobs.connection.type(key)) === 'hash' && (await jobs.connection.hexists(key, 'timestamp')))
        jobNames.push(name);
    }
    expect(jobNames).toContain(id);
    expect(jobNames).toContain(counted.id);
    expect(jobNames.filter((n) => n.startsWith('repeat:cachefleet-warm-'))).toHaveLength(2);
    expect(names.filter((n) => isJobId(n)).sort()).toEqual(jobNames.sort());
    for (const other of ['stalled-check', 'events', 'wait', 'meta', 'id', `${id}:lock`, `${id}:logs`, ''])
      expect(isJobId(other), other).toBe(false);
    expect(isJobId(sliceId(id, 3))).toBe(true);
  });

  it('stores the validated payload (defaults filled) and the catalogue retry policy', async () => {
    const jobs = client();
    const { id } = await jobs.enqueue('warm', { type: 'hot' });
    const job = await jobs.queue('warm').getJob(id);
    expect(job?.data).toEqual({ payload: { type: 'hot', top: 1000 } });
    expect(job?.opts.attempts).toBe(5);
    expect(job?.opts.backoff).toEqual({ type: 'exponential', delay: 2000 });
  });
});

describe('configuration', () => {
  it('the queue Redis is QUEUE_REDIS_URL, else REDIS_URL, else the cache Redis; never an assumed address', () => {
    expect(() => loadQueueConfig({})).toThrow(/^REDIS_URL: required \(or QUEUE_REDIS_URL/);
    expect(loadQueueConfig({ REDIS_URL: 'redis://r:1', CACHE_REDIS_URL: 'redis://c:2' }).redis).toEqual({
      mode: 'single',
      url: 'redis://r:1',
    });
    expect(loadQueueConfig({ CACHE_REDIS_URL: 'redis://10.0.0.1:7000' }).redis).toEqual({
      mode: 'single',
      url: 'redis://10.0.0.1:7000',
    });
    expect(loadQueueConfig({ QUEUE_REDIS_URL: 'redis://q:1', CACHE_REDIS_URL: 'redis://c:2' }).prefix).toBe(
      'cachefleet',
    );
  });

  it('names the variable of a bad setting', () => {
    expect(() => loadQueueConfig({ QUEUE_PREFIX: 'a b' })).toThrow(/QUEUE_PREFIX/);
    expect(() => loadQueueConfig({ QUEUE_REDIS_URL: 'http://x' })).toThrow(/QUEUE_REDIS_URL/);
    expect(() => loadQueueConfig({ QUEUE_REDIS_MODE: 'sentinel' })).toThrow(/QUEUE_REDIS_SENTINELS/);
    expect(() => loadSchedules({ SCHEDULE_WARM_ALL: 'daily' })).toThrow(/SCHEDULE_WARM_ALL/);
    expect(codeOf(() => loadQueueConfig({ QUEUE_REDIS_MODE: 'cluster' }))).toBe('E_JOB_CONFIG');
  });

  it('parses per-queue concurrency and refuses unknown queues', () => {
    expect(parseQueueList('warm:2,invalidate')).toEqual([
      { queue: 'warm', concurrency: 2 },
      { queue: 'invalidate', concurrency: 1 },
    ]);
    expect(() => parseQueueList('warm,bogus')).toThrow(/unknown queue "bogus"/);
    expect(() => parseQueueList('warm:0')).toThrow(/concurrency/);
    expect(() => parseQueueList('warm,warm')).toThrow(/twice/);
    expect(() => parseQueueList('')).toThrow(/no queues/);
    expect(codeOf(() => parseQueueList('warm,bogus'))).toBe('E_JOB_CONFIG');
    // The default serves every queue of the catalogue at its default concurrency.
    expect(parseQueueList(DEFAULT_QUEUE_LIST)).toEqual(
      QUEUE_NAMES.map((queue) => ({ queue, concurrency: DEFAULT_CONCURRENCY[queue] })),
    );
  });

  it('documents every setting in the README', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const name of [
      ...Object.keys(QUEUE_ENV_VARS),
      ...Object.keys(SCHEDULE_ENV_VARS),
      ...Object.keys(BACKUP_ENV_VARS),
      ...Object.keys(TUNE_ENV_VARS),
      ...Object.keys(QUEUE_METRICS_ENV_VARS),
    ])
      expect(readme, name).toContain(`\`${name}\``);
  });
});

describe('schedules', () => {
  it('defaults to the full warm at 02:00 UTC, the hot warm every 6 h, the sweep at 03:30, the backup every 6 h, the tuner every minute; "off" drops one', () => {
    expect(loadSchedules({})?.map((s) => [s.id, s.pattern])).toEqual([
      ['cachefleet-warm-all', '0 2 * * *'],
      ['cachefleet-warm-hot', '0 */6 * * *'],
      ['cachefleet-sweep', '30 3 * * *'],
      ['cachefleet-backup', '15 */6 * * *'],
      ['cachefleet-tune', '* * * * *'],
    ]);
    expect(loadSchedules({ SCHEDULE_WARM_ALL: 'off', SCHEDULE_TUNE: 'off' })?.map((s) => s.id)).toEqual([
      'cachefleet-warm-hot',
      'cachefleet-sweep',
      'cachefleet-backup',
    ]);
    expect(loadSchedules({ SCHEDULES_ENABLED: 'false' })).toBeUndefined();
  });

  it('installs idempotently from several replicas and removes ours once unconfigured', async () => {
    const jobs = client();
    const schedules = loadSchedules({}) ?? [];
    await Promise.all([applySchedules(jobs, schedules), applySchedules(jobs, schedules)]);
    await applySchedules(jobs, schedules);
    const warm = jobs.queue('warm');
    const ids = (await warm.getJobSchedulers(0, -1)).map((s) => s.key).sort();
    expect(ids).toEqual(['cachefleet-warm-all', 'cachefleet-warm-hot']);
    // Someone else's scheduler on the same queue is left alone.
    await warm.upsertJobScheduler(
      'their-own',
      { every: 60_000 },
      { name: 'warm', data: { payload: { type: 'all' } } },
    );
    await applySchedules(jobs, loadSchedules({ SCHEDULE_WARM_HOT: 'off' }) ?? []);
    expect((await warm.getJobSchedulers(0, -1)).map((s) => s.key).sort()).toEqual([
      'cachefleet-warm-all',
      'their-own',
    ]);
  });

  it('a process answering for some queues leaves the schedulers of the others alone', async () => {
    const jobs = client();
    const warm = jobs.queue('warm');
    await installSchedules(jobs, loadSchedules({}) ?? []);
    const before = (await warm.getJobSchedulers(0, -1)).map((x) => x.key).sort();
    expect(before).toEqual(['cachefleet-warm-all', 'cachefleet-warm-hot']);
    // An invalidate-only worker: no schedule of its own, and the warm ones stay.
    await installSchedules(jobs, [], ['invalidate']);
    expect((await warm.getJobSchedulers(0, -1)).map((x) => x.key).sort()).toEqual(before);
    expect(await jobs.connection.exists(schedulesMarker(jobs, 'invalidate'))).toBe(1);
    // A schedule outside the queues it answers for is a configuration error, not silently dropped.
    const hot = (loadSchedules({}) ?? []).filter((x) => x.id === 'cachefleet-warm-hot');
    await expect(applySchedules(jobs, hot, ['invalidate'])).rejects.toMatchObject({ code: 'E_JOB_CONFIG' });
  });

  it('keepSchedules: puts them back once the queue Redis lost them, not a scheduler removed on purpose', async () => {
    const jobs = client();
    const warm = jobs.queue('warm');
    const ids = async () => (await warm.getJobSchedulers(0, -1)).map((x) => x.key).sort();
    const mine = loadSchedules({}) ?? [];
    await installSchedules(jobs, mine);
    const keeper = keepSchedules(jobs, mine, { checkMs: 1_000 });
    try {
      // A replica started with the hot warm turned off removes it for everybody; this replica's
      // older configuration does not put it back (two checks pass).
      await installSchedules(jobs, loadSchedules({ SCHEDULE_WARM_HOT: 'off' }) ?? []);
      await delay(2_500);
      expect(await ids()).toEqual(['cachefleet-warm-all']);
      // The data is lost, the marker with it: the keeper installs its own schedules again.
      await warm.removeJobScheduler('cachefleet-warm-all');
      await jobs.connection.del(schedulesMarker(jobs, 'warm'));
      await waitUntil('the schedules to be back', async () =>
        (await ids()).length === 2 ? true : undefined,
      );
      expect(await ids()).toEqual(['cachefleet-warm-all', 'cachefleet-warm-hot']);
    } finally {
      keeper.close();
    }
  });

  it('refuses a schedule whose payload is invalid', async () => {
    const jobs = client();
    await expect(
      applySchedules(jobs, [{ id: 'cachefleet-bad', name: 'warm', payload: { type: 'nope' }, every: 1000 }]),
    ).rejects.toMatchObject({ code: 'E_JOB_INVALID_PAYLOAD' });
    const q = new Queue('warm', { connection: jobs.connection, prefix: jobs.prefix });
    expect(await q.getJobSchedulersCount()).toBe(0);
    await q.close();
  });
});
