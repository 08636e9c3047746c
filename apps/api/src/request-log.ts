import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestLogs } from './config.js';
import { pathOf } from './http-errors.js';

type RequestLogger = (req: FastifyRequest, reply: FastifyReply) => void;

/**
 * The per-request log line of `API_REQUEST_LOGS`, chosen once at start: a line per request costs
 * more than a cached read, so the default logs the 5xx only and `off` adds nothing to the hot
 * path. The query is left out of the line: it may hold the admin token (/admin/login?token=…). A
 * 500's cause is logged by the error handler whatever this says.
 */
export function requestLogger(config: RequestLogs): RequestLogger | undefined {
  switch (config.mode) {
    case 'off':
      return undefined;
    case 'errors':
      return (req, reply) => {
        if (reply.statusCode >= 500) line(req, reply);
      };
    case 'sampled': {
      let seen = 0;
      const every = config.sampleEvery;
      return (req, reply) => {
        seen = seen + 1 === every ? 0 : seen + 1;
        if (seen === 0 || reply.statusCode >= 500) line(req, reply);
      };
    }
    case 'all':
      return line;
  }
}

function line(req: FastifyRequest, reply: FastifyReply): void {
  const fields = {
    method: req.method,
    path: pathOf(req.url),
    route: req.routeOptions.url ?? 'unmatched',
    status: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 10) / 10,
  };
  if (reply.statusCode >= 500) req.log.warn(fields, 'request failed');
  else req.log.info(fields, 'request');
}
