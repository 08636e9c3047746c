import type { z } from 'zod';
import { JOBS, type JobName } from './catalogue.js';
import { JobError } from './errors.js';

/**
 * What a producer needs to know of a namespace to check a payload before it becomes a job: its
 * name and its id schema. A definitions module's `namespaces` have both; its optional
 * `describeNamespaces(env)` gives them without I/O (what the CLI reads).
 */
export interface NamespaceRule {
  readonly name: string;
  readonly idSchema: z.ZodType<string>;
}

/** The fields of the catalogue's payloads that name namespaces and ids (warm, invalidate). */
interface Named {
  readonly namespace?: unknown;
  readonly namespaces?: unknown;
  readonly keys?: unknown;
}

/** Refused ids a job's result lists (it counts them all): enough to find the mistake. */
export const LISTED_IDS = 100;

/**
 * Job `name`'s payload schema with what only the deployment knows: every namespace the payload
 * names must be one of `rules`, and every id of `keys` must pass that namespace's id schema. An
 * issue names the field (`keys.1`, `namespaces.0`) like any other, so the API's 400 and the CLI's
 * error line say which. Ids are checked here, before anything is enqueued: a worker given a bad
 * id still does the rest of the job (see `usableIds`), but the caller deserves to hear of it.
 */
export function payloadSchemaWith<N extends JobName>(
  name: N,
  rules: readonly NamespaceRule[],
): (typeof JOBS)[N]['payload'] {
  const byName = new Map(rules.map((r) => [r.name, r]));
  const known = () => [...byName.keys()].join(', ') || 'none';
  const schema: z.ZodType = JOBS[name].payload;
  // superRefine keeps the schema's type; indexing JOBS by a generic name loses which one it is.
  return schema.superRefine((payload, ctx) => {
    const p = payload as Named;
    const named: { path: (string | number)[]; ns: string }[] = [];
    if (typeof p.namespace === 'string') named.push({ path: ['namespace'], ns: p.namespace });
    if (Array.isArray(p.namespaces))
      p.namespaces.forEach((ns: unknown, i) => {
        if (typeof ns === 'string') named.push({ path: ['namespaces', i], ns });
      });
    for (const { path, ns } of named) {
      if (!byName.has(ns))
        ctx.addIssue({
          code: 'custom',
          path,
          message: `no namespace ${JSON.stringify(ns)} (known: ${known()})`,
        });
    }
    const rule = typeof p.namespace === 'string' ? byName.get(p.namespace) : undefined;
    if (rule === undefined || !Array.isArray(p.keys)) return;
    p.keys.forEach((id: unknown, i) => {
      const r = rule.idSchema.safeParse(id);
      if (!r.success)
        ctx.addIssue({
          code: 'custom',
          path: ['keys', i],
          message: `not a ${rule.name} id: ${r.error.issues[0]?.message ?? 'refused by its idSchema'}`,
        });
    });
  }) as (typeof JOBS)[N]['payload'];
}

/**
 * A keys job's ids split by the namespace's id check, so that the valid ones are done and the
 * others reported (one bad id once failed the whole job five times over, the valid ones never
 * done). With no valid id left the job can only fail: E_JOB_INVALID_PAYLOAD, not retried.
 */
export function usableIds(
  job: JobName,
  ns: { readonly name: string; readonly isValidId: (id: string) => boolean },
  ids: readonly string[],
): { readonly valid: readonly string[]; readonly invalid: readonly string[] } {
  const valid: string[] = [];
  const invalid: string[] = [];
  for (const id of ids) (ns.isValidId(id) ? valid : invalid).push(id);
  if (valid.length === 0) {
    const shown = invalid.slice(0, 5).map((id) => JSON.stringify(id));
    const more = invalid.length > shown.length ? ` and ${invalid.length - shown.length} more` : '';
    throw new JobError(
      'E_JOB_INVALID_PAYLOAD',
      `${job}: keys: no valid id for namespace ${ns.name} (refused: ${shown.join(', ')}${more})`,
    );
  }
  return { valid, invalid };
}
