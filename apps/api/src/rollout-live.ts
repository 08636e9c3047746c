import { formatError } from '@cachefleet/config';
import { type Cache, type RolloutStage, rolloutOfEvent } from '@cachefleet/tiered-cache';
import type { Logger } from 'pino';
import type { Rollout } from './rollout.js';

/**
 * Keeps this pod's rollout percentages on the stored stages (`<prefix>__{tune}:rollout`, written by
 * `cachefleet rollout` and by the tuner's rollout guard; docs/tuning.md "Rollout guard"): read at
 * start and every telemetry interval (a pod that missed an event, or started later, converges
 * within one), and a `config` event carrying `rolloutPercent` is applied at once. A stored stage
 * overrides CACHE_ROLLOUT. Resolves the function that stops following.
 */
export async function followRolloutStages(cache: Cache, plan: Rollout, logger: Logger): Promise<() => void> {
  const store = cache.tuning;
  if (!store.ok) return () => undefined;
  const apply = (namespace: string, percent: number, why: string) => {
    const before = plan.percentage(namespace);
    if (before === percent) return;
    try {
      plan.set(namespace, percent);
      logger.info({ namespace, from: before, to: percent, why }, 'rollout percentage changed');
    } catch (error) {
      logger.warn({ namespace, err: formatError(error) }, 'rollout stage refused');
    }
  };
  const applyAll = (stages: ReadonlyMap<string, RolloutStage>) => {
    for (const [namespace, stage] of stages) apply(namespace, stage.percent, 'stored');
  };
  const first = await store.value.rollouts();
  if (first.ok) applyAll(first.value);
  else
    logger.warn({ code: first.error.code }, 'rollout stages not read at start: CACHE_ROLLOUT until they are');
  const off = cache.onEvent((event) => {
    if (event.event_type !== 'config') return;
    const percent = rolloutOfEvent(event.settings);
    if (percent !== undefined) apply(event.namespace, percent, 'event');
  });
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    void store.value
      .rolloutsInBackground()
      .then((stages) => stages !== undefined && applyAll(stages))
      .finally(() => {
        reading = false;
      });
  }, cache.options.telemetry.intervalSeconds * 1000);
  timer.unref();
  return () => {
    off();
    clearInterval(timer);
  };
}
