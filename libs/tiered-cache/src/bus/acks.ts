/**
 * The waiting side of a fleet-acknowledged invalidation (docs/design-fleet-ack.md): the pods that
 * acknowledged one token, and a wait for the expected ones bounded by a deadline.
 */

/** Who answered a fleet-acknowledged invalidation, and who did not by the deadline. */
export interface AckOutcome {
  readonly acked: readonly string[];
  readonly missing: readonly string[];
}

/** Acks of one token: registered before its event is published, so none arrives unregistered. */
export class AckWaiter {
  readonly #acked = new Set<string>();
  readonly #readRecord: () => Promise<readonly string[]>;
  readonly #release: () => void;
  #check: (() => void) | undefined;

  /** `readRecord`: the acks Redis holds (read at the deadline); `release`: forget this waiter. */
  constructor(readRecord: () => Promise<readonly string[]>, release: () => void) {
    this.#readRecord = readRecord;
    this.#release = release;
  }

  /** A pod's ack arrived (over pub/sub). */
  heard(pod: string): void {
    this.#acked.add(pod);
    this.#check?.();
  }

  /**
   * Resolves once every expected pod acknowledged, or at `deadline` (performance.now() ms). At the
   * deadline the acks Redis recorded are read once: a notification lost on the way still counts.
   */
  async until(expected: readonly string[], deadline: number): Promise<AckOutcome> {
    const missing = () => expected.filter((p) => !this.#acked.has(p));
    try {
      if (missing().length > 0) {
        await new Promise<void>((resolve) => {
          const finish = () => {
            clearTimeout(timer);
            this.#check = undefined;
            resolve();
          };
          const timer = setTimeout(finish, Math.max(0, deadline - performance.now()));
          this.#check = () => {
            if (missing().length === 0) finish();
          };
        });
        if (missing().length > 0) for (const p of await this.#readRecord()) this.#acked.add(p);
      }
      const left = missing();
      return { acked: expected.filter((p) => this.#acked.has(p)), missing: left };
    } finally {
      this.#release();
    }
  }

  /** The invalidation failed: nothing to wait for. */
  cancel(): void {
    this.#release();
  }
}
