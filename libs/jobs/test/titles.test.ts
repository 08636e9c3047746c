import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JOB_NAMES, jobTitle } from '../src/index.js';

const data = (payload: unknown) => ({ payload });

describe('job titles: what a person reads in the dashboard', () => {
  it('says what each job was asked', () => {
    expect(jobTitle('warm', data({ type: 'all' }))).toBe('warm all');
    expect(jobTitle('warm', data({ type: 'all', namespaces: ['product', 'user'] }))).toBe(
      'warm all product,user',
    );
    expect(jobTitle('warm', data({ type: 'keys', namespace: 'product', keys: ['1', '2'] }))).toBe(
      'warm keys product (2)',
    );
    expect(jobTitle('warm', data({ type: 'hot', top: 1000 }))).toBe('warm hot (top 1000)');
    expect(jobTitle('invalidate', data({ scope: 'pattern', namespace: 'product', pattern: '12*' }))).toBe(
      'invalidate pattern product 12*',
    );
    expect(jobTitle('invalidate', data({ scope: 'tags', namespace: 'product', tags: ['a'] }))).toBe(
      'invalidate tags product (1)',
    );
    expect(jobTitle('invalidate', data({ scope: 'namespace', namespace: 'product' }))).toBe(
      'invalidate namespace product',
    );
    expect(jobTitle('migrate', data({ namespace: 'product', to: 3, dryRun: true }))).toBe(
      'migrate product to v3 (dry run)',
    );
    expect(jobTitle('sweep', data({}))).toBe('sweep all');
    expect(jobTitle('restore', data({ file: 'latest' }))).toBe('restore latest');
  });

  it('anything else read from Redis shows as the bare name, never an exception; titles stay short', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...JOB_NAMES), fc.string()), fc.anything(), (name, value) => {
        const title = jobTitle(name, value);
        expect(title.startsWith(name.slice(0, 99))).toBe(true);
        expect(title.length).toBeLessThanOrEqual(Math.max(100, name.length));
      }),
      { numRuns: 1000 },
    );
    expect(jobTitle('warm', data({ type: 'keys', namespace: 'p', pattern: 'x'.repeat(500) }))).toHaveLength(
      'warm keys p'.length,
    );
    expect(
      jobTitle('invalidate', data({ scope: 'pattern', namespace: 'p', pattern: 'x'.repeat(500) })),
    ).toMatch(/^invalidate pattern p x+…$/);
  });
});
