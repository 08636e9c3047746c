import { CacheError } from '../errors.js';
import { err, ok, type Result } from '../result.js';
import { decodeEvent } from './decode.js';
import { type CacheEvent, type CacheEventInput, cacheEventSchema } from './events.js';

/**
 * An event as the bus sends it, or E_CACHE_INVALID_EVENT naming what is wrong. Checked as a pod
 * checks what it receives (decode.ts: zod's result, without zod's cold cost on the common shapes):
 * on the publisher this runs between the tombstone's reply and the event's send, i.e. on the
 * invalidation's latency.
 */
export function validate(input: CacheEventInput): Result<CacheEvent> {
  const decoded = decodeEvent(input);
  if (decoded.ok) return ok(decoded.event);
  const parsed = cacheEventSchema.safeParse(input);
  return err(
    new CacheError('E_CACHE_INVALID_EVENT', `invalid event: ${parsed.error?.message ?? 'rejected'}`, {
      cause: parsed.error,
    }),
  );
}

/** A field of an XINFO-style flat reply. */
export function fieldValue(info: unknown[], name: string): unknown {
  const at = info.indexOf(name);
  return at >= 0 ? info[at + 1] : undefined;
}

/** A string field of an XINFO-style flat reply (`[name, value, …]`). */
export function fieldOf(info: unknown[], name: string): string | undefined {
  const v = fieldValue(info, name);
  return typeof v === 'string' ? v : undefined;
}
