/**
 * A value as the cache hands it out when its namespace is `immutable` (the default): every nested
 * object and array read-only. Functions, dates and other class instances are left as they are
 * (namespace values are JSON, so they do not occur after a schema parse).
 */
export type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends ReadonlyMap<infer K, infer V>
    ? ReadonlyMap<DeepReadonly<K>, DeepReadonly<V>>
    : T extends ReadonlySet<infer V>
      ? ReadonlySet<DeepReadonly<V>>
      : T extends readonly (infer E)[]
        ? readonly DeepReadonly<E>[]
        : T extends object
          ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
          : T;

/**
 * Freezes a value and everything reachable from it through own enumerable properties, in place,
 * and returns it. Paid once when a value enters the cache (a fill, an L2 read into L1, a set), never
 * on a hit. An object already frozen is not walked again: the cache freezes whole trees, so a
 * frozen node is the root of a frozen subtree (and cycles end there).
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  if (Array.isArray(value)) {
    for (const item of value) deepFreeze(item);
  } else {
    for (const key in value) {
      if (Object.hasOwn(value, key)) deepFreeze((value as Record<string, unknown>)[key]);
    }
  }
  return value;
}
