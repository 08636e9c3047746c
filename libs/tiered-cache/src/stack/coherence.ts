import { scopedTag } from '@cachefleet/redis';
import type { CacheEvent } from '../bus/events.js';
import type { ReadThrough } from './read-through.js';

/**
 * Applies another pod's event to this pod's L1 (the publisher already applied its own). L2 needs
 * nothing: the publisher changed it before publishing. Returns whether L1 was touched.
 */
export function applyToL1(rt: ReadThrough, event: CacheEvent): boolean {
  const l1 = rt.l1;
  switch (event.event_type) {
    case 'invalidate': {
      if (event.generation !== undefined) {
        rt.setGeneration(event.namespace, event.generation);
        return true;
      }
      rt.invalidated();
      // Loads in flight here began before the invalidation: later readers must not join them.
      for (const st of rt.statesNamed(event.namespace)) {
        if (event.keys) {
          const ids = new Set(event.keys);
          rt.dropInflight(st.keyBase, (id) => ids.has(id));
          if (l1) for (const id of event.keys) l1.remove(st.keyBase + id);
        } else if (event.key_pattern !== undefined) {
          const re = globToRegExp(event.key_pattern);
          rt.dropInflight(st.keyBase, (id) => re.test(id));
          l1?.removeWhere(st.keyBase, (id) => re.test(id));
        } else {
          // A tag: which in-flight loads carry it is unknown until they finish, so drop them all.
          rt.dropInflight(st.keyBase);
        }
      }
      if (event.tags) removeTagged(rt, event.namespace, event.tags);
      return true;
    }
    case 'update': {
      rt.invalidated();
      const ids = new Set(event.keys);
      for (const st of rt.statesNamed(event.namespace)) {
        rt.dropInflight(st.keyBase, (id) => ids.has(id));
        if (l1) for (const id of event.keys) l1.remove(st.keyBase + id);
      }
      return true;
    }
    case 'prewarm':
    case 'config':
      return false;
  }
}

/**
 * Drops from L1 the entries of namespace `name` carrying any of `tags` (unscoped). Tags a loader
 * set itself (`ctx.setTags`) are known to the pod that loaded the entry and to Redis's tag index,
 * not to a pod that copied the entry from L2: with no `tags` function to compute them again, its
 * copy has none. So in a namespace without one, untagged L1 entries go too (a tag invalidation
 * there means its loader sets tags). Returns how many tagged entries went (the untagged copies
 * dropped on suspicion are not counted as invalidated: Redis keeps them).
 */
export function removeTagged(rt: ReadThrough, name: string, tags: readonly string[]): number {
  const l1 = rt.l1;
  if (l1 === undefined) return 0;
  const n = l1.removeTags(tags.map((t) => scopedTag(name, t)));
  for (const st of rt.statesNamed(name)) {
    if (st.ns.tags === undefined) l1.removeWhere(st.keyBase, (id) => !l1.hasTags(st.keyBase + id));
  }
  return n;
}

/**
 * Redis glob semantics (`*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`) as a RegExp over whole ids, so a
 * pod drops from L1 exactly what SCAN MATCH removes from L2.
 */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '\\' && i + 1 < glob.length) {
      out += escapeRe(glob[++i] as string);
    } else if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith('^');
      if (negate) body = body.slice(1);
      out += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = end;
    } else out += escapeRe(c);
  }
  return new RegExp(`^${out}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}
