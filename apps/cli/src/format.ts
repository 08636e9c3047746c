/** Plain-text rendering shared by the commands: aligned tables, flattened JSON, times. */

/** Columns padded to their widest cell; numbers right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map(
    (_, i) => rows.length > 0 && rows.every((r) => /^-?[\d.,]+%?$/.test(r[i] ?? '')),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

type Scalar = string | number | boolean | null;

/**
 * A JSON value as `path → scalar` pairs: nested objects become dotted paths, and array items are
 * labelled by their `namespace`, `name` or `id` field when they have one (else their index).
 */
export function flatten(value: unknown, prefix = ''): [string, Scalar][] {
  if (value === null || typeof value !== 'object') {
    return [[prefix || 'value', value === undefined ? null : (value as Scalar)]];
  }
  const out: [string, Scalar][] = [];
  if (Array.isArray(value) && value.every((item) => item === null || typeof item !== 'object')) {
    return [[prefix || 'value', value.join(',')]];
  }
  const entries = Array.isArray(value)
    ? value.map((item, i) => [labelOf(item) ?? String(i), item] as const)
    : Object.entries(value);
  for (const [key, item] of entries) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (item !== null && typeof item === 'object') out.push(...flatten(item, path));
    else if (item !== undefined) out.push([path, item as Scalar]);
  }
  return out;
}

function labelOf(item: unknown): string | undefined {
  if (item === null || typeof item !== 'object') return undefined;
  const record = item as Record<string, unknown>;
  for (const key of ['namespace', 'name', 'id']) {
    const v = record[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  return undefined;
}

export function formatScalar(v: Scalar): string {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return Math.abs(v) < 1 ? v.toFixed(4) : v.toFixed(2);
  }
  return v === null ? '-' : String(v);
}

/** `key=value key=value` of a result or a progress report; plain numbers, for grep and awk. */
export function pairs(value: unknown): string {
  return flatten(value)
    .map(([k, v]) => `${k}=${v === null ? '-' : String(v)}`)
    .join(' ');
}

export function isoTime(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) || ms <= 0 ? '-' : new Date(ms).toISOString();
}

export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms % 60_000) / 1_000)} s`;
}

/** At most `max` characters, with an ellipsis when cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
