/** The value every library stores: a ~1 KB JSON object, the shape the project's zod schema accepts. */
export interface BenchValue {
  readonly id: string;
  readonly payload: string;
}

export type Role = 'floor' | 'peer' | 'project';

/**
 * `tiered`: L1 in process in front of Redis. `l2-only`: no L1 at all, so every read pays the
 * Redis round trip and the library's decode path; that is how "L1 cold" is made reproducible.
 */
export type Tier = 'tiered' | 'l2-only';

export interface AdapterOptions {
  readonly port: number;
  readonly tier: Tier;
  /** Per run and library, so libraries never read each other's encodings. */
  readonly prefix: string;
  readonly load: (key: string) => Promise<BenchValue | undefined>;
}

/**
 * `get` is the library's read-through call (it runs `load` on a miss), returned as is: a plain
 * value for the synchronous lru-cache floor, a promise for the others. Wrapping it in another
 * async function would add a second await to one row and not the others.
 */
export interface CacheAdapter {
  get(key: string): unknown;
  /** Turns what `get` resolved to into the value (identity, or unwrapping a Result); throws on a fault. */
  unwrap(resolved: unknown): unknown;
  set(key: string, value: BenchValue): Promise<void>;
  close(): Promise<void>;
}

export interface AdapterSpec {
  readonly name: string;
  readonly role: Role;
  readonly tiers: readonly Tier[];
  /** Configuration a reader needs to judge the row (defaults that cost time, missing features). */
  readonly note: string;
  setup(options: AdapterOptions): Promise<CacheAdapter>;
}

export interface Row {
  readonly workload: string;
  readonly name: string;
  readonly role: Role;
  /** null when the row failed or has no throughput meaning. */
  readonly opsPerSec: number | null;
  readonly extra: string;
  readonly error?: string;
  readonly runs?: readonly number[];
  vsFloor?: number | null;
  vsBentocache?: number | null;
}

export interface WorkloadContext {
  readonly port: number;
  /** Overrides the workload's default op count (the `--n` flag). */
  readonly n: number | undefined;
  readonly runId: string;
  readonly log: (message: string) => void;
}

export interface Workload {
  readonly name: string;
  readonly describe: string;
  run(ctx: WorkloadContext): Promise<Row[]>;
}
