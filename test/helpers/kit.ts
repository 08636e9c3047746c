import type { Redis } from 'ioredis';

/**
 * Small helpers that many tests wrote for themselves: a promise settled from outside, a Result
 * unwrapped, a SCAN count, a seeded random stream. Nothing here starts a process.
 */

/** A promise and the function that settles it, for holding a loader or a step until a test says so. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The value of an ok Result; the Result's own error thrown otherwise (so the test fails with it). */
export function unwrap<T>(
  r: { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown },
): T {
  if (!r.ok) throw r.error;
  return r.value;
}

/**
 * A telemetry snapshot or its index (`<prefix>__{fleet}:…`): every running cache writes its own,
 * so a test that asks "was anything written" about data leaves them out.
 */
export function isTelemetryKey(key: string): boolean {
  return key.includes('__{fleet}:');
}

/** How many keys match `pattern` on every node given (SCAN, never KEYS); `dataOnly`: no telemetry keys. */
export async function countKeys(
  nodes: Redis | readonly Redis[],
  pattern: string,
  options: { readonly dataOnly?: boolean } = {},
): Promise<number> {
  let n = 0;
  for (const node of isList(nodes) ? nodes : [nodes]) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      n += keys.filter((k) => !options.dataOnly || !isTelemetryKey(k)).length;
    } while (cursor !== '0');
  }
  return n;
}

function isList(nodes: Redis | readonly Redis[]): nodes is readonly Redis[] {
  return Array.isArray(nodes);
}

/** mulberry32: a small seeded stream in [0, 1), so a run's choices can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The ids of the connections whose name passes `named` (CLIENT LIST), e.g. to CLIENT KILL one. */
export async function clientIds(redis: Redis, named: (name: string) => boolean): Promise<string[]> {
  const list: unknown = await redis.client('LIST');
  if (typeof list !== 'string') throw new Error('CLIENT LIST did not answer text');
  return list.split('\n').flatMap((line) => {
    const name = / name=(\S*)/.exec(line)?.[1];
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    return name !== undefined && id !== undefined && named(name) ? [id] : [];
  });
}

/** A value a test file's beforeAll set; a clear error when it did not get that far. */
export function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} did not start (see beforeAll)`);
  return value;
}
