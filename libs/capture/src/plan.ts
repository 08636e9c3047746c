import type { Namespace } from '@cachefleet/tiered-cache';
import type { CapturedSource } from './source.js';
import { render } from './source.js';

/** One outbox row as the reader reads it. */
export interface OutboxRow {
  readonly pos: string;
  readonly ns: string;
  readonly tbl: string;
  readonly op: string;
  /** Captured column values of the distinct old and new rows of one statement. */
  readonly rows: unknown;
}

/** What one turn does to one namespace. */
export interface NamespacePlan {
  readonly namespace: Namespace<unknown>;
  /** A TRUNCATE was captured: the whole namespace goes (its generation moves). */
  whole: boolean;
  readonly tags: string[];
  readonly ids: string[];
  /** Row images seen (old and new, deduplicated per statement). */
  images: number;
}

export interface Plan {
  readonly namespaces: NamespacePlan[];
  /** Rows naming a namespace or table these definitions do not declare: skipped, and counted. */
  unknown: number;
}

/** A tag must fit an event (≤ 256 characters); a longer one cannot coalesce. */
const MAX_TAG = 256;

/**
 * Turns a batch of outbox rows into invalidations, per namespace. Every row image (old or new)
 * names an id; below `coalesceAt` distinct ids they are all deleted by id. From `coalesceAt` on, a
 * tag carried by at least `coalesceAt` ids is invalidated once, and an id is left out of the deletes
 * only if every image of it carries such a tag: its entry may hold any of its versions in the batch,
 * and each version is indexed under its own tags.
 */
export function planBatch(
  rows: readonly OutboxRow[],
  sources: readonly CapturedSource[],
  coalesceAt: number,
): Plan {
  const bySource = new Map(sources.map((s) => [`${s.namespace.name} ${s.table}`, s]));
  const perNs = new Map<string, { plan: NamespacePlan; images: Map<string, (readonly string[])[]> }>();
  let unknown = 0;
  for (const row of rows) {
    const source = bySource.get(`${row.ns} ${row.tbl}`);
    if (source === undefined) {
      unknown++;
      continue;
    }
    let entry = perNs.get(row.ns);
    if (entry === undefined) {
      entry = {
        plan: { namespace: source.namespace, whole: false, tags: [], ids: [], images: 0 },
        images: new Map(),
      };
      perNs.set(row.ns, entry);
    }
    if (row.op === 'T') {
      entry.plan.whole = true;
      continue;
    }
    if (!Array.isArray(row.rows)) continue;
    for (const img of row.rows) {
      if (typeof img !== 'object' || img === null) continue;
      const values = img as Record<string, unknown>;
      entry.plan.images++;
      const id = render(source.id, values);
      if (id === undefined || !source.namespace.isValidId(id)) continue;
      const tags: string[] = [];
      for (const t of source.tags) {
        const tag = render(t, values);
        if (tag !== undefined && tag.length <= MAX_TAG) tags.push(tag);
      }
      let list = entry.images.get(id);
      if (list === undefined) {
        list = [];
        entry.images.set(id, list);
      }
      list.push(tags);
    }
  }
  const namespaces: NamespacePlan[] = [];
  for (const { plan, images } of perNs.values()) {
    namespaces.push(plan);
    if (plan.whole) continue;
    if (images.size < coalesceAt) {
      plan.ids.push(...images.keys());
      continue;
    }
    const idsPerTag = new Map<string, number>();
    for (const list of images.values()) {
      const seen = new Set(list.flat());
      for (const tag of seen) idsPerTag.set(tag, (idsPerTag.get(tag) ?? 0) + 1);
    }
    const big = new Set([...idsPerTag].filter(([, n]) => n >= coalesceAt).map(([tag]) => tag));
    plan.tags.push(...big);
    for (const [id, list] of images) {
      const covered = big.size > 0 && list.every((tags) => tags.some((t) => big.has(t)));
      if (!covered) plan.ids.push(id);
    }
  }
  return { namespaces, unknown };
}
