import type { JobName, PayloadOf } from './catalogue.js';

/**
 * The `kind` label of the job metrics: what a job does within its name, so a 5 ms `keys` warm and an
 * hour-long `all` warm do not share one histogram. Values are fixed here (bounded cardinality: never
 * an id, a key, a pattern or a namespace); README "Worker metrics" lists them.
 */
export const JOB_KINDS = {
  warm: ['critical', 'hot', 'all', 'keys'],
  invalidate: ['keys', 'pattern', 'tags', 'namespace'],
  'invalidate-slice': ['slice'],
  migrate: ['write', 'dry-run'],
  sweep: ['namespace', 'all'],
  backup: ['namespaces', 'all'],
  restore: ['keep', 'replace'],
  tune: ['apply', 'dry-run'],
} as const satisfies Record<JobName, readonly string[]>;

export type JobKind<N extends JobName> = (typeof JOB_KINDS)[N][number];

/** A job whose name or payload the catalogue refused has no kind of its own. */
export const INVALID_KIND = 'invalid';

type KindOf = { readonly [N in JobName]: (payload: PayloadOf<N>) => JobKind<N> };

const KIND_OF: KindOf = {
  warm: (p) => p.type,
  invalidate: (p) => p.scope,
  'invalidate-slice': () => 'slice',
  migrate: (p) => (p.dryRun ? 'dry-run' : 'write'),
  sweep: (p) => (p.namespace === undefined ? 'all' : 'namespace'),
  backup: (p) => (p.namespaces === undefined || p.namespaces.length === 0 ? 'all' : 'namespaces'),
  restore: (p) => (p.replace ? 'replace' : 'keep'),
  tune: (p) => (p.dryRun ? 'dry-run' : 'apply'),
};

/** The kind of a job whose payload the catalogue accepted. */
export function jobKind<N extends JobName>(name: N, payload: PayloadOf<N>): JobKind<N> {
  return KIND_OF[name](payload);
}
