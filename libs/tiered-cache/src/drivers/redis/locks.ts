import { randomBytes } from 'node:crypto';
import { ok, type Result } from '../../result.js';
import type { L2Connection } from './connection.js';

/**
 * The fleet-wide load lock (REQUIREMENTS D1): one loader call per key across the fleet. SET NX PX
 * with a random token; released only by its owner (compare-and-delete in lock-release-1.lua), so
 * a holder whose lock expired cannot release the next holder's.
 */
export class Locks {
  readonly #c: L2Connection;

  constructor(connection: L2Connection) {
    this.#c = connection;
  }

  /** Resolves the owner token, or `null` when someone else holds the lock. */
  async acquire(key: string, ttlMs: number): Promise<Result<string | null>> {
    const c = this.#c;
    const token = randomBytes(12).toString('base64url');
    const r = await c.guard.run(() => c.client.set(c.keys.lock(key), token, 'PX', ttlMs, 'NX'));
    return r.ok ? ok(r.value === 'OK' ? token : null) : r;
  }

  /** Owner-only release. An expired lock is not an error. */
  async release(key: string, token: string): Promise<Result<boolean>> {
    const c = this.#c;
    try {
      const n = await c.guard.track(c.scripts.lockRelease(c.keys.lock(key), token));
      return ok(n === 1);
    } catch (cause) {
      return c.guard.fail(cause);
    }
  }
}
