import type { Result } from '../../result.js';
import {
  type AuditInput,
  auditEntrySchema,
  type NamespaceTuning,
  parsePins,
  parseRolloutHash,
  parseTuningHash,
  type RolloutStage,
  rolloutStageSchema,
  type StoredAuditEntry,
} from '../../tuning.js';
import type { L2Connection } from './connection.js';

/** The audit stream keeps about this many decisions (XADD MAXLEN ~). */
export const AUDIT_MAXLEN = 1_000;

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * The tuner's keys in the cache Redis (docs/tuning.md): settings in force, pins, the audit stream,
 * the tuner's state and its lock. All under one hash tag (`{tune}`), so a decision (settings and
 * its audit entries) is one MULTI on a Cluster too.
 */
export class TuningStore {
  readonly #c: L2Connection;

  constructor(c: L2Connection) {
    this.#c = c;
  }

  /** The settings in force per namespace (fields that do not validate are left out). */
  settings(): Promise<Result<Map<string, NamespaceTuning>>> {
    const c = this.#c;
    return c.guard.run(async () => parseTuningHash(await c.client.hgetall(c.keys.tuneSettings)));
  }

  /**
   * The settings for a pod's background refresh: sent only while the breaker is closed, and a
   * failure is not counted against it (undefined: not read now; the next refresh tries again). A
   * poll failing during a failover must not open the breaker for the pod's reads.
   */
  settingsInBackground(): Promise<Map<string, NamespaceTuning> | undefined> {
    return this.#inBackground(this.#c.keys.tuneSettings, parseTuningHash);
  }

  /** Rollout stages per namespace (fields that do not validate are left out). */
  rollouts(): Promise<Result<Map<string, RolloutStage>>> {
    const c = this.#c;
    return c.guard.run(async () => parseRolloutHash(await c.client.hgetall(c.keys.tuneRollout)));
  }

  /** The rollout stages for an API pod's background refresh: as `settingsInBackground`. */
  rolloutsInBackground(): Promise<Map<string, RolloutStage> | undefined> {
    return this.#inBackground(this.#c.keys.tuneRollout, parseRolloutHash);
  }

  async #inBackground<T>(key: string, parse: (hash: Record<string, string>) => T): Promise<T | undefined> {
    const c = this.#c;
    if (c.guard.breaker.state !== 'closed' || c.client.status !== 'ready') return undefined;
    try {
      return parse(await c.client.hgetall(key));
    } catch {
      return undefined;
    }
  }

  /** Pins: `<namespace>:<setting>` → value. */
  pins(): Promise<Result<Map<string, number>>> {
    const c = this.#c;
    return c.guard.run(async () => parsePins(await c.client.hgetall(c.keys.tunePins)));
  }

  /**
   * Writes settings and their audit entries together (MULTI: a reader never sees one without the
   * other). Resolves the audit entries' stream ids.
   */
  commit(
    settings: ReadonlyMap<string, NamespaceTuning>,
    audit: readonly AuditInput[],
    also?: {
      readonly pins?: ReadonlyMap<string, number>;
      readonly unpin?: readonly string[];
      /** The tuner's memory, written with its decisions. */
      readonly state?: string;
      /** Rollout stages (an operator's, or the guard's rollback and baselines). */
      readonly rollouts?: ReadonlyMap<string, RolloutStage>;
    },
  ): Promise<Result<string[]>> {
    const c = this.#c;
    return c.guard.run(async () => {
      const m = c.client.multi();
      if (also?.state !== undefined) m.set(c.keys.tuneState, also.state);
      for (const [ns, t] of settings) m.hset(c.keys.tuneSettings, ns, JSON.stringify(t));
      for (const [field, v] of also?.pins ?? []) m.hset(c.keys.tunePins, field, String(v));
      for (const [ns, stage] of also?.rollouts ?? [])
        m.hset(c.keys.tuneRollout, ns, JSON.stringify(rolloutStageSchema.parse(stage)));
      if (also?.unpin && also.unpin.length > 0) m.hdel(c.keys.tunePins, ...also.unpin);
      for (const a of audit) {
        const entry = auditEntrySchema.parse(a);
        m.xadd(c.keys.tuneAudit, 'MAXLEN', '~', AUDIT_MAXLEN, '*', 'entry', JSON.stringify(entry));
      }
      const replies = (await m.exec()) ?? [];
      return replies.slice(replies.length - audit.length).map(([, id]) => (typeof id === 'string' ? id : ''));
    });
  }

  /** The last `limit` decisions, newest first (entries that do not validate are skipped). */
  audit(limit: number): Promise<Result<StoredAuditEntry[]>> {
    const c = this.#c;
    return c.guard.run(async () => {
      const rows = await c.client.xrevrange(c.keys.tuneAudit, '+', '-', 'COUNT', limit);
      const out: StoredAuditEntry[] = [];
      for (const [id, fields] of rows) {
        const at = fields.indexOf('entry');
        if (at < 0) continue;
        try {
          const parsed = auditEntrySchema.safeParse(JSON.parse(fields[at + 1] ?? ''));
          if (parsed.success) out.push({ id, ...parsed.data });
        } catch {
          // not JSON: another writer's; skipped
        }
      }
      return out;
    });
  }

  /** The tuner's memory, as stored (JSON text; the tuner validates it). */
  state(): Promise<Result<string | null>> {
    const c = this.#c;
    return c.guard.run(() => c.client.get(c.keys.tuneState));
  }

  /** Takes the tune lock for `ttlMs` (false: another run holds it). */
  lock(token: string, ttlMs: number): Promise<Result<boolean>> {
    const c = this.#c;
    return c.guard.run(async () => (await c.client.set(c.keys.tuneLock, token, 'PX', ttlMs, 'NX')) === 'OK');
  }

  unlock(token: string): Promise<Result<void>> {
    const c = this.#c;
    return c.guard.run(async () => {
      await c.client.eval(UNLOCK, 1, c.keys.tuneLock, token);
    });
  }
}
