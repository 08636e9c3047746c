import type { FastifyBaseLogger, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';
import type { RequestLogs } from './config.js';
import { pathOf } from './http-errors.js';
import { routeOf } from './route-info.js';

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
    route: routeOf(req).url,
    status: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 10) / 10,
  };
  if (reply.statusCode >= 500) req.log.warn(fields, 'request failed');
  else req.log.info(fields, 'request');
}

/**
 * Fastify's `childLoggerFactory` for the pod: `req.log` is a stand-in that makes the request's pino
 * child (bound to its `reqId`, as Fastify's own factory does) only when something logs through it.
 * Most requests log nothing (API_REQUEST_LOGS defaults to the 5xx), and a pino child per request
 * (its bindings serialised, its methods set up) cost more than the cached read it went with. Every
 * line logged for a request still carries its `reqId`.
 */
export const lazyRequestLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (
  logger,
  bindings,
  options,
) => new LazyRequestLogger(logger, bindings, options);

class LazyRequestLogger implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #logger(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  fatal(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().fatal(obj, msg, ...args);
  }
  error(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().error(obj, msg, ...args);
  }
  warn(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().warn(obj, msg, ...args);
  }
  info(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().info(obj, msg, ...args);
  }
  debug(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().debug(obj, msg, ...args);
  }
  trace(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().trace(obj, msg, ...args);
  }
  silent(obj: unknown, msg?: string, ...args: unknown[]): void {
    this.#logger().silent(obj, msg, ...args);
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options);
  }
}
