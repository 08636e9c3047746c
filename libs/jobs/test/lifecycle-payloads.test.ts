/**
 * The migrate and sweep payload schemas (property tests): any JSON value is either refused by
 * `JobClient.check` with E_JOB_INVALID_PAYLOAD naming a field, or accepted as a payload within the
 * catalogue's bounds. No Redis: `check` does no I/O.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isJobError, JobClient, loadQueueConfig, migratePayload, sweepPayload } from '../src/index.js';

// `check` does no I/O: the client (pointed at a closed port) is disconnected at once.
const client = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: 'redis://127.0.0.1:1' }));
client.connection.disconnect();

const anyValue = fc.oneof(
  fc.jsonValue(),
  fc.record(
    {
      namespace: fc.oneof(fc.constantFrom('product', 'item', 'A', '', '__x', 'a'.repeat(70)), fc.string()),
      to: fc.oneof(fc.integer({ min: -3, max: 2_000_000 }), fc.double(), fc.string()),
      dryRun: fc.oneof(fc.boolean(), fc.constantFrom('true', 1, null)),
      rate: fc.oneof(fc.integer({ min: -10, max: 20_000_000 }), fc.constant('5')),
      count: fc.oneof(fc.integer({ min: 0, max: 20_000 }), fc.constant(null)),
      extra: fc.string(),
    },
    { requiredKeys: [] },
  ),
);

function accepts(name: 'migrate' | 'sweep', value: unknown): boolean {
  try {
    client.check(name, value as never);
    return true;
  } catch (error) {
    expect(isJobError(error) && error.code === 'E_JOB_INVALID_PAYLOAD').toBe(true);
    expect(String((error as Error).message)).toMatch(new RegExp(`^${name}: `));
    return false;
  }
}

describe('lifecycle payloads', () => {
  it('migrate: valid payloads are within bounds, everything else is refused naming a field', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        if (!accepts('migrate', value)) return;
        const p = migratePayload.parse(value);
        expect(p.namespace).toMatch(/^[a-z][a-z0-9_-]{0,63}$/);
        expect(Number.isInteger(p.to) && p.to >= 2).toBe(true);
        expect(p.rate).toBeGreaterThanOrEqual(0);
        expect(p.count).toBeGreaterThanOrEqual(10);
      }),
      { numRuns: 3_000, seed: 12 },
    );
  });

  it('sweep: an optional namespace and a step size, nothing else', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        if (!accepts('sweep', value)) return;
        const p = sweepPayload.parse(value);
        expect(Object.keys(p).every((k) => k === 'namespace' || k === 'count')).toBe(true);
      }),
      { numRuns: 3_000, seed: 12 },
    );
    expect(accepts('sweep', {})).toBe(true);
    expect(accepts('sweep', { namespace: 'product' })).toBe(true);
    expect(accepts('sweep', { namespace: 'product', extra: 1 })).toBe(false);
  });
});
