import {
  DEFAULT_TUNING,
  pinField,
  type Result,
  ROLLOUT_SETTING,
  type RolloutStage,
  type StoredAuditEntry,
  TUNE_SETTINGS,
  type TuneSetting,
  type TuningStore,
} from '@cachefleet/tiered-cache';
import { JobError } from '../errors.js';

/**
 * What an operator does to the tuner from the CLI (docs/tuning.md): pin a setting (it is set now
 * and the tuner never changes it), unpin it, undo the last decision that changed a setting. Each
 * writes the settings in force and its audit entry in one MULTI; pods pick the settings up within
 * their telemetry interval (the CLI is on no bus).
 */

const BY = 'operator';

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

export async function pinSetting(
  store: TuningStore,
  namespace: string,
  setting: TuneSetting,
  value: number,
): Promise<string> {
  const before = must(await store.settings()).get(namespace) ?? DEFAULT_TUNING;
  const at = Date.now();
  const after = { ...before, [setting]: value, changedAt: { ...before.changedAt, [setting]: at } };
  const r = await store.commit(
    new Map([[namespace, after]]),
    [
      {
        at,
        namespace,
        rule: 'pin',
        action: 'pin',
        setting,
        before: before[setting],
        after: value,
        mode: 'applied',
        by: BY,
      },
    ],
    { pins: new Map([[pinField(namespace, setting), value]]) },
  );
  return must(r)[0] ?? '';
}

export async function unpinSetting(
  store: TuningStore,
  namespace: string,
  setting: TuneSetting,
): Promise<string> {
  const pins = must(await store.pins());
  const field = pinField(namespace, setting);
  if (!pins.has(field)) throw new JobError('E_JOB_INVALID_PAYLOAD', `${field} is not pinned`);
  const r = await store.commit(
    new Map(),
    [
      {
        at: Date.now(),
        namespace,
        rule: 'pin',
        action: 'unpin',
        setting,
        after: pins.get(field),
        mode: 'applied',
        by: BY,
      },
    ],
    { unpin: [field] },
  );
  return must(r)[0] ?? '';
}

/** Entries looked at for the last decision to undo. */
const UNDO_WINDOW = 1_000;

/**
 * Undoes the newest applied change of a setting not undone yet (a tuner's set or revert, a pin, or
 * an undo itself is not undone again): the setting goes back to its value before, with a fresh
 * cool-down, and an `undo` entry names the decision. A pinned setting is refused (unpin it first).
 */
export async function undoLast(store: TuningStore): Promise<StoredAuditEntry | undefined> {
  const [a, s, p] = await Promise.all([store.audit(UNDO_WINDOW), store.settings(), store.pins()]);
  const audit = must(a);
  const pins = must(p);
  const undone = new Set(audit.flatMap((e) => (e.undoes !== undefined ? [e.undoes] : [])));
  const last = audit.find(
    (e) =>
      e.mode === 'applied' &&
      (e.action === 'set' || e.action === 'revert') &&
      isTuneSetting(e.setting) &&
      e.before !== undefined &&
      !undone.has(e.id),
  );
  if (last === undefined || !isTuneSetting(last.setting) || last.before === undefined) return undefined;
  const setting = last.setting;
  if (pins.has(pinField(last.namespace, setting)))
    throw new JobError(
      'E_JOB_INVALID_PAYLOAD',
      `${pinField(last.namespace, setting)} is pinned: unpin it first`,
    );
  const current = must(s).get(last.namespace) ?? DEFAULT_TUNING;
  const at = Date.now();
  const after = { ...current, [setting]: last.before, changedAt: { ...current.changedAt, [setting]: at } };
  const r = await store.commit(new Map([[last.namespace, after]]), [
    {
      at,
      namespace: last.namespace,
      rule: last.rule,
      action: 'undo',
      setting,
      before: current[setting],
      after: last.before,
      mode: 'applied',
      by: BY,
      undoes: last.id,
    },
  ]);
  must(r);
  return last;
}

function isTuneSetting(s: string | undefined): s is TuneSetting {
  return (TUNE_SETTINGS as readonly (string | undefined)[]).includes(s);
}

/**
 * An operator's rollout stage (`cachefleet rollout <namespace> <percent>`, docs/tuning.md): the
 * stage and its audit entry (`rule: operator`, `promote` or `lower`) in one MULTI. The baseline hit
 * rate is left to the tuner's next tick (it has the window before the change). Resolves the stage
 * written; the caller publishes the `config` event.
 */
export async function setRollout(
  store: TuningStore,
  namespace: string,
  percent: number,
  by = BY,
): Promise<{
  readonly stage: RolloutStage;
  readonly before: RolloutStage | undefined;
  readonly auditId: string;
}> {
  const before = must(await store.rollouts()).get(namespace);
  const at = Date.now();
  const stage: RolloutStage = { percent, previous: before?.percent ?? null, at, by };
  const r = await store.commit(
    new Map(),
    [
      {
        at,
        namespace,
        rule: 'operator',
        action: before !== undefined && percent < before.percent ? 'lower' : 'promote',
        setting: ROLLOUT_SETTING,
        ...(before !== undefined ? { before: before.percent } : {}),
        after: percent,
        mode: 'applied',
        by,
      },
    ],
    { rollouts: new Map([[namespace, stage]]) },
  );
  return { stage, before, auditId: must(r)[0] ?? '' };
}
