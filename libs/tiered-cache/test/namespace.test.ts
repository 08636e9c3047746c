import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CacheError, DEFAULT_ID_SCHEMA, defineNamespace } from '../src/index.js';

const base = { version: 1, ttl: { l1: 1, l2: 1 }, schema: z.string(), load: async () => 'x' };

describe('defineNamespace', () => {
  it('builds the key base once: name:v<version>:', () => {
    expect(defineNamespace({ ...base, name: 'product', version: 3 }).keyBase).toBe('product:v3:');
  });

  it('refuses bad names and versions with a message naming the field', () => {
    expect(() => defineNamespace({ ...base, name: 'Bad Name' })).toThrow(/name/);
    expect(() => defineNamespace({ ...base, name: 'ok', version: 0 })).toThrow(/version/);
    expect(() => defineNamespace({ ...base, name: 'ok', ttl: { l1: 0, l2: 1 } })).toThrow(/ttl\.l1/);
    expect(() => defineNamespace({ ...base, name: 'ok', version: 0 })).toThrow(
      expect.objectContaining({
        code: 'E_CACHE_INVALID_NAMESPACE',
        message: expect.stringMatching(/^defineNamespace\("ok"\): version: /),
      }),
    );
    expect(() => defineNamespace({ ...base, name: 'Bad Name' })).toThrow(CacheError);
  });

  it('the fast default id check agrees with DEFAULT_ID_SCHEMA on any string', () => {
    const ns = defineNamespace({ ...base, name: 'ids' });
    const tricky = fc.constantFrom(
      '',
      ' ',
      '*',
      '?',
      '[',
      ']',
      '\\',
      '{',
      '}',
      '\t',
      '\n',
      '\u00a0',
      '\u2028',
      'é',
      '😀',
    );
    const ids = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'grapheme', maxLength: 260 }),
      fc
        .array(fc.oneof(tricky, fc.string({ maxLength: 3 })), { maxLength: 90 })
        .map((parts) => parts.join('')),
    );
    fc.assert(
      fc.property(ids, (id) => ns.isValidId(id) === DEFAULT_ID_SCHEMA.safeParse(id).success),
      { numRuns: 5000 },
    );
  });

  it('uses a custom idSchema when given', () => {
    const ns = defineNamespace({ ...base, name: 'numeric', idSchema: z.string().regex(/^\d+$/) });
    expect(ns.isValidId('42')).toBe(true);
    expect(ns.isValidId('4a')).toBe(false);
  });
});
