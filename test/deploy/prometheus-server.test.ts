/**
 * The derivation of the short-timed rule copy the live Prometheus test loads (shortenRules,
 * test/deploy/prometheus-server.ts) from the shipped rules, without a server.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { durationMs, shortenRules } from './prometheus-server.js';

describe('shortenRules', () => {
  const shipped = readFileSync(
    join(import.meta.dirname, '..', '..', 'deploy', 'prometheus', 'rules.yaml'),
    'utf8',
  );
  const Rules = z.object({
    groups: z.array(
      z.object({ rules: z.array(z.looseObject({ expr: z.string(), for: z.string().optional() })) }),
    ),
  });
  const rules = (text: string) => Rules.parse(parse(text)).groups.flatMap((g) => g.rules);

  it('divides every for: and range window, floors for:, and changes nothing else', () => {
    const before = rules(shipped);
    const after = rules(shortenRules(shipped, { divisor: 60, minForMs: 3_000 }));
    expect(after).toHaveLength(before.length);
    const windows = (e: string) => [...e.matchAll(/\[(\w+)\]/g)].map((m) => m[1] as string);
    for (const [i, a] of after.entries()) {
      const b = before[i] as (typeof before)[number];
      expect({ ...a, expr: '', for: '' }).toEqual({ ...b, expr: '', for: '' });
      expect(a.expr.replace(/\[\w+\]/g, '[]')).toBe(b.expr.replace(/\[\w+\]/g, '[]'));
      expect(windows(a.expr).map(durationMs)).toEqual(windows(b.expr).map((w) => durationMs(w) / 60));
      if (b.for === undefined) expect(a.for).toBeUndefined();
      else expect(durationMs(a.for ?? '')).toBe(Math.max(3_000, durationMs(b.for) / 60));
    }
    expect(before.some((r) => windows(r.expr).length > 0)).toBe(true);
  });

  it('shortens subqueries and leaves brackets inside strings alone', () => {
    const text =
      'groups:\n  - name: g\n    rules:\n      - record: r\n        expr: max_over_time(rate(x{a=~"[5m]"}[10m])[1h:30s])\n';
    expect(rules(shortenRules(text, { divisor: 60, minForMs: 3_000 }))[0]?.expr).toBe(
      'max_over_time(rate(x{a=~"[5m]"}[10s])[60s:500ms])',
    );
  });
});
