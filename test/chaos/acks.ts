/**
 * The writes a load script was told about (`PATCH` answered 200), per id, for its stale-read check:
 * a read is stale when it returns a value older than a write acknowledged before the read began.
 * Shared by `npm run test:chaos` (failover.ts) and `npm run test:soak` (soak.ts).
 */
export interface Ack {
  /** When the answer came, `performance.now()` ms. */
  readonly at: number;
  readonly stock: number;
}

export class AckLog {
  readonly #acks = new Map<string, Ack[]>();
  readonly #keep: number;

  /** `keep`: the newest acknowledgements kept per id (only the newest matter to the check). */
  constructor(keep = Number.POSITIVE_INFINITY) {
    this.#keep = keep;
  }

  add(id: string, ack: Ack): void {
    const list = this.#acks.get(id) ?? [];
    list.push(ack);
    if (list.length > this.#keep) list.splice(0, list.length - this.#keep);
    this.#acks.set(id, list);
  }

  /** The newest write of `id` acknowledged before `t` (ms). */
  before(id: string, t: number): Ack | undefined {
    const list = this.#acks.get(id) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const a = list[i] as Ack;
      if (a.at < t) return a;
    }
    return undefined;
  }
}
