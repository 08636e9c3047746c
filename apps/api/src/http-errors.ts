import { STATUS_CODES } from 'node:http';
import { CatalogueError } from '@cachefleet/catalogue';
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify';

/** What every refusal and failure of the pod answers: our words, never a stack or a driver's. */
interface ErrorBody {
  readonly error: string;
  readonly message: string;
}

/**
 * The one place where an error that escaped a route becomes an answer. A client's mistake that
 * Fastify itself caught (a body that is not JSON, too large, of a type no parser takes) keeps its
 * 4xx; the catalogue's refusals (it maps the database's errors: libs/catalogue `dbError`) are a 409
 * or a 400 with its message, which names the field; anything else is a 500 that says only where to
 * look (the request id), while the error, its stack and cause go to the log under that id.
 * Fastify's default handler echoed the error's `code` and message (PostgreSQL's SQLSTATE and
 * constraint names among them) and the log said only "request failed".
 */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, req, reply) => {
    if (error instanceof CatalogueError && error.code === 'E_CATALOGUE_CONFLICT')
      return reply.code(409).send({ error: 'conflict', message: error.message });
    if (error instanceof CatalogueError && error.code === 'E_CATALOGUE_INVALID_INPUT')
      return reply.code(400).send({ error: 'invalid_body', message: error.message });
    const status = clientStatus(error);
    if (status !== undefined) return reply.code(status).send(clientError(status, error.message));
    logUnexpected(req, error);
    return reply.code(500).send(internalError(req));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${pathOf(req.url)}` }),
  );
}

/**
 * For a plugin scope that answers its own errors (bull-board sends `error.message` with a 500):
 * its 5xx bodies are replaced by ours and the error is logged with the request id.
 */
export function guardServerErrors(scope: FastifyInstance): void {
  scope.addHook('onError', (req, _reply, error, done) => {
    logUnexpected(req, error);
    done();
  });
  scope.addHook('onSend', (req, reply, payload, done) => {
    if (reply.statusCode < 500) return done(null, payload);
    reply.header('content-type', 'application/json; charset=utf-8');
    done(null, JSON.stringify(internalError(req)));
  });
}

/** The request's path without its query (which may hold a token: /admin/login?token=…). */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function clientStatus(error: FastifyError): number | undefined {
  const status = error.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500 ? status : undefined;
}

function clientError(status: number, message: string): ErrorBody {
  const error =
    status === 400
      ? 'invalid_body'
      : (STATUS_CODES[status] ?? 'client_error').toLowerCase().replace(/\W+/g, '_');
  return { error, message };
}

function internalError(req: FastifyRequest): ErrorBody {
  return { error: 'internal', message: `internal error (request ${req.id}): the pod's log has the cause` };
}

function logUnexpected(req: FastifyRequest, error: unknown): void {
  req.log.error(
    { err: error, method: req.method, path: pathOf(req.url) },
    'request failed: unexpected error',
  );
}
