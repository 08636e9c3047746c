import { Counter, type Registry } from 'prom-client';

/** One series of a `FastCounter`: a plain number bumped on the hot path. */
export interface Increment {
  inc(by?: number): void;
}

class Cell implements Increment {
  value = 0;
  reported = 0;

  inc(by = 1): void {
    this.value += by;
  }
}

interface FastCounterOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registry: Registry;
}

/**
 * A counter whose series are plain numbers on the hot path and reach prom-client only at scrape
 * time (its `collect`, run by `registry.metrics()` and `metric.get()`), each advanced by what it
 * counted since the last scrape. A prom-client child's `inc` hashes its label set on every call: a
 * per-request counter paid that on every request for a number read every 15 s.
 * Bind a series once (`series`), keep it, bump it. A series is exported from its first scrape on,
 * at 0 if nothing was counted yet: rate() and increase() take a series' first sample as its start.
 */
export class FastCounter<L extends string> {
  readonly #cells = new Map<string, { labels: Readonly<Record<L, string>>; cell: Cell }>();

  constructor(options: FastCounterOptions<L>) {
    const cells = this.#cells;
    new Counter({
      name: options.name,
      help: options.help,
      labelNames: [...options.labelNames],
      registers: [options.registry],
      collect() {
        for (const { labels, cell } of cells.values()) {
          const delta = cell.value - cell.reported;
          cell.reported = cell.value;
          this.inc(labels, delta);
        }
      },
    });
  }

  /** The series of `labels`: the same one for the same label values, made on first use. */
  series(labels: Readonly<Record<L, string>>): Increment {
    const id = Object.values(labels).join('\u0000');
    let entry = this.#cells.get(id);
    if (entry === undefined) {
      entry = { labels: { ...labels }, cell: new Cell() };
      this.#cells.set(id, entry);
    }
    return entry.cell;
  }
}
