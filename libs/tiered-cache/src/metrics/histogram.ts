import type { Metric, Registry } from 'prom-client';

/**
 * A histogram whose series are plain arrays bumped on the hot path and turned into Prometheus
 * samples only at scrape time. prom-client's own `observe` builds a closure and hashes the label
 * set on every call: 4.5% of an L2 hit in the profile, for a number we only read every 15 s.
 * Registered with `registry.registerMetric`; implements what prom-client's Registry reads.
 */
export interface Observer {
  observe(seconds: number): void;
}

class Series implements Observer {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    if (i < bounds.length) this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }
}

interface Sample {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName: string;
}

export class FastHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { labels: Record<string, string>; series: Series }>();

  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
  }

  /** Registers this histogram on `registry` (it implements what prom-client's Registry reads). */
  registerOn(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  /** Bind once (e.g. per namespace and tier), observe many times. */
  series(labels: Record<string, string>): Observer {
    const id = Object.values(labels).join('\u0000');
    let entry = this.#series.get(id);
    if (!entry) {
      entry = { labels, series: new Series(this.#bounds) };
      this.#series.set(id, entry);
    }
    return entry.series;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const { labels, series } of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += series.counts[i] as number;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      });
      values.push({
        metricName: `${this.name}_bucket`,
        labels: { ...labels, le: '+Inf' },
        value: series.count,
      });
      values.push({ metricName: `${this.name}_sum`, labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#series.clear();
  }
}
