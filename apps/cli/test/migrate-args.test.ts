/**
 * `cachefleet migrate` flags (property tests, no I/O): whatever the arguments, `migrateArgs` either
 * returns a payload the catalogue accepts that says what the flags said, or refuses with one coded
 * line (E_CLI_USAGE or E_JOB_INVALID_PAYLOAD) — never another error.
 */
import { isCodedError } from '@cachefleet/config';
import { migratePayload } from '@cachefleet/jobs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { migrateArgs } from '../src/commands/migrate.js';

const token = fc.oneof(
  fc.constantFrom(
    'product',
    'item',
    'Product',
    '',
    '-',
    '--',
    '--to',
    '--rate',
    '--dry-run',
    '--json',
    '--detach',
  ),
  fc.constantFrom(
    '--to=2',
    '--rate=10',
    '--to=x',
    '-n',
    '--bogus',
    '2',
    '1',
    '0',
    '-1',
    '1e3',
    '99999999999',
  ),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -5, max: 2_000_000 }).map(String),
);

describe('cachefleet migrate arguments', () => {
  it('any argument list gives a valid payload or a coded refusal', () => {
    fc.assert(
      fc.property(fc.array(token, { maxLength: 7 }), (args) => {
        let out: ReturnType<typeof migrateArgs>;
        try {
          out = migrateArgs(args);
        } catch (error) {
          expect(isCodedError(error)).toBe(true);
          if (!isCodedError(error)) return;
          expect(['E_CLI_USAGE', 'E_JOB_INVALID_PAYLOAD']).toContain(error.code);
          expect(error.message).not.toMatch(/^E_/);
          return;
        }
        const parsed = migratePayload.parse(out.payload);
        expect(args).toContain(parsed.namespace);
        expect(parsed.dryRun).toBe(args.includes('--dry-run'));
        expect(args.some((a) => a === '--to' || a.startsWith('--to='))).toBe(true);
      }),
      { numRuns: 2_000, seed: 12 },
    );
  });

  it('well-formed flags give the payload they say', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z][a-z0-9_-]{0,20}$/),
        fc.integer({ min: 2, max: 1_000_000 }),
        fc.option(fc.integer({ min: 0, max: 10_000_000 }), { nil: undefined }),
        fc.boolean(),
        (ns, to, rate, dry) => {
          const args = [ns, '--to', String(to), ...(rate !== undefined ? ['--rate', String(rate)] : [])];
          if (dry) args.push('--dry-run');
          const { payload } = migrateArgs(args);
          expect(migratePayload.parse(payload)).toEqual({
            namespace: ns,
            to,
            dryRun: dry,
            rate: rate ?? 0,
            count: 1_000,
          });
        },
      ),
      { numRuns: 500, seed: 12 },
    );
  });
});
