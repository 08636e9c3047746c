import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const ADMIN_COOKIE = 'cf_admin';

/** The admin check, as an async `onRequest` hook: it answers 401 itself, or lets the request on. */
export type AdminGuard = (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/**
 * Bearer-token check for admin routes and the dashboard. Both sides are hashed first so the
 * comparison is constant-time whatever the lengths (timingSafeEqual needs equal lengths). The
 * dashboard is a browser page: it may carry the token in an HttpOnly cookie set by /admin/login.
 * Run it as an `onRequest` hook: before the body is read.
 */

export function adminGuard(token: string): AdminGuard {
  const expected = digest(token);
  return async (req, reply) => {
    const header = req.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7) : cookie(req.headers.cookie, ADMIN_COOKIE);
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return undefined;
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="cachefleet admin"')
      .send({ error: 'unauthorized', message: 'admin routes need Authorization: Bearer <ADMIN_TOKEN>' });
  };
}

export function tokenMatches(token: string, given: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The cookie's value, or undefined. A value that is not valid percent-encoding is no token: an
 * unguarded decodeURIComponent once turned `cf_admin=%E0%A4%A` into a 500 on every admin route.
 */
function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) {
      try {
        return decodeURIComponent(part.slice(at + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
