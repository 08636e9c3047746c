/**
 * Per-request metrics without per-request label hashing: prom-client hashes a label object on every
 * `inc`/`observe`; a child bound once per label combination skips that (the load test showed the
 * pod's own per-request work costing more than the cache read).
 */
export function boundBy<C>(bind: (values: readonly string[]) => C): (...values: string[]) => C {
  const children = new Map<string, C>();
  return (...values) => {
    const key = values.join('\u0000');
    let child = children.get(key);
    if (child === undefined) {
      child = bind(values);
      children.set(key, child);
    }
    return child;
  };
}
