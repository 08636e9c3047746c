import { entryTimes, isTombstone } from '../drivers/codec.js';
import { CacheError } from '../errors.js';
import type { Namespace } from '../namespace.js';
import { err, OK_UNDEFINED, type Ok, ok, type Result } from '../result.js';
import { timesOf } from './entry-times.js';
import type { Candidate } from './fail-safe.js';
import { loadAndStore, store, type WriteMode } from './fill.js';
import type { ReadThrough } from './read-through.js';
import type { NamespaceState } from './state.js';

/**
 * Batched read-through: L1 first, then one L2 round trip for the rest, then `loadBatch` for what
 * is still missing. Aligned with `ids`.
 */
export async function getMany<T>(
  rt: ReadThrough,
  ns: Namespace<T>,
  ids: readonly string[],
): Promise<Result<(T | undefined)[]>> {
  const st = rt.state(ns as Namespace<unknown>);
  const epoch = rt.epoch;
  const startedAt = performance.now();
  const out: unknown[] = new Array(ids.length);
  const todo: number[] = [];
  const l1 = rt.l1;
  // Values past their TTL (grace), by index: served only if the load fails.
  const stale = new Map<number, Candidate>();
  const now = performance.now();
  for (let i = 0; i < ids.length; i++) {
    const hit = l1?.peek(st.keyBase + ids[i]);
    const times = hit !== undefined && st.timed ? timesOf(hit) : undefined;
    if (hit !== undefined && (times === undefined || now < times.freshUntil)) {
      st.l1Hits++;
      out[i] = hit.value;
    } else {
      if (hit !== undefined && times !== undefined)
        stale.set(i, { entry: hit, ...times, source: 'l1', epoch });
      todo.push(i);
    }
  }
  if (todo.length === 0) {
    rt.trace?.batch(ids.length, 0, 0);
    return ok(out as T[]);
  }
  for (const i of todo) if (!ns.isValidId(ids[i] as string)) return rt.invalidId(st, ids[i] as string);
  let missing = todo;
  const l2 = rt.l2;
  if (l2 !== undefined) {
    const keys = todo.map((i) => st.keyBase + ids[i]);
    const r = await l2.readMany(keys);
    st.timers.l2.observe((performance.now() - startedAt) / 1000);
    if (r.ok) {
      missing = [];
      const wall = Date.now();
      todo.forEach((i, j) => {
        const e = r.value[j];
        if (e === undefined) missing.push(i);
        else if (st.timed && e.times !== undefined && wall >= e.times.expiresAt) {
          if (!stale.has(i))
            stale.set(i, { entry: ok(rt.frozen(st, e.value)), ...e.times, source: 'l2', epoch });
          missing.push(i);
        } else {
          st.l2Hits++;
          const entry = ok(rt.frozen(st, e.value));
          rt.putL1(st, keys[j] as string, entry, e.size, epoch, st.timed ? e.times : undefined);
          out[i] = entry.value;
        }
      });
    } else st.l2Errors++;
  }
  rt.trace?.batch(ids.length - todo.length, todo.length - missing.length, missing.length);
  if (missing.length > 0) {
    const loaded = await loadBatch(
      rt,
      st,
      missing.map((i) => ids[i] as string),
      epoch,
      startedAt,
    );
    if (!loaded.ok) {
      if (st.graceMs === 0 || loaded.error.code !== 'E_CACHE_LOADER_FAILED') return loaded;
      // Fail-safe: served only if every id left has a stale copy that is still current.
      let oldest: Ok<unknown> | undefined;
      for (const i of missing) {
        const served = await rt.failSafe.fallback(st, st.keyBase + ids[i], stale.get(i));
        if (served === undefined) return loaded;
        out[i] = served.value;
        if (oldest === undefined || (served.stale?.ageSeconds ?? 0) > (oldest.stale?.ageSeconds ?? 0))
          oldest = served;
      }
      return { ok: true, value: out as (T | undefined)[], ...(oldest?.stale ? { stale: oldest.stale } : {}) };
    }
    missing.forEach((i, j) => {
      out[i] = loaded.value[j];
    });
  }
  return ok(out as (T | undefined)[]);
}

/**
 * The misses of a `getMany`: ids already loading in this process join that load; ids whose fleet
 * lock this process wins are re-read from L2 (a previous holder may just have filled them) and the
 * rest loaded with one `loadMany`; ids locked elsewhere wait for their holders like a single get.
 */
async function loadBatch(
  rt: ReadThrough,
  st: NamespaceState,
  ids: readonly string[],
  epoch: number,
  startedAt: number,
): Promise<Result<unknown[]>> {
  const keys = ids.map((id) => st.keyBase + id);
  const results: Promise<Result<unknown>>[] = new Array(ids.length);
  const mine: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const pending = rt.inflight.get(keys[i] as string);
    if (pending !== undefined) {
      st.misses++;
      results[i] = pending;
    } else mine.push(i);
  }
  if (mine.length > 0) await loadMine(rt, st, ids, keys, mine, results, epoch, startedAt);
  const settled = await Promise.all(results);
  const values: unknown[] = [];
  for (const r of settled) {
    if (!r.ok) return r;
    values.push(r.value);
  }
  return ok(values);
}

async function loadMine(
  rt: ReadThrough,
  st: NamespaceState,
  ids: readonly string[],
  keys: readonly string[],
  mine: readonly number[],
  results: Promise<Result<unknown>>[],
  epoch: number,
  startedAt: number,
): Promise<void> {
  const l2 = rt.l2;
  const tokens = l2
    ? await Promise.all(mine.map((i) => l2.locks.acquire(keys[i] as string, rt.lock.ttlMs)))
    : undefined;
  const tokenOf = new Map<number, string>();
  let owned: number[] = [];
  mine.forEach((i, j) => {
    const t = tokens?.[j];
    if (t?.ok && t.value !== null) tokenOf.set(i, t.value);
    if (t === undefined || !t.ok || t.value !== null) owned.push(i);
    else results[i] = rt.miss(st, ids[i] as string, keys[i] as string);
  });
  const release = (i: number) => {
    const token = tokenOf.get(i);
    if (l2 && token !== undefined) void l2.locks.release(keys[i] as string, token);
  };
  const expected = new Map<number, string>();
  let inv: number | undefined;
  if (l2 && owned.length > 0) {
    const [again, counter] = await Promise.all([
      Promise.all(owned.map((i) => l2.readWire(keys[i] as string))),
      l2.fence.invalidations(st.ns.name),
    ]);
    if (counter.ok) inv = counter.value;
    const still: number[] = [];
    owned.forEach((i, j) => {
      const wire = again[j];
      if (typeof wire === 'string' && !isTombstone(wire)) {
        const times = st.timed ? entryTimes(wire) : undefined;
        if (times !== undefined && Date.now() >= times.expiresAt) {
          // Past its TTL: load it, replacing exactly this value.
          expected.set(i, wire);
          still.push(i);
          return;
        }
        const decoded = rt.decode(st, l2, keys[i] as string, wire);
        if (decoded.ok) {
          rt.putL1(st, keys[i] as string, decoded, wire.length, epoch, times);
          results[i] = Promise.resolve(decoded);
          release(i);
          return;
        }
      }
      if (typeof wire === 'string' && isTombstone(wire)) expected.set(i, wire);
      still.push(i);
    });
    owned = still;
  }
  if (owned.length === 0) return;
  const modeOf = (i: number): WriteMode => ({
    kind: 'fill',
    expected: expected.get(i) ?? '',
    epoch,
    startedAt,
    ...(inv !== undefined ? { inv } : {}),
  });
  const batch = loadOwned(rt, st, owned, ids, keys, modeOf).finally(() => {
    for (const i of owned) {
      rt.inflight.delete(keys[i] as string);
      release(i);
    }
  });
  owned.forEach((i, j) => {
    const one = batch.then((r): Result<unknown> => (r.ok ? ok(r.value[j]) : r));
    rt.inflight.set(keys[i] as string, one);
    results[i] = one;
  });
}

async function loadOwned(
  rt: ReadThrough,
  st: NamespaceState,
  owned: readonly number[],
  ids: readonly string[],
  keys: readonly string[],
  modeOf: (i: number) => WriteMode,
): Promise<Result<unknown[]>> {
  st.misses += owned.length;
  const loadMany = st.ns.loadMany;
  const all = (rs: readonly Result<unknown>[]): Result<unknown[]> => {
    const values: unknown[] = [];
    for (const r of rs) {
      if (!r.ok) return r;
      values.push(r.value);
    }
    return ok(values);
  };
  if (loadMany === undefined) {
    return all(
      await Promise.all(
        owned.map((i) => loadAndStore(rt, st, ids[i] as string, keys[i] as string, modeOf(i))),
      ),
    );
  }
  st.loads++;
  const t0 = performance.now();
  let found: ReadonlyMap<string, unknown>;
  try {
    const batch = owned.map((i) => ids[i] as string);
    found = await (rt.trace === undefined
      ? loadMany(batch)
      : rt.trace.load(st.ns.name, batch, () => loadMany(batch)));
  } catch (cause) {
    st.loaderErrors++;
    return err(new CacheError('E_CACHE_LOADER_FAILED', `loadMany of ${st.ns.name} failed`, { cause }));
  } finally {
    st.timers.l3.observe((performance.now() - t0) / 1000);
  }
  return all(
    await Promise.all(
      owned.map((i) => {
        const v = found.get(ids[i] as string);
        return v === undefined ? OK_UNDEFINED : store(rt, st, keys[i] as string, v, modeOf(i));
      }),
    ),
  );
}
