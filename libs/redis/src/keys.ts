import { escapeGlob } from './scan.js';

/**
 * The whole key layout of the cache Redis, in one module (as bullmq keeps `queue-keys.ts`): nothing
 * else in cachefleet builds a key string. Every key starts with the deployment's prefix
 * (`CACHE_KEY_PREFIX`, default `cf:`), so a prefix is one deployment and `clear()` never leaves it.
 * Names of our own state start with `__`; namespace names cannot (`[a-z][a-z0-9_-]*`).
 *
 * | key                                                | type          | what                                                        |
 * | -------------------------------------------------- | ------------- | ----------------------------------------------------------- |
 * | `<prefix><name>:v<version>:<id>`                   | string        | an entry (JSON, `~z` deflated, or a `~t` tombstone)         |
 * |                                                    |               | (`~g<loadedAt>.<expiresAt>:` first with grace/early refresh) |
 * | `<prefix><name>:v<version>:g<generation>:<id>`     | string        | the same after `invalidateNamespace` moved the generation   |
 * | `<prefix>__tag:<namespace>:<tag>`                  | set           | entry keys carrying the tag (lives as long as its entries)  |
 * | `<prefix>__lock:<entry key without prefix>`        | string, PX    | the fleet load lock of one entry (an owner token)           |
 * | `<prefix>__gen`                                    | hash          | namespace → generation                                      |
 * | `<prefix>__inv:<namespace>`                        | counter       | walk counter: bumped before every pattern or tag walk       |
 * | `<prefix>__hot:<namespace>`                        | sorted set    | sampled reads per id, for the hot warm                      |
 * | `<prefix>__bus`                                    | stream + channel | invalidation events (the channel has the stream's name)  |
 *
 * Reserved for the job kinds to come (`__backup:lock` is written by the backup and restore jobs of
 * issue 12; migrations and sweeps keep their state in their jobs). Keys that one script or MULTI must
 * change together share a hash tag (`{…}`), so they live in one slot on a Cluster:
 *
 * | key                                  | type          | what                                                               |
 * | ------------------------------------ | ------------- | ------------------------------------------------------------------ |
 * | `<prefix>__system`                   | string        | the system id, stored at first start (a process refuses another's) |
 * | `<prefix>__{fleet}:pod:<podId>`      | string, PX    | a pod's or worker's telemetry snapshot (JSON); dead pods expire    |
 * | `<prefix>__{fleet}:pods`             | sorted set    | pod id → when its snapshot expires, ms (read without SCAN)         |
 * | `<prefix>__{fleet}:exporter`         | string, PX    | the process exporting the Redis gauges now (a scrape lease)        |
 * | `<prefix>__{tune}:settings`          | hash          | the tuner's settings in force (a late pod reads them)              |
 * | `<prefix>__{tune}:pins`              | hash          | settings an operator pinned (never tuned)                          |
 * | `<prefix>__{tune}:audit`             | stream, capped| one entry per tuning decision                                      |
 * | `<prefix>__{tune}:state`             | string        | the tuner's memory: counters at its last tick, rules engaged       |
 * | `<prefix>__{tune}:lock`              | string, PX    | one tune run at a time                                             |
 * | `<prefix>__{tune}:rollout`           | hash          | namespace → its rollout stage (percent, previous, since, by)      |
 * | `<prefix>__ack:<event id>`           | set, PX       | pods that applied one event (fleet-acknowledged invalidation)      |
 * | `<prefix>__fenced:<podId>`           | set           | namespaces a pod that did not acknowledge drops from L1 when back  |
 * | `<prefix>__{capture}:lease`          | string, PX    | capture reader's lease `<fence>:<token>` (libs/capture writes it)  |
 * | `<prefix>__{capture}:position`       | string        | JSON: highest outbox position applied, fence, lag (libs/capture)   |
 * | `<prefix>__migrate:<namespace>`      | hash          | a version migration in progress (from, to, state)                  |
 * | `<prefix>__sweep:<namespace>`        | sorted set    | generations and versions left to sweep                             |
 * | `<prefix>__backup:lock`              | string, PX    | one backup or restore at a time                                    |
 *
 * Job cursors (SCAN positions, warm pages) are kept in the jobs' data in the queue Redis, not here.
 */

/**
 * The part of an entry key before the id, without the prefix: `<name>:v<version>:`, or after a
 * whole-namespace invalidation `<name>:v<version>:g<generation>:`. Built once per namespace (and
 * generation), so an entry key is one concatenation on the read path.
 */
export function entryBase(name: string, version: number, generation = 0): string {
  return generation === 0 ? `${name}:v${version}:` : `${name}:v${version}:g${generation}:`;
}

/** A tag as the cache indexes it: scoped by namespace, so two namespaces' `category:7` differ. */
export function scopedTag(namespace: string, tag: string): string {
  return `${namespace}:${tag}`;
}

/** A SCAN glob over the ids under an entry base (relative to the prefix, as walks save it). */
export function entryGlob(base: string, idPattern: string): string {
  return escapeGlob(base) + idPattern;
}

/** Every key of one prefix, precomputed once: a key is one concatenation. */
export class CacheKeys {
  readonly prefix: string;
  /** The prefix escaped for SCAN MATCH. */
  readonly prefixGlob: string;
  readonly generations: string;
  /** The bus stream; its pub/sub channel has the same name. */
  readonly bus: string;
  readonly busChannel: string;
  readonly system: string;
  readonly tuneSettings: string;
  readonly tunePins: string;
  readonly tuneAudit: string;
  readonly tuneState: string;
  readonly tuneLock: string;
  /** Rollout stages in force (A8): they override CACHE_ROLLOUT; the tuner's rollout guard lowers them. */
  readonly tuneRollout: string;
  readonly captureLease: string;
  readonly capturePosition: string;
  readonly backupLock: string;
  /** SCAN glob of the per-namespace hot sets. */
  readonly hotMatch: string;
  /** The fleet's telemetry index (pod id → expiry), in the slot of the snapshots. */
  readonly pods: string;
  /** The scrape lease of the process that exports the Redis gauges. */
  readonly exporter: string;
  readonly #tag: string;
  readonly #lock: string;
  readonly #inv: string;
  readonly #hot: string;
  readonly #pod: string;
  readonly #ack: string;
  readonly #fenced: string;
  readonly #migrate: string;
  readonly #sweep: string;
  /** Kept by `clear()`: what pods need to stay coherent and workers need to resume. */
  readonly #stateKeys: ReadonlySet<string>;
  readonly #statePrefixes: readonly string[];

  constructor(prefix: string) {
    const own = (name: string) => `${prefix}__${name}`;
    this.prefix = prefix;
    this.prefixGlob = escapeGlob(prefix);
    this.generations = own('gen');
    this.bus = own('bus');
    this.busChannel = this.bus;
    this.system = own('system');
    this.tuneSettings = own('{tune}:settings');
    this.tunePins = own('{tune}:pins');
    this.tuneAudit = own('{tune}:audit');
    this.tuneState = own('{tune}:state');
    this.tuneLock = own('{tune}:lock');
    this.tuneRollout = own('{tune}:rollout');
    this.captureLease = own('{capture}:lease');
    this.capturePosition = own('{capture}:position');
    this.backupLock = own('backup:lock');
    this.#tag = own('tag:');
    this.#lock = own('lock:');
    this.#inv = own('inv:');
    this.#hot = own('hot:');
    this.#pod = own('{fleet}:pod:');
    this.pods = own('{fleet}:pods');
    this.exporter = own('{fleet}:exporter');
    this.#ack = own('ack:');
    this.#fenced = own('fenced:');
    this.#migrate = own('migrate:');
    this.#sweep = own('sweep:');
    this.hotMatch = `${escapeGlob(this.#hot)}*`;
    this.#stateKeys = new Set([
      this.generations,
      this.bus,
      this.system,
      this.tuneSettings,
      this.tunePins,
      this.tuneAudit,
      this.tuneState,
      this.tuneLock,
      this.tuneRollout,
      this.captureLease,
      this.capturePosition,
      this.backupLock,
    ]);
    this.#statePrefixes = [this.#inv, this.#fenced, this.#migrate, this.#sweep];
  }

  /** An entry: `key` is `entryBase(…) + id`, as the read path and L1 use it. */
  entry(key: string): string {
    return this.prefix + key;
  }

  /** An entry by its parts (tests and tools; the read path keeps its entry base). */
  entryOf(ns: { readonly name: string; readonly version: number }, id: string, generation = 0): string {
    return this.prefix + entryBase(ns.name, ns.version, generation) + id;
  }

  /** A SCAN glob over entries: `relative` is an `entryGlob` (or `*` for every key of the prefix). */
  entryMatch(relative: string): string {
    return this.prefixGlob + relative;
  }

  /** The index of a tag already scoped by `scopedTag`. */
  tag(scoped: string): string {
    return this.#tag + scoped;
  }

  /** The fleet load lock of an entry (`key` without the prefix). */
  lock(key: string): string {
    return this.#lock + key;
  }

  invalidations(namespace: string): string {
    return this.#inv + namespace;
  }

  hot(namespace: string): string {
    return this.#hot + namespace;
  }

  /** The namespace of a key found with `hotMatch`. */
  hotNamespace(key: string): string {
    return key.slice(this.#hot.length);
  }

  pod(podId: string): string {
    return this.#pod + podId;
  }

  ack(eventId: string): string {
    return this.#ack + eventId;
  }

  fenced(podId: string): string {
    return this.#fenced + podId;
  }

  migration(namespace: string): string {
    return this.#migrate + namespace;
  }

  sweep(namespace: string): string {
    return this.#sweep + namespace;
  }

  /** Whether `clear()` must keep the key: fleet state, not cached data. */
  isFleetState(key: string): boolean {
    if (this.#stateKeys.has(key)) return true;
    for (const p of this.#statePrefixes) if (key.startsWith(p)) return true;
    return false;
  }
}

const byPrefix = new Map<string, CacheKeys>();

/** The layout of one prefix, built once per process and shared. */
export function cacheKeys(prefix: string): CacheKeys {
  let keys = byPrefix.get(prefix);
  if (keys === undefined) {
    keys = new CacheKeys(prefix);
    byPrefix.set(prefix, keys);
  }
  return keys;
}
