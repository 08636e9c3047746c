import { describe, expect, it } from 'vitest';
import { JOB_KINDS, JOB_NAMES, type JobName, jobKind, parsePayload } from '../src/index.js';

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
