import { cacheKeys, entryGlob, escapeGlob, scopedTag } from '@cachefleet/redis';
import type { EventBody } from './bus/events.js';
import { envelope } from './drivers/codec.js';
import type { HotKey, UnlinkStep } from './drivers/redis/bulk.js';
import type { BackupPoint, DumpedKey, DumpStep, RestoreResult } from './drivers/redis/lifecycle.js';
import type { RedisStore } from './drivers/redis/store.js';
import type { WarmEntry } from './drivers/redis/warm.js';
import { CacheError } from './errors.js';
import {
  isUnreachable,
  type MigratePrepared,
  type MigrateStepOptions,
  type MigrateStepResult,
  migrateCommit,
  migratePrepare,
  migrateStep,
  reindexTags,
  type SweepStepOptions,
  sweepMatch,
} from './lifecycle.js';
import type { Namespace } from './namespace.js';
import { err, ok, type Result } from './result.js';
import { globToRegExp } from './stack/coherence.js';
import { spread } from './stack/entry-times.js';
import type { ReadThrough } from './stack/read-through.js';
import type { NamespaceState } from './stack/state.js';

/** A glob over ids: no white space or braces, at most 256 characters. */
export const ID_PATTERN = /^[^\s{}]{1,256}$/;

/** Times a warm batch is reloaded when a pattern or tag invalidation overtook it. */
const WARM_ATTEMPTS = 3;

export interface WarmBatchResult {
  readonly requested: number;
  /** Ids the loader found (absent ids do not exist and are not cached). */
  readonly loaded: number;
  readonly written: number;
  /** Entries not written because they changed since the batch read them (a newer write or invalidation). */
  readonly changed: number;
  /** Ids refused by the namespace's id schema, or values refused by its value schema. */
  readonly invalid: number;
  /** Whether an invalidation kept overtaking the batch (nothing written on the last attempt). */
  readonly overtaken: boolean;
}

interface FleetDeps {
  readonly rt: ReadThrough;
  readonly l2: () => RedisStore | undefined;
  /** Publishes an event of this pod on the bus (no-op without a bus). */
  readonly announce: (body: EventBody) => Promise<Result<unknown>>;
  readonly sampleRate: number;
  readonly hotKeep: number;
}

/**
 * What the worker fleet does to the cache, as primitives a job runner drives (the library knows
 * nothing of BullMQ): warm a batch, walk a pattern in resumable steps, read and decay hot keys.
 * See docs/design-fleet.md.
 */
export class FleetOps {
  readonly #d: FleetDeps;

  constructor(deps: FleetDeps) {
    this.#d = deps;
  }

  #l2(): Result<RedisStore> {
    const l2 = this.#d.l2();
    return l2
      ? ok(l2)
      : err(new CacheError('E_CACHE_L2_UNAVAILABLE', 'fleet operations need L2 (impl redis or tiered)'));
  }

  /**
   * Loads `ids` with one `loadMany` and writes them to L2 with the namespace's TTL, fenced like a
   * read-through fill: an entry that changed since the batch read it (a newer `set`, an
   * invalidation) is left alone, and a pattern or tag invalidation that began meanwhile makes the
   * batch load again.
   */
  async warm<T>(ns: Namespace<T>, ids: readonly string[]): Promise<Result<WarmBatchResult>> {
    const l2r = this.#l2();
    if (!l2r.ok) return l2r;
    const l2 = l2r.value;
    const st = this.#d.rt.state(ns as Namespace<unknown>);
    const valid = ids.filter((id) => ns.isValidId(id));
    let invalid = ids.length - valid.length;
    let last: WarmBatchResult = {
      requested: ids.length,
      loaded: 0,
      written: 0,
      changed: 0,
      invalid,
      overtaken: false,
    };
    if (valid.length === 0) return ok(last);
    for (let attempt = 0; attempt < WARM_ATTEMPTS; attempt++) {
      const keys = valid.map((id) => st.keyBase + id);
      const snapshot = await l2.bulk.warmSnapshot(ns.name, keys);
      if (!snapshot.ok) return snapshot;
      const loaded = await loadAll(st, valid);
      if (!loaded.ok) return loaded;
      const entries: WarmEntry[] = [];
      const was: (string | null)[] = [];
      invalid = ids.length - valid.length;
      valid.forEach((id, i) => {
        const value = loaded.value.get(id);
        if (value === undefined) return;
        const parsed = ns.schema.safeParse(value);
        if (!parsed.success) {
          invalid++;
          return;
        }
        // Spread (so a full warm does not expire in one second) and, with grace or early refresh,
        // the entry's times in its header, as a read-through fill writes them.
        const ttlMs = spread(st.l2TtlMs, st.ttlSpread);
        const now = Date.now();
        const wire = l2.encode(parsed.data).wire;
        entries.push({
          key: keys[i] as string,
          wire: st.timed ? envelope(wire, { loadedAt: now, expiresAt: now + ttlMs }) : wire,
          tags: this.#d.rt.tagsOf(st, parsed.data),
          ttlMs: ttlMs + st.graceMs,
        });
        was.push(snapshot.value.was[i] ?? null);
      });
      const w = await l2.bulk.warmWrite(ns.name, entries, { was, inv: snapshot.value.inv }, st.l2TtlMs);
      if (!w.ok) return w;
      if (w.value.retracted.length > 0) {
        const idsOf = w.value.retracted.map((k) => k.slice(st.keyBase.length));
        await this.#d.announce({ event_type: 'invalidate', namespace: ns.name, keys: idsOf });
      }
      last = {
        requested: ids.length,
        loaded: loaded.value.size,
        written: w.value.written,
        changed: w.value.changed,
        invalid,
        overtaken: w.value.walked,
      };
      if (!w.value.walked) break;
    }
    return ok(last);
  }

  /** The hottest ids of a namespace, from the counts pods flush (highest first). */
  async hotKeys(ns: Namespace<unknown> | string, n: number): Promise<Result<HotKey[]>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.topHotKeys(typeof ns === 'string' ? ns : ns.name, n);
  }

  /**
   * The namespaces that have hot-key counts (SCAN on every master, never KEYS), sorted; stops
   * looking once `limit` were found.
   */
  async hotNamespaces(limit = 1_000): Promise<Result<string[]>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.hotNamespaces(limit);
  }

  /** Ages a namespace's hot counts (each hot warm halves them, so old favourites fade). */
  async decayHotKeys(ns: Namespace<unknown> | string, factor = 0.5): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.decayHotKeys(typeof ns === 'string' ? ns : ns.name, factor);
  }

  /** Sends this pod's sampled read counts to Redis and starts counting afresh. */
  async flushHotKeys(): Promise<Result<number>> {
    const l2 = this.#d.l2();
    if (!l2) return ok(0);
    const counts = new Map<string, Map<string, number>>();
    for (const st of this.#d.rt.states) {
      if (st === undefined || st.hot.size === 0) continue;
      const into = counts.get(st.ns.name);
      if (into === undefined) counts.set(st.ns.name, st.hot);
      else for (const [id, c] of st.hot) into.set(id, (into.get(id) ?? 0) + c);
      st.hot = new Map();
    }
    if (counts.size === 0) return ok(0);
    return l2.bulk.flushHotCounts(counts, this.#d.sampleRate, this.#d.hotKeep);
  }

  /**
   * The masters a bulk walk visits, one child job each (`host:port`). E_CACHE_L2_UNAVAILABLE while
   * they do not own every slot (a Cluster failover in progress): a walk of them would miss keys.
   */
  masters(): Result<string[]> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const names = l2.value.bulk.masterNames();
    if (!l2.value.bulk.coversAllSlots(names)) {
      return err(
        new CacheError('E_CACHE_L2_UNAVAILABLE', 'the known cache masters do not own every slot (failover?)'),
      );
    }
    return ok(names);
  }

  /**
   * Starts a bulk pattern invalidation: checks the pattern, moves the namespace's walk counter (so
   * fills that read the source before now cannot write: design-coherence.md) and clears this pod's
   * L1. Resolves the SCAN match for `unlinkStep`, scoped to the namespace's current key base.
   */
  async beginWalk(ns: Namespace<unknown>, pattern: string): Promise<Result<string>> {
    if (!ID_PATTERN.test(pattern)) {
      return err(
        new CacheError('E_CACHE_INVALID_ID', `invalid pattern for ${ns.name}: ${JSON.stringify(pattern)}`),
      );
    }
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const bumped = await l2.value.fence.bumpInvalidations(ns.name);
    if (!bumped.ok) return bumped;
    const st = this.#d.rt.state(ns);
    this.#clearLocal(st, pattern);
    return ok(entryGlob(st.keyBase, pattern));
  }

  /** One SCAN + UNLINK batch on `master`; keep the returned cursor until it is '0'. */
  async unlinkStep(
    master: string,
    match: string,
    cursor: string,
    count: number,
  ): Promise<Result<UnlinkStep>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.unlinkStep(master, match, cursor, count);
  }

  /** Ends a bulk invalidation: one event makes every pod drop the pattern from its L1. */
  async endWalk(ns: Namespace<unknown>, pattern: string): Promise<Result<unknown>> {
    this.#clearLocal(this.#d.rt.state(ns), pattern);
    return this.#d.announce({ event_type: 'invalidate', namespace: ns.name, key_pattern: pattern });
  }

  /** The namespace's generation as Redis holds it now (0 before its first whole invalidation). */
  async generation(name: string): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const r = await l2.value.fence.generations();
    return r.ok ? ok(r.value.get(name) ?? 0) : r;
  }

  /**
   * Keys in the cache's database on every master now (DBSIZE, no walk): an upper bound of a
   * namespace's entries, where a migration's progress total starts before its walk refines it.
   */
  async keyCount(): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.keyCount();
  }

  /**
   * One step of a version migration on one master (docs/design-lifecycle.md): SCAN `count` keys of
   * `options.from`, convert each with `ns.migrations[from]` (or reload them with the loader),
   * validate with `ns.schema` and write them at `ns.version` with their remaining TTL, fenced
   * against invalidations. Keep the returned cursor until it is '0'; a step that says `redo` is
   * done again from the same cursor.
   */
  async migrateStep<T>(ns: Namespace<T>, options: MigrateStepOptions): Promise<Result<MigrateStepResult>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const st = this.#d.rt.state(ns as Namespace<unknown>);
    return migrateStep({ l2: l2.value, rt: this.#d.rt, load: (ids) => loadAll(st, ids) }, ns, options);
  }

  /**
   * `migrateStep` in two halves, so that a walk can read (and convert) its next step while this
   * one is written: the read has no effect, and a prepared step may be dropped. A step written
   * with `redo` is prepared again from its `start`.
   */
  async migratePrepare<T>(
    ns: Namespace<T>,
    options: Omit<MigrateStepOptions, 'dryRun'>,
  ): Promise<Result<MigratePrepared>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const st = this.#d.rt.state(ns as Namespace<unknown>);
    return migratePrepare({ l2: l2.value, rt: this.#d.rt, load: (ids) => loadAll(st, ids) }, ns, options);
  }

  /** Writes a prepared step, fenced (nothing in a dry run): see `migrateStep`. */
  async migrateCommit(
    ns: Namespace<unknown>,
    step: MigratePrepared,
    dryRun: boolean,
  ): Promise<Result<MigrateStepResult>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return migrateCommit({ l2: l2.value }, ns, step, dryRun);
  }

  /**
   * One step of a sweep on one master: SCAN `count` keys of the namespace at any version and
   * UNLINK those no pod at `ns.version` and the namespace's current generation can reach (older
   * versions and generations; never a newer version).
   */
  async sweepStep(ns: Namespace<unknown>, options: SweepStepOptions): Promise<Result<UnlinkStep>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    const g = await this.generation(ns.name);
    if (!g.ok) return g;
    const at = l2.value.prefix.length;
    return l2.value.bulk.sweepStep(
      options.master,
      sweepMatch(ns.name),
      options.cursor,
      options.count,
      (key) => isUnreachable(ns.name, ns.version, g.value, key.slice(at)),
    );
  }

  /**
   * What a backup of namespace `name` walks, relative to the prefix: its entries at every version
   * and generation, and its tag index sets.
   */
  backupMatches(name: string): string[] {
    // The tag index key of the namespace's tags, relative to the prefix (any prefix will do).
    const tagBase = cacheKeys('').tag(scopedTag(name, ''));
    // Tag sets first: a restore brings them back before the entries it indexes into them.
    return [`${escapeGlob(tagBase)}*`, sweepMatch(name)];
  }

  /** Keys matching `match` (relative to the prefix) on every master: SCAN only, a progress total. */
  async countMatching(match: string): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.countKeys(match, () => true);
  }

  /** One backup step on `master`: SCAN `count` keys matching `match`, DUMP + PTTL each. */
  async dumpStep(master: string, match: string, cursor: string, count: number): Promise<Result<DumpStep>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.dumpStep(master, match, cursor, count);
  }

  /** RESTORE of backed-up keys (relative) with their absolute expiry; existing ones kept unless `replace`. */
  async restoreKeys(keys: readonly DumpedKey[], replace: boolean): Promise<Result<RestoreResult>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.restoreKeys(keys, replace);
  }

  /** The generations, walk counters, bus position and server version a backup records. */
  async backupPoint(namespaces: readonly string[]): Promise<Result<BackupPoint>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.backupPoint(namespaces);
  }

  /** The bus events after stream id `afterId`, and whether the stream still holds all of them. */
  async busSince(
    afterId: string,
  ): Promise<Result<{ readonly covered: boolean; readonly events: readonly string[] }>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.busSince(afterId);
  }

  /** Raises a namespace's generation to at least `generation` (never lowers it). */
  async raiseGeneration(name: string, generation: number): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.raiseGeneration(name, generation);
  }

  /** Takes (or keeps, for the same token) the one backup-or-restore lock for `ttlMs`. */
  async backupLock(token: string, ttlMs: number): Promise<Result<boolean>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.backupLock(token, ttlMs);
  }

  async backupUnlock(token: string): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.backupUnlock(token);
  }

  /**
   * Adds entries (keys relative to the prefix) of `ns` to their tags' index sets, from their
   * values: a restore into a live Redis keeps the sets there and indexes what it brought back.
   */
  async reindexTags(ns: Namespace<unknown>, keys: readonly string[]): Promise<Result<number>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return reindexTags({ l2: l2.value, rt: this.#d.rt }, ns, keys);
  }

  /** The entry keys (relative to the prefix) tag `tag` of namespace `name` indexes now. */
  async tagMembers(name: string, tag: string): Promise<Result<string[]>> {
    const l2 = this.#l2();
    if (!l2.ok) return l2;
    return l2.value.bulk.tagMembers(scopedTag(name, tag));
  }

  /** The cache's key prefix (a backup records it; a restore refuses another). */
  prefix(): string | undefined {
    return this.#d.l2()?.prefix;
  }

  #clearLocal(st: NamespaceState, pattern: string): void {
    const re = globToRegExp(pattern);
    this.#d.rt.invalidated();
    this.#d.rt.dropInflight(st.keyBase, (id) => re.test(id));
    this.#d.rt.l1?.removeWhere(st.keyBase, (id) => re.test(id));
  }
}

async function loadAll(
  st: NamespaceState,
  ids: readonly string[],
): Promise<Result<ReadonlyMap<string, unknown>>> {
  st.loads++;
  const t0 = performance.now();
  try {
    if (st.ns.loadMany) return ok(await st.ns.loadMany(ids));
    const values = await Promise.all(ids.map((id) => st.ns.load(id)));
    const found = new Map<string, unknown>();
    ids.forEach((id, i) => {
      if (values[i] !== undefined) found.set(id, values[i]);
    });
    return ok(found);
  } catch (cause) {
    st.loaderErrors++;
    return err(new CacheError('E_CACHE_LOADER_FAILED', `warm: loader of ${st.ns.name} failed`, { cause }));
  } finally {
    st.timers.l3.observe((performance.now() - t0) / 1000);
  }
}
