import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isJobError,
  JOB_KINDS,
  JOB_NAMES,
  type JobName,
  jobKind,
  loadQueueMetricsLeaseMs,
  parsePayload,
} from '../src/index.js';

/** One payload per kind of each job (as producers send them). */
const EXAMPLES: { readonly [N in JobName]: readonly [kind: string, payload: unknown][] } = {
  warm: [
    ['critical', { type: 'critical' }],
    ['hot', { type: 'hot', top: 10 }],
    ['all', { type: 'all', namespaces: ['product'] }],
    ['keys', { type: 'keys', namespace: 'product', keys: ['1'] }],
  ],
  invalidate: [
    ['keys', { scope: 'keys', namespace: 'product', keys: ['1'] }],
    ['pattern', { scope: 'pattern', namespace: 'product', pattern: '1*' }],
    ['tags', { scope: 'tags', namespace: 'product', tags: ['category:1'] }],
    ['namespace', { scope: 'namespace', namespace: 'product' }],
  ],
  'invalidate-slice': [
    ['slice', { namespace: 'product', pattern: '1*', match: 'cf:product:v1:1*', master: '127.0.0.1:6379' }],
  ],
  migrate: [
    ['write', { namespace: 'product', to: 2 }],
    ['dry-run', { namespace: 'product', to: 2, dryRun: true }],
  ],
  sweep: [
    ['namespace', { namespace: 'product' }],
    ['all', {}],
  ],
  tune: [
    ['apply', {}],
    ['dry-run', { dryRun: true }],
  ],
  backup: [
    ['namespaces', { namespaces: ['product'] }],
    ['all', {}],
    ['all', { namespaces: [] }],
  ],
  restore: [
    ['keep', { file: 'latest' }],
    ['replace', { file: 'latest', replace: true }],
  ],
};

describe('METRICS_QUEUE_LEASE_MS', () => {
  it('defaults to 60 s, takes 1000–3600000, and refuses anything else with E_JOB_CONFIG naming it', () => {
    expect(loadQueueMetricsLeaseMs({})).toBe(60_000);
    expect(loadQueueMetricsLeaseMs({ METRICS_QUEUE_LEASE_MS: '' })).toBe(60_000);
    fc.assert(
      fc.property(fc.integer({ min: 1_000, max: 3_600_000 }), (ms) => {
        expect(loadQueueMetricsLeaseMs({ METRICS_QUEUE_LEASE_MS: String(ms) })).toBe(ms);
      }),
    );
    const bad = fc.oneof(
      fc.integer({ max: 999 }).map(String),
      fc.integer({ min: 3_600_001 }).map(String),
      fc.double({ noInteger: true, noNaN: true }).map(String),
      fc.string({ minLength: 1 }).filter((s) => s.trim() !== '' && !Number.isFinite(Number(s))),
    );
    fc.assert(
      fc.property(bad, (value) => {
        let thrown: unknown;
        try {
          loadQueueMetricsLeaseMs({ METRICS_QUEUE_LEASE_MS: value });
        } catch (error) {
          thrown = error;
        }
        expect(isJobError(thrown) && thrown.code, value).toBe('E_JOB_CONFIG');
        expect(thrown instanceof Error && thrown.message, value).toMatch(/^METRICS_QUEUE_LEASE_MS: /);
      }),
    );
  });
});

describe('the job kind label', () => {
  it('maps every payload to one of its listed kinds, and every listed kind is reachable', () => {
    for (const name of JOB_NAMES) {
      const seen = new Set<string>();
      for (const [kind, payload] of EXAMPLES[name]) {
        const got: string = jobKind(name, parsePayload(name, payload));
        expect(got, `${name} ${JSON.stringify(payload)}`).toBe(kind);
        seen.add(got);
      }
      expect([...seen].sort(), name).toEqual([...JOB_KINDS[name]].sort());
    }
  });
});
