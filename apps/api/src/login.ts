import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { ADMIN_COOKIE, LOGIN_PATH, SESSION_MS, sessionCookie, tokenMatches } from './auth.js';
import { DASHBOARD_PATH } from './dashboard.js';
import { escapeHtml } from './html.js';

/** Where a login may send the browser back to: a dashboard page of this pod, never another site. */
const nextPath = z
  .string()
  .max(2_048)
  .regex(/^\/admin\/(?!login)[\w\-./?=&%]*$/)
  .catch(DASHBOARD_PATH);

const loginQuery = z.object({ token: z.string().max(1_024).optional(), next: nextPath.optional() });
const loginForm = z.object({ token: z.string().max(1_024).default(''), next: nextPath.optional() });

/**
 * The dashboard's login (for browsers): a form that asks for the admin token (`GET /admin/login`),
 * its POST, and the link `npm start` prints (`GET /admin/login?token=…`). Each success sets a
 * session cookie signed with the token (it grants the dashboard pages only, for SESSION_MS, and a
 * new token ends it) and redirects to the page the browser came from.
 */
export function loginRoutes(app: FastifyInstance, adminToken: string, now: () => number = Date.now): void {
  const succeed = (reply: FastifyReply, next: string | undefined) =>
    reply
      .header(
        'set-cookie',
        `${ADMIN_COOKIE}=${sessionCookie(adminToken, now())}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=${SESSION_MS / 1000}`,
      )
      .redirect(next ?? DASHBOARD_PATH, 303);

  app.get(LOGIN_PATH, async (req, reply) => {
    const q = loginQuery.safeParse(req.query);
    const next = q.success ? q.data.next : undefined;
    const token = q.success ? q.data.token : undefined;
    if (token === undefined) return page(reply, 200, next);
    if (tokenMatches(adminToken, token)) return succeed(reply, next);
    return reply.code(401).send({ error: 'unauthorized', message: 'GET /admin/login?token=<ADMIN_TOKEN>' });
  });

  app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4_096 },
      (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(String(body)))),
    );
    scope.post(LOGIN_PATH, async (req, reply) => {
      const form = loginForm.safeParse(req.body ?? {});
      const next = form.success ? form.data.next : undefined;
      if (form.success && tokenMatches(adminToken, form.data.token)) return succeed(reply, next);
      return page(reply, 401, next, 'That is not the admin token.');
    });
  });
}

function page(reply: FastifyReply, status: number, next: string | undefined, error?: string): FastifyReply {
  const hidden = next === undefined ? '' : `<input type="hidden" name="next" value="${escapeHtml(next)}">`;
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cachefleet admin — sign in</title>
<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:26rem}input{font:inherit;width:100%;margin:.4rem 0}p.error{color:#b00}</style>
</head><body>
<h1>cachefleet admin</h1>
${error === undefined ? '' : `<p class="error">${escapeHtml(error)}</p>`}
<form method="post" action="${LOGIN_PATH}">
<label for="token">Admin token (ADMIN_TOKEN; <code>npm start</code> prints it)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
${hidden}
<input type="submit" value="Sign in">
</form>
</body></html>
`);
}
