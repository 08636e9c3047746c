/**
 * Backup and restore jobs (docs/design-lifecycle.md) against real Redis: single nodes and a
 * 3-master Cluster, a real FleetRuntime in this process serving the backup queue, files in a
 * temporary directory. "Pods" are caches with the `item` v2 definition.
 *
 *  1. round trip into a fresh Redis (single → single, single → Cluster, Cluster → single): values,
 *     TTLs within 1 s, no TTL stays none, the generation, and tags still invalidate
 *  2. signed and encrypted round trip; a flipped byte, a truncated file, a wrong HMAC key, a wrong
 *     or missing encryption key, another format version: each refused with its code, 0 keys written,
 *     no retry
 *  3. into the same Redis after invalidations made since the backup (keys, a pattern, a tag, an
 *     update), with --replace: none of those entries comes back; the others are restored; without
 *     --replace existing keys are kept
 *  4. --replace keeps the live tag sets (members added since) and indexes the restored entries
 *  5. retention: BACKUP_KEEP newest files stay; `latest` restores the newest
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackupConfig,
  backupResultSchema,
  type Definitions,
  FleetRuntime,
  FsBackupStorage,
  JobClient,
  type JobView,
  loadQueueConfig,
  restoreResultSchema,
} from '@cachefleet/jobs';
import type { RedisConnection } from '@cachefleet/redis';
import { type Cache, createCache, type Namespace } from '@cachefleet/tiered-cache';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isTelemetryKey,
  jobSettled,
  type RedisCluster,
  type RedisProcess,
  startCluster,
  startRedis,
} from './helpers/index.js';
import { convert, type ItemV2, itemV2, v1Value } from './lifecycle-defs.js';

const TAG = randomBytes(3).toString('hex');
const HMAC = 'k'.repeat(40);
const ENC = 'ab'.repeat(32);

let queueRedis: RedisProcess;
let dir: string;
let cluster: RedisCluster;
const servers: RedisProcess[] = [];

beforeAll(async () => {
  [queueRedis, cluster] = await Promise.all([startRedis(), startCluster()]);
  dir = await mkdtemp(join(tmpdir(), 'cf-backup-'));
}, 120_000);

afterAll(async () => {
  await Promise.all([queueRedis?.stop(), cluster?.stop(), ...servers.map((s) => s.stop())]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function freshSingle(): Promise<RedisConnection> {
  const s = await startRedis();
  servers.push(s);
  return { mode: 'single', url: s.url };
}

function rawOf(c: RedisConnection): Redis | Cluster {
  const raw =
    c.mode === 'cluster' ? new Cluster([...c.nodes]) : c.mode === 'single' ? new Redis(c.url) : undefined;
  if (raw === undefined) throw new Error('no sentinel here');
  raw.on('error', () => {});
  return raw;
}

let testNo = 0;

/** A cache Redis with a worker serving the backup queue over the `item` v2 definition. */
interface Site {
  readonly raw: Redis | Cluster;
  readonly jobs: JobClient;
  readonly pod: Cache;
  readonly ns: Namespace<ItemV2>;
  key(id: string | number, generation?: number): string;
  close(): Promise<void>;
}

async function site(
  connection: RedisConnection,
  prefix: string,
  backups: Partial<BackupConfig> = {},
): Promise<Site> {
  const n = ++testNo;
  const ns = itemV2();
  const make = async () => {
    const c = createCache({ impl: 'redis', redis: connection, prefix, hotKeys: { enabled: false } });
    c.register(ns as Namespace<unknown>);
    await c.start();
    return c;
  };
  const [worker, pod] = await Promise.all([make(), make()]);
  const definitions: Definitions = {
    namespaces: [ns as Namespace<unknown>],
    critical: {},
    close: async () => {},
  };
  const jobs = new JobClient(
    loadQueueConfig({ QUEUE_REDIS_URL: queueRedis.url, QUEUE_PREFIX: `bkq${TAG}s${n}` }),
  );
  const config: BackupConfig = { dir, keep: 42, hmacKey: undefined, encryptionKey: undefined, ...backups };
  const runtime = new FleetRuntime(
    {
      cache: worker,
      jobs,
      definitions,
      logger: pino({ level: 'silent' }),
      metrics: new Registry(),
      backups: config,
    },
    {
      queues: [
        { queue: 'backup', concurrency: 1 },
        { queue: 'invalidate', concurrency: 1 },
      ],
      lockDurationMs: 30_000,
      stalledIntervalMs: 5_000,
      shutdownMs: 5_000,
    },
  );
  runtime.start();
  const raw = rawOf(connection);
  return {
    raw,
    jobs,
    pod,
    ns,
    key: (id, generation = 0) => `${prefix}item:v2:${generation === 0 ? '' : `g${generation}:`}${id}`,
    close: async () => {
      await runtime.close();
      await jobs.close();
      await Promise.all([worker.close(), pod.close()]);
      raw.disconnect();
    },
  };
}

const settled = (jobs: JobClient, id: string) => jobSettled(jobs, id, 90_000);

async function completed(jobs: JobClient, id: string): Promise<JobView> {
  const view = await settled(jobs, id);
  expect(view.failedReason).toBeUndefined();
  return view;
}

/** Every key under `prefix` on every master. */
async function keysOf(raw: Redis | Cluster, prefix: string): Promise<string[]> {
  const nodes = raw instanceof Cluster ? raw.nodes('master') : [raw];
  const out: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      // The data under the prefix: the processes' telemetry snapshots are no part of a backup.
      out.push(...keys.filter((k) => !isTelemetryKey(k)));
      cursor = next;
    } while (cursor !== '0');
  }
  return out.sort();
}

function live(wire: string | null): unknown {
  if (wire === null || wire.startsWith('~t')) return undefined;
  return JSON.parse(wire);
}

const N = 600;
const SHORT_TTL_MS = 60_000;

/** N entries written by a pod (with tags) after one namespace invalidation (generation 1), one without TTL. */
async function fill(s: Site): Promise<void> {
  expect((await s.pod.invalidateNamespace(s.ns)).ok).toBe(true);
  for (let i = 1; i <= N; i++) expect((await s.pod.set(s.ns, String(i), convert(v1Value(i)))).ok).toBe(true);
  await s.raw.set(s.key('forever', 1), JSON.stringify({ id: 'forever', name: 'x', priceCents: 1 }));
  // A short TTL that must come back short, but not so short that it runs out between the backup
  // and the restore on a loaded machine (5 s did: 603 restored instead of 604).
  await s.raw.pexpire(s.key(1, 1), SHORT_TTL_MS);
}

async function backup(s: Site): Promise<ReturnType<typeof backupResultSchema.parse>> {
  const job = await s.jobs.enqueue('backup', {});
  return backupResultSchema.parse((await completed(s.jobs, job.id)).result);
}

describe.each([
  { from: 'single', to: 'single' },
  { from: 'single', to: 'cluster' },
  { from: 'cluster', to: 'single' },
])('round trip $from → $to', ({ from, to }) => {
  it('restores values, TTLs within 1 s, the generation; tags still invalidate', async () => {
    const prefix = `bk${TAG}r${from}${to}:`;
    const conn = (kind: string) =>
      kind === 'cluster'
        ? Promise.resolve<RedisConnection>({ mode: 'cluster', nodes: [...cluster.nodes] })
        : freshSingle();
    const a = await site(await conn(from), prefix);
    let b: Site | undefined;
    try {
      await fill(a);
      // The absolute expiry of an entry, as the source has it before the backup.
      const expiresAt = Date.now() + (await a.raw.pttl(a.key(2, 1)));
      const made = await backup(a);
      expect(made).toMatchObject({ namespaces: ['item'], signed: false, encrypted: false });
      // N entries, one without TTL, and the tag sets (mod:0, mod:1, mod:2).
      expect(made.keys).toBe(N + 1 + 3);
      b = await site(await conn(to), prefix);
      expect(await keysOf(b.raw, prefix)).toEqual([]);
      const job = await b.jobs.enqueue('restore', { file: made.file });
      const view = await completed(b.jobs, job.id);
      const r = restoreResultSchema.parse(view.result);
      // The progress ends where the job did, though the last batch came within the beat's second.
      expect(view.progress).toMatchObject({ done: N + 4, total: N + 4 });
      expect(r).toMatchObject({
        keys: N + 4,
        read: N + 4,
        restored: N + 4,
        fenced: 0,
        existing: 0,
        expired: 0,
      });
      for (const i of [1, 2, 300, N]) expect(live(await b.raw.get(b.key(i, 1)))).toEqual(convert(v1Value(i)));
      expect(Math.abs(Date.now() + (await b.raw.pttl(b.key(2, 1))) - expiresAt)).toBeLessThan(1_000);
      const pttl1 = await b.raw.pttl(b.key(1, 1));
      expect(pttl1).toBeGreaterThan(0);
      expect(pttl1).toBeLessThanOrEqual(SHORT_TTL_MS);
      expect(await b.raw.pttl(b.key('forever', 1))).toBe(-1);
      expect(await b.raw.hget(`${prefix}__gen`, 'item')).toBe('1');
      // A pod of the restored Redis reads the entries, and a tag invalidation reaches them.
      expect(await b.pod.get(b.ns, '300')).toEqual({ ok: true, value: convert(v1Value(300)) });
      expect((await b.pod.invalidateTags(b.ns, ['mod:0'])).ok).toBe(true);
      expect(live(await b.raw.get(b.key(300, 1)))).toBeUndefined();
      expect(live(await b.raw.get(b.key(301, 1)))).toBeDefined();
    } finally {
      await Promise.all([a.close(), b?.close()]);
    }
  });
});

describe('verification before the first write', () => {
  it('signed and encrypted files round trip; damaged or mismatched ones are refused with 0 keys written', async () => {
    const prefix = `bk${TAG}v:`;
    const keys = { hmacKey: Buffer.from(HMAC), encryptionKey: Buffer.from(ENC, 'hex') };
    const a = await site(await freshSingle(), prefix, keys);
    const sites: Site[] = [a];
    try {
      await fill(a);
      const made = await backup(a);
      expect(made).toMatchObject({ signed: true, encrypted: true });
      const original = await readFile(made.path);
      // The plain text of the values is nowhere in the file.
      expect(original.includes(Buffer.from('item 300'))).toBe(false);

      const attempt = async (
        name: string,
        bytes: Buffer | null,
        config: Partial<BackupConfig>,
        code: string,
      ) => {
        if (bytes !== null) await writeFile(join(dir, name), bytes);
        const b = await site(await freshSingle(), prefix, config);
        sites.push(b);
        const job = await b.jobs.enqueue('restore', { file: name });
        const view = await settled(b.jobs, job.id);
        expect(view.state, name).toBe('failed');
        expect(view.failedReason, name).toMatch(new RegExp(`^${code}: `));
        expect(view.attemptsMade).toBe(1);
        expect(await keysOf(b.raw, prefix), name).toEqual([]);
        return b;
      };
      const flipped = Buffer.from(original);
      const at = Math.floor(flipped.length / 2);
      flipped[at] = (flipped[at] ?? 0) ^ 0x01;
      await attempt('flipped.cfb', flipped, keys, 'E_JOB_BACKUP_CORRUPT');
      await attempt(
        'truncated.cfb',
        original.subarray(0, original.length - 100),
        keys,
        'E_JOB_BACKUP_CORRUPT',
      );
      await attempt('short.cfb', original.subarray(0, 20), keys, 'E_JOB_BACKUP_CORRUPT');
      await attempt(
        'wrong-hmac.cfb',
        original,
        { ...keys, hmacKey: Buffer.from('x'.repeat(40)) },
        'E_JOB_BACKUP_SIGNATURE',
      );
      await attempt('no-hmac.cfb', original, { encryptionKey: keys.encryptionKey }, 'E_JOB_BACKUP_SIGNATURE');
      await attempt(
        'wrong-key.cfb',
        original,
        { ...keys, encryptionKey: Buffer.from('cd'.repeat(32), 'hex') },
        'E_JOB_BACKUP_KEY',
      );
      await attempt('no-key.cfb', original, { hmacKey: keys.hmacKey }, 'E_JOB_BACKUP_KEY');
      // Another format version: the header says 2 (the checksum and signature made to match, so
      // that only the version is wrong).
      const future = await rewriteVersion(original, 2, keys.hmacKey);
      await attempt('future.cfb', future, keys, 'E_JOB_BACKUP_INCOMPATIBLE');
      await attempt('missing.cfb', null, keys, 'E_JOB_BACKUP_NOT_FOUND');

      // The original, with the right keys, restores.
      const good = await site(await freshSingle(), prefix, keys);
      sites.push(good);
      const job = await good.jobs.enqueue('restore', { file: made.file });
      const r = restoreResultSchema.parse((await completed(good.jobs, job.id)).result);
      expect(r.restored).toBe(N + 4);
    } finally {
      await Promise.all(sites.map((s) => s.close()));
    }
  });
});

/** The same file with another format version in its header, checksum and signature recomputed. */
async function rewriteVersion(file: Buffer, version: number, hmacKey: Buffer): Promise<Buffer> {
  const { createHash, createHmac } = await import('node:crypto');
  const tail = 4 + 64;
  const len = file.readUInt32BE(file.length - tail);
  const headerStart = file.length - tail - len;
  const header = JSON.parse(file.subarray(headerStart, file.length - tail).toString('utf8')) as Record<
    string,
    unknown
  >;
  const json = Buffer.from(JSON.stringify({ ...header, version }), 'utf8');
  const lenBuf = Buffer.alloc(4);
  lenBuf.writeUInt32BE(json.length);
  const body = Buffer.concat([file.subarray(0, headerStart), json, lenBuf]);
  const digest = createHash('sha256').update(body).digest();
  const mac = createHmac('sha256', hmacKey).update(body).update(digest).digest();
  return Buffer.concat([body, digest, mac]);
}

describe('restore into a live Redis', () => {
  it('does not bring back what was invalidated or rewritten after the backup; keeps existing keys unless --replace', async () => {
    const prefix = `bk${TAG}f:`;
    const a = await site(await freshSingle(), prefix);
    try {
      await fill(a);
      const made = await backup(a);
      // Since the backup: ids 5 and 6 deleted, pattern 7* (7, 70–79, 700…), tag mod:2 (ids ≡ 2 mod 3),
      // id 10 rewritten by a pod. Then every entry is lost (say, a flush of the entries).
      expect((await a.pod.delete(a.ns, '5', '6')).ok).toBe(true);
      expect((await a.pod.invalidatePattern(a.ns, '7*')).ok).toBe(true);
      expect((await a.pod.invalidateTags(a.ns, ['mod:2'])).ok).toBe(true);
      expect((await a.pod.set(a.ns, '10', { id: '10', name: 'newer', priceCents: 7 })).ok).toBe(true);
      const fencedIds = new Set(['5', '6', '10']);
      for (let i = 1; i <= N; i++) if (String(i).startsWith('7') || i % 3 === 2) fencedIds.add(String(i));
      // Keep-existing first: nothing was lost yet, so almost everything is "existing".
      const keep = await a.jobs.enqueue('restore', { file: made.file });
      const rk = restoreResultSchema.parse((await completed(a.jobs, keep.id)).result);
      expect(rk.restored).toBe(0);
      expect(live(await a.raw.get(a.key(10, 1)))).toEqual({ id: '10', name: 'newer', priceCents: 7 });

      for (let i = 1; i <= N; i++) if (!fencedIds.has(String(i))) await a.raw.del(a.key(i, 1));
      await a.raw.del(a.key(10, 1));
      const job = await a.jobs.enqueue('restore', { file: made.file, replace: true });
      const r = restoreResultSchema.parse((await completed(a.jobs, job.id)).result);
      expect(r.fenced).toBe(fencedIds.size);
      const back: string[] = [];
      const missing: string[] = [];
      for (let i = 1; i <= N; i++) {
        const value = live(await a.raw.get(a.key(i, 1)));
        if (fencedIds.has(String(i)) && value !== undefined) back.push(String(i));
        if (!fencedIds.has(String(i)) && value === undefined) missing.push(String(i));
      }
      expect(back).toEqual([]);
      expect(missing).toEqual([]);
    } finally {
      await a.close();
    }
  });

  it('a restore with --replace keeps the live tag sets, and a tag invalidation reaches old and new entries', async () => {
    const prefix = `bk${TAG}t:`;
    const a = await site(await freshSingle(), prefix);
    try {
      await fill(a);
      const made = await backup(a);
      // Written after the backup, with tag mod:((N+1) mod 3); then the backed-up entries are lost.
      const late = String(N + 1);
      expect((await a.pod.set(a.ns, late, convert(v1Value(N + 1)))).ok).toBe(true);
      for (let i = 1; i <= N; i++) await a.raw.del(a.key(i, 1));
      const job = await a.jobs.enqueue('restore', { file: made.file, replace: true });
      const r = restoreResultSchema.parse((await completed(a.jobs, job.id)).result);
      expect(r.restored).toBe(N + 1); // the entries and the forever key; the 3 tag sets exist: kept
      expect(r.existing).toBe(3);
      const tag = `mod:${(N + 1) % 3}`;
      const sameTag = String(N - 2); // (N - 2) ≡ (N + 1) mod 3
      expect(live(await a.raw.get(a.key(sameTag, 1)))).toBeDefined();
      expect((await a.pod.invalidateTags(a.ns, [tag])).ok).toBe(true);
      expect(live(await a.raw.get(a.key(late, 1)))).toBeUndefined();
      expect(live(await a.raw.get(a.key(sameTag, 1)))).toBeUndefined();
    } finally {
      await a.close();
    }
  });

  it('keeps the newest BACKUP_KEEP files; latest restores the newest', async () => {
    const sub = join(dir, 'retention');
    const prefix = `bk${TAG}k:`;
    const a = await site(await freshSingle(), prefix, { dir: sub, keep: 2 });
    try {
      await fill(a);
      const first = await backup(a);
      await a.pod.set(a.ns, '1', { id: '1', name: 'second', priceCents: 1 });
      await backup(a);
      await a.pod.set(a.ns, '1', { id: '1', name: 'third', priceCents: 1 });
      const third = await backup(a);
      expect(third.removed).toBe(1);
      const names = (await new FsBackupStorage(sub).list()).map((b) => b.name);
      expect(names.length).toBe(2);
      expect(names).not.toContain(first.file);
      expect(names[0]).toBe(third.file);
      await truncate(join(sub, names[1] as string), 10);
      await a.raw.del(a.key(1, 1));
      const job = await a.jobs.enqueue('restore', { file: 'latest' });
      const r = restoreResultSchema.parse((await completed(a.jobs, job.id)).result);
      expect(r.file).toBe(third.file);
      expect(live(await a.raw.get(a.key(1, 1)))).toMatchObject({ name: 'third' });
    } finally {
      await a.close();
    }
  });
});
