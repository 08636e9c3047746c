/**
 * `cachefleet rollout` arguments (property tests, no I/O): whatever junk it is given,
 * `rolloutArgs` either returns a request that says what the arguments said (a defined namespace, a
 * whole percentage 0..100) or refuses with one coded line (E_CLI_USAGE, exit 2) — never another error.
 */
import { isCodedError } from '@cachefleet/config';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rolloutArgs } from '../src/commands/rollout.js';
import { describeFailure } from '../src/errors.js';

const DEFINED = ['product', 'category-summary'];

const token = fc.oneof(
  fc.constantFrom('product', 'category-summary', 'Product', 'other', '', '--json', '--bogus', '-x'),
  fc.constantFrom('0', '10', '50', '100', '101', '-1', '1e2', '10.5', '050', 'NaN', ' 10', '1000'),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -1_000, max: 1_000 }).map(String),
);

describe('cachefleet rollout arguments', () => {
  it('any argument list gives a request that says what the arguments said, or a coded refusal', () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 5 }), (args) => {
        let out: ReturnType<typeof rolloutArgs>;
        try {
          out = rolloutArgs(args, DEFINED);
        } catch (error) {
          expect(isCodedError(error)).toBe(true);
          if (!isCodedError(error)) return;
          expect(error.code).toBe('E_CLI_USAGE');
          expect(describeFailure(error).exit).toBe(2);
          expect(describeFailure(error).text).not.toMatch(/\n/);
          return;
        }
        const positionals = args.filter((a) => a !== '--json');
        expect(out.json).toBe(args.includes('--json'));
        if (out.kind === 'list') {
          expect(positionals).toEqual([]);
          return;
        }
        expect(positionals).toHaveLength(2);
        expect(DEFINED).toContain(out.namespace);
        expect(out.namespace).toBe(positionals[0]);
        expect(Number.isInteger(out.percent) && out.percent >= 0 && out.percent <= 100).toBe(true);
        expect(out.percent).toBe(Number(positionals[1]));
        expect(positionals[1]).toMatch(/^\d{1,3}$/);
      }),
      { numRuns: 3_000 },
    );
  });

  it('refuses an undefined namespace and a percentage out of 0..100, naming the argument', () => {
    expect(() => rolloutArgs(['other', '10'], DEFINED)).toThrow(
      /<namespace>: "other" is not a defined namespace/,
    );
    expect(() => rolloutArgs(['product', '101'], DEFINED)).toThrow(/<percent>: .*0\.\.100 \(got "101"\)/);
    expect(() => rolloutArgs(['product', '10.5'], DEFINED)).toThrow(/<percent>/);
    expect(() => rolloutArgs(['product'], DEFINED)).toThrow(/<namespace> <percent>/);
    expect(rolloutArgs(['product', '50'], DEFINED)).toEqual({
      kind: 'set',
      namespace: 'product',
      percent: 50,
      json: false,
    });
    expect(rolloutArgs(['--json'], DEFINED)).toEqual({ kind: 'list', json: true });
  });
});
