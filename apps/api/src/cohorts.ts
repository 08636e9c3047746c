import type { CohortCount } from '@cachefleet/tiered-cache';
import type { Cohort } from './rollout.js';

interface Counts {
  requests: number;
  errors: number;
}

/**
 * Requests and 5xx answers per namespace and rollout cohort since this pod started, for its
 * telemetry snapshot (`cohorts`): the tuner's rollout guard reads the `cache` cohort's error rate
 * from the fleet's snapshots (docs/tuning.md "Rollout guard"). Counting allocates only the first
 * time a namespace is seen.
 */
export class CohortCounts {
  readonly #byNamespace = new Map<string, { cache: Counts; control: Counts }>();

  #of(namespace: string, cohort: Cohort): Counts {
    let n = this.#byNamespace.get(namespace);
    if (n === undefined) {
      n = { cache: { requests: 0, errors: 0 }, control: { requests: 0, errors: 0 } };
      this.#byNamespace.set(namespace, n);
    }
    return n[cohort];
  }

  request(namespace: string, cohort: Cohort): void {
    this.#of(namespace, cohort).requests++;
  }

  error(namespace: string, cohort: Cohort): void {
    this.#of(namespace, cohort).errors++;
  }

  snapshot(): CohortCount[] {
    const out: CohortCount[] = [];
    for (const [namespace, n] of this.#byNamespace)
      for (const cohort of ['cache', 'control'] as const)
        out.push({ namespace, cohort, requests: n[cohort].requests, errors: n[cohort].errors });
    return out;
  }
}
