import { defineNamespace } from '@cachefleet/tiered-cache';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { capturedSources, type OutboxRow, parseTemplate, planBatch, render } from '../src/index.js';

const ns = defineNamespace({
  name: 'item',
  version: 1,
  ttl: { l1: 1, l2: 1 },
  schema: z.unknown(),
  load: async () => undefined,
  sources: [{ table: 's.items', id: '{id}', tags: ['group:{grp}'] }],
});
const sources = capturedSources([ns]);
const row = (op: string, rows: { id: string; grp: string }[], pos = '1'): OutboxRow => ({
  pos,
  ns: 'item',
  tbl: 's.items',
  op,
  rows,
});
const many = (n: number, grp: string, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ id: String(from + i), grp }));

describe('planBatch', () => {
  it('below the threshold: every id of the old and new rows, by id', () => {
    const plan = planBatch(
      [
        row('U', [
          { id: '1', grp: 'a' },
          { id: '1', grp: 'b' },
        ]),
        row('D', [{ id: '2', grp: 'a' }]),
      ],
      sources,
      10,
    );
    expect(plan.namespaces).toEqual([
      expect.objectContaining({ whole: false, ids: ['1', '2'], tags: [], images: 3 }),
    ]);
  });

  it('a burst of one group becomes one tag; ids whose every image carries it are left out', () => {
    // 10,000 updates of 500 rows of group a (20 statements each), one row moving a → z.
    const rows = Array.from({ length: 20 }, (_, i) => row('U', many(500, 'a'), String(i)));
    rows.push(
      row('U', [
        { id: '0', grp: 'a' },
        { id: '0', grp: 'z' },
      ]),
    );
    const [plan] = planBatch(rows, sources, 100).namespaces;
    expect(plan?.tags).toEqual(['group:a']);
    // Id 0 has an image in group z (not invalidated): its entry may hold that version.
    expect(plan?.ids).toEqual(['0']);
    expect(plan?.images).toBe(10_002);
  });

  it('TRUNCATE is the whole namespace; unknown tables are counted and skipped', () => {
    const plan = planBatch([row('T', []), { ...row('U', many(1, 'a')), tbl: 's.other' }], sources, 100);
    expect(plan.unknown).toBe(1);
    expect(plan.namespaces[0]?.whole).toBe(true);
  });

  it('never leaves an id uncovered, whatever the batch (property)', () => {
    const image = fc.record({
      id: fc.integer({ min: 1, max: 40 }).map(String),
      grp: fc.constantFrom('a', 'b', 'c'),
    });
    fc.assert(
      fc.property(
        fc.array(fc.array(image, { maxLength: 30 }), { maxLength: 8 }),
        fc.integer({ min: 2, max: 20 }),
        (statements, at) => {
          const [plan] = planBatch(
            statements.map((s) => row('U', s)),
            sources,
            at,
          ).namespaces;
          const ids = new Set(plan?.ids);
          const tags = new Set(plan?.tags);
          for (const img of statements.flat())
            expect(ids.has(img.id) || tags.has(`group:${img.grp}`)).toBe(true);
        },
      ),
    );
  });
});

describe('templates', () => {
  it('renders columns; a NULL column names nothing', () => {
    const t = parseTemplate('c:{a}-{b}');
    expect(render(t, { a: '1', b: 'x' })).toBe('c:1-x');
    expect(render(t, { a: '1', b: null })).toBeUndefined();
  });

  it('defineNamespace refuses a source that is not schema.table or a template without a column (property)', () => {
    const define = (table: string, id: string) =>
      defineNamespace({
        name: 'x',
        version: 1,
        ttl: { l1: 1, l2: 1 },
        schema: z.unknown(),
        load: async () => undefined,
        sources: [{ table, id }],
      });
    expect(() => define('items', '{id}')).toThrow(/schema\.table/);
    expect(() => define('s.items', 'fixed')).toThrow(/placeholder/);
    fc.assert(
      fc.property(fc.string(), fc.string(), (table, id) => {
        try {
          define(table, id);
        } catch (error) {
          expect(error).toMatchObject({ code: 'E_CACHE_INVALID_NAMESPACE' });
        }
      }),
    );
  });
});
