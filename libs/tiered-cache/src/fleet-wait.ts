import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ACK_TTL_MS, type EventBus } from './bus/event-bus.js';
import type { RedisStore } from './drivers/redis/store.js';
import { CacheError } from './errors.js';
import { err, ok, type Result } from './result.js';
import { ackingPods } from './telemetry.js';

/**
 * Fleet-acknowledged invalidation (issue 15, docs/design-fleet-ack.md): the call resolves once every
 * live pod has applied the invalidation to its L1, or after `timeoutMs` naming those that did not.
 */
export const fleetWaitSchema = z.strictObject({
  wait: z.literal('fleet'),
  /** Default bus.fleetWaitMs; counted from the call, the invalidation's own Redis work included. */
  timeoutMs: z.number().int().min(1).max(ACK_TTL_MS).optional(),
});
export type FleetWait = z.input<typeof fleetWaitSchema>;

/** How the fleet answered a fleet-acknowledged invalidation. */
export interface FleetAck {
  /** The live pods (heartbeat, at call time) that hold an L1 and hear the bus, this one left out. */
  readonly pods: readonly string[];
  readonly acked: readonly string[];
  /** Pods that did not acknowledge within the timeout: each is fenced for the namespace. */
  readonly missing: readonly string[];
  /** From the call to its resolution, ms. */
  readonly ms: number;
}

/** What an invalidation resolves without the option (`value`), and how the fleet answered. */
export interface Acknowledged<T> {
  readonly value: T;
  readonly fleet: FleetAck;
}

/** How long a fence waits for its pod to come back, ms: a pod away longer has flushed or left. */
export const FENCE_TTL_MS = 3_600_000;

export interface FleetWaitDeps {
  readonly bus: EventBus | undefined;
  readonly l2: RedisStore | undefined;
  readonly podId: string;
  readonly telemetryEnabled: boolean;
  readonly defaultTimeoutMs: number;
  readonly logger: Logger | undefined;
}

/** The last argument of `delete(ns, ...ids, options)` when it is an options object. */
export function splitWait(args: readonly (string | FleetWait)[]): {
  ids: string[];
  wait: FleetWait | undefined;
} {
  const last = args[args.length - 1];
  // Only a plain object is options: junk ids (null, an array) stay ids and are refused as ids.
  if (typeof last !== 'object' || last === null || Array.isArray(last))
    return { ids: args as string[], wait: undefined };
  return { ids: args.slice(0, -1) as string[], wait: last };
}

/**
 * Runs an invalidation whose event carries an ack token (`run(token)`), and waits for the live pods'
 * acknowledgements. The membership read runs concurrently with the invalidation; the token is
 * registered (and this pod's ack channel subscribed) before the event can go out.
 */
export async function waitForFleet<R>(
  deps: FleetWaitDeps,
  namespace: string,
  wait: unknown,
  run: (ack: string | undefined) => Promise<Result<R>>,
  /** The call invalidates nothing (no ids, no tags): no event goes out, nobody to wait for. */
  nothing = false,
): Promise<Result<Acknowledged<R>>> {
  const started = performance.now();
  const options = fleetWaitSchema.safeParse(wait);
  if (!options.success) {
    return err(
      new CacheError('E_CACHE_INVALID_OPTION', `invalid invalidation options: ${options.error.message}`),
    );
  }
  const { bus, l2 } = deps;
  const elapsed = () => performance.now() - started;
  if (bus === undefined || l2 === undefined || nothing) {
    // No bus: no other pod hears this cache's invalidations, so there is nobody to wait for.
    const r = await run(undefined);
    return r.ok ? ok({ value: r.value, fleet: { pods: [], acked: [], missing: [], ms: elapsed() } }) : r;
  }
  if (!deps.telemetryEnabled) {
    return err(
      new CacheError(
        'E_CACHE_CONFIG',
        "telemetry.enabled: wait 'fleet' needs the telemetry heartbeat to know the live pods",
      ),
    );
  }
  const deadline = started + (options.data.timeoutMs ?? deps.defaultTimeoutMs);
  const token = randomBytes(12).toString('hex');
  const live = ackingPods(l2, deps.podId);
  const waiter = bus.expectAcks(token);
  await bus.listenForAcks();
  const r = await run(token);
  const pods = await live;
  if (!r.ok || !pods.ok) {
    waiter.cancel();
    return r.ok ? (pods as Result<never>) : r;
  }
  const outcome = await waiter.until(pods.value, deadline);
  bus.stats.waits++;
  if (outcome.missing.length > 0) {
    bus.stats.timeouts++;
    const fenced = await l2.telemetry.fence(outcome.missing, namespace, FENCE_TTL_MS);
    deps.logger?.warn(
      { namespace, missing: outcome.missing, fenced: fenced.ok },
      'pods did not acknowledge an invalidation in time: fenced for the namespace',
    );
  }
  return ok({ value: r.value, fleet: { pods: pods.value, ...outcome, ms: elapsed() } });
}
