import type { PayloadInputOf } from './catalogue.js';
import { JobError } from './errors.js';

/**
 * The payloads two producers make from what a person asked for: the API from a JSON body
 * (`POST /cache/prewarm`, `POST /cache/invalidate`), the CLI from its flags (`warm`, `invalidate`).
 * Both say it the same way, so each is built here, once; the result is validated by `enqueue`
 * (or by the CLI first, to name its flags).
 */

/** A warm as asked: which kind, of which namespaces. */
export interface WarmRequest {
  readonly type: 'critical' | 'hot' | 'all' | 'keys';
  /** Absent: every namespace. `keys` needs exactly one. */
  readonly namespaces?: readonly string[] | undefined;
  /** `hot` only: ids per namespace; the other kinds ignore it. */
  readonly top?: number | undefined;
  /** `keys` only: the ids. */
  readonly keys?: readonly string[] | undefined;
}

export function warmPayloadOf(request: WarmRequest): PayloadInputOf<'warm'> {
  const { type, namespaces, top } = request;
  if (type === 'keys') {
    const namespace = namespaces?.length === 1 ? namespaces[0] : undefined;
    if (namespace === undefined)
      throw new JobError('E_JOB_INVALID_PAYLOAD', 'namespaces: a keys warm names exactly one namespace');
    return { type, namespace, keys: [...(request.keys ?? [])] };
  }
  const chosen = namespaces !== undefined ? { namespaces: [...namespaces] } : {};
  if (type === 'hot') return { type, ...chosen, ...(top !== undefined ? { top } : {}) };
  return { type, ...chosen };
}

/** An invalidation as asked: a namespace and exactly one of pattern, keys, tags, all. */
export interface InvalidateRequest {
  readonly namespace: string;
  readonly pattern?: string | undefined;
  readonly keys?: readonly string[] | undefined;
  readonly tags?: readonly string[] | undefined;
  /** The whole namespace (it moves to a new generation). */
  readonly all?: boolean | undefined;
}

export function invalidatePayloadOf(request: InvalidateRequest): PayloadInputOf<'invalidate'> {
  const { namespace, pattern, keys, tags, all } = request;
  const given = [pattern !== undefined, keys !== undefined, tags !== undefined, all === true];
  if (given.filter(Boolean).length !== 1)
    throw new JobError('E_JOB_INVALID_PAYLOAD', 'give exactly one of pattern, keys, tags, all');
  if (pattern !== undefined) return { scope: 'pattern', namespace, pattern };
  if (keys !== undefined) return { scope: 'keys', namespace, keys: [...keys] };
  if (tags !== undefined) return { scope: 'tags', namespace, tags: [...tags] };
  return { scope: 'namespace', namespace };
}
