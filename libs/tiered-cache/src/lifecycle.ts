import { entryBase, entryGlob } from '@cachefleet/redis';
import { isTombstone } from './drivers/codec.js';
import type { MigratePair } from './drivers/redis/lifecycle.js';
import type { RedisStore } from './drivers/redis/store.js';
import type { Namespace } from './namespace.js';
import { ok, type Result } from './result.js';
import type { ReadThrough } from './stack/read-through.js';

/**
 * The lifecycle primitives of the worker fleet (docs/design-lifecycle.md): one step of a version
 * migration and one step of a sweep, each on one master with the cursor kept by the caller.
 * `FleetOps` exposes them; `@cachefleet/jobs` drives them.
 */

export interface MigrateStepOptions {
  /** The version migrated from (the namespace given is the one migrated to). */
  readonly from: number;
  /** The namespace's generation the migration walks (fixed at its start). */
  readonly generation: number;
  readonly master: string;
  readonly cursor: string;
  /** Keys asked of SCAN per step. */
  readonly count: number;
  /** Read, convert and validate; write nothing. */
  readonly dryRun: boolean;
}

export interface MigrateFailure {
  readonly id: string;
  readonly reason: string;
}

export interface MigrateStepResult {
  /** The cursor to continue from ('0': the master is done); the same one when `redo`. */
  readonly cursor: string;
  readonly scanned: number;
  /** Entries written in the new version (a dry run: that would be). */
  readonly migrated: number;
  /** The new entry already existed (filled or invalidated by a new pod): left alone. */
  readonly present: number;
  /** The old entry changed between the read and the write (an invalidation): not migrated. */
  readonly changed: number;
  /** Expired, tombstoned, or gone from the source: nothing to migrate. */
  readonly skipped: number;
  /** Values that failed to decode, convert or validate: counted, listed, left to expire. */
  readonly failed: number;
  readonly failures: readonly MigrateFailure[];
  /** A pattern or tag invalidation overtook the step: nothing of it stands, do it again. */
  readonly redo: boolean;
}

export interface SweepStepOptions {
  readonly master: string;
  readonly cursor: string;
  readonly count: number;
}

/** Keys of one namespace at any version: `<name>:v*`. */
export function sweepMatch(name: string): string {
  return entryGlob(`${name}:v`, '*');
}

const VERSIONED = /^(\d+):(?:g(\d+):)?/;

/**
 * Whether a key (without the prefix) of namespace `name` is one no pod of `version` at
 * `generation` can reach: an older version, or an older generation. A newer version (pods rolled
 * before the workers) is reachable.
 */
export function isUnreachable(name: string, version: number, generation: number, key: string): boolean {
  const m = VERSIONED.exec(key.slice(name.length + 2));
  if (m === null) return false;
  const v = Number(m[1]);
  const g = m[2] === undefined ? 0 : Number(m[2]);
  if (v > version) return false;
  return v < version || g < generation;
}

/** At generation 0 the glob `name:vN:*` also matches older generations' keys `name:vN:g<G>:…`. */
const GENERATION_PART = /^g\d+:/;

export interface LifecycleDeps {
  readonly l2: RedisStore;
  readonly rt: ReadThrough;
  /** loadMany (or load per id) of the namespace, counted like a warm's. */
  readonly load: (ids: readonly string[]) => Promise<Result<ReadonlyMap<string, unknown>>>;
}

function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 197)}...` : message;
}

function fromKeys(prefix: string, name: string, from: number, generation: number) {
  const base = entryBase(name, from, generation);
  const at = prefix.length + base.length;
  const keep = generation === 0 ? (k: string) => !GENERATION_PART.test(k.slice(at)) : (_k: string) => true;
  return { base, at, match: entryGlob(base, '*'), keep };
}

/**
 * A migration step read, converted and validated, not written yet (`migrateCommit` writes it).
 * Reading has no effect: a prepared step may be dropped (its write's step redone) at no cost.
 */
export interface MigratePrepared {
  /** The cursor the step began at (a step to redo begins there again). */
  readonly start: string;
  /** The cursor to continue from ('0': the master is done). */
  readonly cursor: string;
  readonly scanned: number;
  readonly skipped: number;
  readonly failures: readonly MigrateFailure[];
  /** The entries to write, converted and valid. */
  readonly pairs: readonly MigratePair[];
  /** The walk counter as read before the entries. */
  readonly inv: number;
}

/** The read half of a step: SCAN, the values, conversion and the new schema's check. */
export async function migratePrepare<T>(
  d: LifecycleDeps,
  ns: Namespace<T>,
  o: Omit<MigrateStepOptions, 'dryRun'>,
): Promise<Result<MigratePrepared>> {
  const { l2, rt } = d;
  const prefix = l2.prefix;
  const { at, match, keep } = fromKeys(prefix, ns.name, o.from, o.generation);
  const newBase = prefix + entryBase(ns.name, ns.version, o.generation);
  const read = await l2.bulk.migrateRead(ns.name, o.master, match, o.cursor, o.count, keep);
  if (!read.ok) return read;
  const st = rt.state(ns as Namespace<unknown>);
  const convert = ns.migrations?.[o.from];
  const schema = ns.schema;
  let skipped = 0;
  const failures: MigrateFailure[] = [];
  const pairs: MigratePair[] = [];
  /** Converted (or, without a migration, to be reloaded) values, in the order of `todo`. */
  const todo: { id: string; oldKey: string; was: string; ttlMs: number; value: unknown }[] = [];
  const { keys, entries } = read.value;
  for (let i = 0; i < keys.length; i++) {
    const oldKey = keys[i] as string;
    const e = entries[i];
    const id = oldKey.slice(at);
    if (e === undefined || e.wire === null || e.pttl === -2 || isTombstone(e.wire)) {
      skipped++;
      continue;
    }
    // Known on a Cluster only; a single node's write reads the old entry's PTTL itself.
    const ttlMs = e.pttl !== undefined && e.pttl > 0 ? e.pttl : st.l2TtlMs;
    if (convert === undefined) {
      todo.push({ id, oldKey, was: e.wire, ttlMs, value: undefined });
      continue;
    }
    const decoded = l2.decode(oldKey, e.wire);
    if (!decoded.ok) {
      failures.push({ id, reason: `could not decode: ${reasonOf(decoded.error.cause ?? decoded.error)}` });
      continue;
    }
    try {
      todo.push({ id, oldKey, was: e.wire, ttlMs, value: convert(decoded.value) });
    } catch (error) {
      failures.push({ id, reason: `migration threw: ${reasonOf(error)}` });
    }
  }
  if (convert === undefined && todo.length > 0) {
    // No migration declared: the new shape comes from the source of truth, one loadMany a step.
    const loaded = await d.load(todo.map((t) => t.id));
    if (!loaded.ok) return loaded;
    for (const t of todo) t.value = loaded.value.get(t.id);
  }
  for (const t of todo) {
    if (t.value === undefined) {
      skipped++; // gone from the source (or the migration returned nothing): nothing to write
      continue;
    }
    const parsed = schema.safeParse(t.value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue?.path.length ? `${issue.path.join('.')}: ` : '';
      failures.push({
        id: t.id,
        reason: `fails the v${ns.version} schema: ${path}${issue?.message ?? 'invalid'}`,
      });
      continue;
    }
    let wire: string;
    try {
      wire = l2.encode(parsed.data).wire;
    } catch (error) {
      failures.push({ id: t.id, reason: `not JSON: ${reasonOf(error)}` });
      continue;
    }
    pairs.push({
      oldKey: t.oldKey,
      newKey: newBase + t.id,
      was: t.was,
      wire,
      ttlMs: t.ttlMs,
      tags: rt.tagsOf(st, parsed.data),
    });
  }
  return ok({
    start: o.cursor,
    cursor: read.value.cursor,
    scanned: keys.length,
    skipped,
    failures,
    pairs,
    inv: read.value.inv,
  });
}

/** The write half of a step (nothing in a dry run): fenced, see `migrateWrite`. */
export async function migrateCommit(
  d: Pick<LifecycleDeps, 'l2'>,
  ns: Namespace<unknown>,
  step: MigratePrepared,
  dryRun: boolean,
): Promise<Result<MigrateStepResult>> {
  const base = {
    cursor: step.cursor,
    scanned: step.scanned,
    skipped: step.skipped,
    failed: step.failures.length,
    failures: step.failures,
    redo: false,
  };
  if (dryRun) return ok({ ...base, migrated: step.pairs.length, present: 0, changed: 0 });
  const w = await d.l2.bulk.migrateWrite(ns.name, step.pairs, step.inv);
  if (!w.ok) return w;
  if (w.value.walked) {
    return ok({
      ...base,
      cursor: step.start,
      scanned: 0,
      skipped: 0,
      failed: 0,
      failures: [],
      migrated: 0,
      present: 0,
      changed: 0,
      redo: true,
    });
  }
  return ok({ ...base, migrated: w.value.written, present: w.value.present, changed: w.value.changed });
}

/** One whole step: `migratePrepare` then `migrateCommit`. */
export async function migrateStep<T>(
  d: LifecycleDeps,
  ns: Namespace<T>,
  o: MigrateStepOptions,
): Promise<Result<MigrateStepResult>> {
  const prepared = await migratePrepare(d, ns, o);
  if (!prepared.ok) return prepared;
  return migrateCommit(d, ns as Namespace<unknown>, prepared.value, o.dryRun);
}

/**
 * Puts restored entries (keys relative to the prefix) back into their tags' index sets: each value
 * is read, decoded and given to the namespace's `tags`. A restore into a live Redis keeps the tag
 * sets that exist (a backed-up set would drop members added since), so the entries it brings back
 * are added to them here. Resolves how many entries were indexed.
 */
export async function reindexTags(
  d: Pick<LifecycleDeps, 'l2' | 'rt'>,
  ns: Namespace<unknown>,
  keys: readonly string[],
): Promise<Result<number>> {
  if (ns.tags === undefined || keys.length === 0) return ok(0);
  const { l2, rt } = d;
  const st = rt.state(ns);
  const r = await l2.readMany(keys);
  if (!r.ok) return r;
  const byTag = new Map<string, string[]>();
  let indexed = 0;
  r.value.forEach((entry, i) => {
    if (entry === undefined) return;
    const tags = rt.tagsOf(st, entry.value);
    if (tags === undefined) return;
    indexed++;
    for (const tag of tags) {
      const members = byTag.get(tag);
      const full = l2.prefix + (keys[i] as string);
      if (members === undefined) byTag.set(tag, [full]);
      else members.push(full);
    }
  });
  const w = await l2.bulk.tagAddAll(byTag, st.l2TtlMs);
  return w.ok ? ok(indexed) : w;
}
