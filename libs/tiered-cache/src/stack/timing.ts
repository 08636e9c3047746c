import type { Observer } from '../metrics/histogram.js';

/** Duration observers of one namespace, bound once when its state is created. */
export interface NamespaceTimers {
  readonly l1: Observer;
  readonly l2: Observer;
  /** The loader (L3). */
  readonly l3: Observer;
  readonly writeL2: Observer;
  /** L1 puts, sampled (1 in l1TimingSampleRate). */
  readonly writeL1: Observer;
}

/** Hands out a namespace's timers; the read/write paths never look a series up per call. */
export type TimingSink = (namespace: string) => NamespaceTimers;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** ±50% jitter so waiters across the fleet do not poll Redis in lock-step. */
export function jitter(ms: number): number {
  return ms / 2 + Math.random() * ms;
}
