import type { Namespace, SourceTable } from '@cachefleet/tiered-cache';
import { CaptureError } from './errors.js';

/** A template split once: literal text and column names, alternating (`parts[odd]` are columns). */
export interface Template {
  readonly text: string;
  readonly parts: readonly string[];
}

/** `category:{category}` → ['category:', 'category', '']. Definitions were checked by defineNamespace. */
export function parseTemplate(text: string): Template {
  return { text, parts: text.split(/\{([a-z_][a-z0-9_]*)\}/) };
}

/** The columns a template names. */
export function columnsOf(t: Template): string[] {
  return t.parts.filter((_, i) => i % 2 === 1);
}

/**
 * The template over one captured row (column → text or null). A column that is NULL (or absent)
 * gives undefined: that row names no entry through this template.
 */
export function render(t: Template, row: Readonly<Record<string, unknown>>): string | undefined {
  let out = '';
  for (let i = 0; i < t.parts.length; i++) {
    const part = t.parts[i] ?? '';
    if (i % 2 === 0) {
      out += part;
      continue;
    }
    const v = row[part];
    if (typeof v !== 'string') return undefined;
    out += v;
  }
  return out;
}

/** One (namespace, table) pair, compiled: what the trigger captures and how the reader maps it. */
export interface CapturedSource {
  readonly namespace: Namespace<unknown>;
  /** `schema.table` as declared. */
  readonly table: string;
  readonly id: Template;
  readonly tags: readonly Template[];
  /** Every column a template names, sorted: the trigger captures these and nothing else. */
  readonly columns: readonly string[];
}

function compile(namespace: Namespace<unknown>, source: SourceTable): CapturedSource {
  const id = parseTemplate(source.id);
  const tags = (source.tags ?? []).map(parseTemplate);
  const columns = [...new Set([id, ...tags].flatMap(columnsOf))].sort();
  return { namespace, table: source.table, id, tags, columns };
}

/** Every declared source of the namespaces; E_CAPTURE_NO_SOURCES when none declares one. */
export function capturedSources(namespaces: readonly Namespace<unknown>[]): CapturedSource[] {
  const out = namespaces.flatMap((ns) => (ns.sources ?? []).map((s) => compile(ns, s)));
  if (out.length === 0) throw new CaptureError('E_CAPTURE_NO_SOURCES');
  const seen = new Set<string>();
  for (const s of out) {
    const key = `${s.namespace.name} ${s.table}`;
    if (seen.has(key))
      throw new CaptureError(
        'E_CAPTURE_NO_SOURCES',
        `namespace ${s.namespace.name} declares table ${s.table} twice: one source per table`,
      );
    seen.add(key);
  }
  return out;
}
