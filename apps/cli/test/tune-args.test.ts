/**
 * `cachefleet tune` arguments (property tests, no I/O): whatever the arguments, `tuneArgs` either
 * returns a request that says what they said, or refuses with one coded line (E_CLI_USAGE) —
 * never another error.
 */
import { isCodedError } from '@cachefleet/config';
import { tunePayload } from '@cachefleet/jobs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tuneArgs } from '../src/commands/tune.js';

const token = fc.oneof(
  fc.constantFrom('pin', 'unpin', 'undo', 'product', 'Product', 'l1TtlFactor', 'l2TtlFactor', 'ttl', ''),
  fc.constantFrom(
    '--dry-run',
    '--history',
    '--limit',
    '--limit=5',
    '--limit=0',
    '--json',
    '--detach',
    '--bogus',
    '-n',
  ),
  fc.constantFrom('2', '0.5', '0', '1e3', '101', '-1', '0.00001', '100', 'NaN'),
  fc.string({ maxLength: 10 }),
);

describe('cachefleet tune arguments', () => {
  it('any argument list gives a request that says what the arguments said, or a coded refusal', () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 6 }), (args) => {
        let out: ReturnType<typeof tuneArgs>;
        try {
          out = tuneArgs(args);
        } catch (error) {
          expect(isCodedError(error)).toBe(true);
          if (!isCodedError(error)) return;
          expect(error.code).toBe('E_CLI_USAGE');
          expect(error.message).not.toMatch(/^E_/);
          return;
        }
        switch (out.kind) {
          case 'run':
            expect(tunePayload.parse({ dryRun: out.dryRun }).dryRun).toBe(args.includes('--dry-run'));
            // Flags only: any word would have been a verb.
            expect(args.every((a) => a.startsWith('--'))).toBe(true);
            break;
          case 'history':
            expect(args).toContain('--history');
            expect(out.limit).toBeGreaterThanOrEqual(1);
            expect(out.limit).toBeLessThanOrEqual(1_000);
            break;
          case 'pin':
            expect(args).toContain('pin');
            expect(args).toContain(out.namespace);
            expect(['l1TtlFactor', 'l2TtlFactor']).toContain(out.setting);
            expect(out.value).toBeGreaterThanOrEqual(0.01);
            expect(out.value).toBeLessThanOrEqual(100);
            break;
          case 'unpin':
            expect(args).toContain('unpin');
            expect(args).toContain(out.namespace);
            break;
          case 'undo':
            expect(args).toEqual(['undo']);
            break;
        }
      }),
      { numRuns: 3_000, seed: 13 },
    );
  });

  it('well-formed arguments give the request they say', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/),
        fc.constantFrom('l1TtlFactor' as const, 'l2TtlFactor' as const),
        fc.integer({ min: 1, max: 10_000 }).map((n) => n / 100),
        fc.integer({ min: 1, max: 1_000 }),
        fc.boolean(),
        (ns, setting, value, limit, dry) => {
          expect(tuneArgs(['pin', ns, setting, String(value)])).toEqual({
            kind: 'pin',
            namespace: ns,
            setting,
            value,
          });
          expect(tuneArgs(['unpin', ns, setting])).toEqual({ kind: 'unpin', namespace: ns, setting });
          expect(tuneArgs(['--history', '--limit', String(limit)])).toEqual({
            kind: 'history',
            limit,
            json: false,
          });
          expect(tuneArgs(dry ? ['--dry-run'] : [])).toEqual({
            kind: 'run',
            dryRun: dry,
            detach: false,
            json: false,
          });
        },
      ),
      { numRuns: 500, seed: 14 },
    );
  });

  it('refuses what makes no sense, naming it', () => {
    expect(() => tuneArgs(['undo', 'now'])).toThrow(/tune undo: expects no argument/);
    expect(() => tuneArgs(['pin', 'product', 'ttl', '2'])).toThrow(/<setting>/);
    expect(() => tuneArgs(['pin', 'product', 'l1TtlFactor', '0'])).toThrow(/<value>/);
    expect(() => tuneArgs(['--limit', '5'])).toThrow(/only with --history/);
    expect(() => tuneArgs(['--history', '--dry-run'])).toThrow(/--dry-run: not with --history/);
    expect(() => tuneArgs(['pin', '--dry-run', 'product', 'l1TtlFactor', '2'])).toThrow(
      /--dry-run: not with tune pin/,
    );
  });
});
