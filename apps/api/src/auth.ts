import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const ADMIN_COOKIE = 'cf_admin';
/** Where a browser without a session is sent (the form that asks for the token). */
export const LOGIN_PATH = '/admin/login';
/** How long a dashboard session lasts; a new token (a rotation) ends every session at once. */
export const SESSION_MS = 12 * 3_600_000;

/** The admin check, as an async `onRequest` hook: it answers 401 itself, or lets the request on. */
export type AdminGuard = (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

/**
 * Bearer-token check for the admin API (`/cache/*`, `/jobs/*`, writes). Both sides are hashed first
 * so the comparison is constant-time whatever the lengths. Only the Authorization header counts:
 * the dashboard's session cookie opens the dashboard and nothing else. Run it as an `onRequest`
 * hook: before the body is read.
 */
export function adminGuard(token: string): AdminGuard {
  return async (req, reply) => (bearerMatches(token, req) ? undefined : unauthorized(reply));
}

/**
 * The dashboard pages' check: the bearer token, or a session cookie that /admin/login signed with
 * the token (never the token itself). A browser (it asks for text/html) without either is sent to
 * the login form; anything else gets the 401 JSON of the API.
 */
export function dashboardGuard(token: string, now: () => number = Date.now): AdminGuard {
  return async (req, reply) => {
    if (bearerMatches(token, req)) return undefined;
    const session = cookie(req.headers.cookie, ADMIN_COOKIE);
    if (session !== undefined && sessionValid(token, session, now())) return undefined;
    if (req.method === 'GET' && wantsHtml(req)) {
      return reply.redirect(`${LOGIN_PATH}?next=${encodeURIComponent(req.url)}`, 303);
    }
    return unauthorized(reply);
  };
}

/** The value of the session cookie: `<expiry ms>.<HMAC-SHA256 of the expiry under the token>`. */
export function sessionCookie(token: string, now: number): string {
  const expires = now + SESSION_MS;
  return `${expires}.${sign(token, expires)}`;
}

export function tokenMatches(token: string, given: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

function sessionValid(token: string, value: string, now: number): boolean {
  const m = /^(\d{1,16})\.([\w-]{43})$/.exec(value);
  if (m === null) return false;
  const expires = Number(m[1]);
  return expires > now && timingSafeEqual(digest(m[2] ?? ''), digest(sign(token, expires)));
}

function sign(token: string, expires: number): string {
  return createHmac('sha256', token)
    .update(`cachefleet dashboard session until ${expires}`)
    .digest('base64url');
}

function bearerMatches(token: string, req: FastifyRequest): boolean {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') === true && tokenMatches(token, header.slice(7));
}

function wantsHtml(req: FastifyRequest): boolean {
  return (req.headers.accept ?? '').includes('text/html');
}

function unauthorized(reply: FastifyReply): FastifyReply {
  return reply
    .code(401)
    .header('www-authenticate', 'Bearer realm="cachefleet admin"')
    .send({ error: 'unauthorized', message: 'admin routes need Authorization: Bearer <ADMIN_TOKEN>' });
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * The cookie's value, or undefined. A value that is not valid percent-encoding is no session: an
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
