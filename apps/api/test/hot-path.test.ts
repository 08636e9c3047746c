/**
 * The pod's per-request work kept off the hot path (issue 15, docs/profile-api.md): a cached value's
 * JSON and ETag made once, the request's pino child made only when it logs, route metrics found
 * through the route once per request. Behaviour is unchanged; these tests pin what each shortcut
 * must still do.
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { edgeCaching, pathMayBeSkipped, sendJson } from '../src/edge.js';
import { lazyRequestLogger } from '../src/request-log.js';
import { routeOf } from '../src/route-info.js';

const etagOf = (body: string) => `"${createHash('sha1').update(body).digest('base64url')}"`;

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

describe('sendJson: a cached value is serialised and hashed once', () => {
  it('serialises a frozen value once however often it is sent, with the ETag of its body', async () => {
    let serialised = 0;
    const value = Object.freeze({
      toJSON() {
        serialised++;
        return { id: '7', name: 'kettle' };
      },
    });
    app = Fastify();
    edgeCaching(app, { registry: new Registry() });
    app.get('/v', async (_req, reply) => sendJson(reply, value));
    const body = JSON.stringify({ id: '7', name: 'kettle' });
    for (let i = 0; i < 3; i++) {
      const res = await app.inject('/v');
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe(body);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.headers.etag).toBe(etagOf(body));
      expect(res.headers.vary).toBe('Authorization');
    }
    expect(serialised).toBe(1);
    const revalidated = await app.inject({ url: '/v', headers: { 'if-none-match': etagOf(body) } });
    expect(revalidated.statusCode).toBe(304);
    expect(revalidated.body).toBe('');
    expect(revalidated.headers.etag).toBe(etagOf(body));
  });

  it('sends a value that is not frozen as it is now (it may have changed since)', async () => {
    const value = { n: 1 };
    app = Fastify();
    edgeCaching(app, { registry: new Registry() });
    app.get('/v', async (_req, reply) => sendJson(reply, value));
    const first = await app.inject('/v');
    value.n = 2;
    const second = await app.inject('/v');
    expect(first.body).toBe('{"n":1}');
    expect(second.body).toBe('{"n":2}');
    expect(second.headers.etag).toBe(etagOf('{"n":2}'));
    expect(second.headers.etag).not.toBe(first.headers.etag);
  });

  it('hashes the body again when a later onSend hook changed it', async () => {
    app = Fastify();
    // Registered first, so it runs before the edge hook: the body the edge hook sees is not the one
    // sendJson kept an ETag for.
    app.addHook('onSend', (_req, _reply, payload, done) =>
      done(null, typeof payload === 'string' ? payload.replace('kettle', 'teapot') : payload),
    );
    edgeCaching(app, { registry: new Registry() });
    const value = Object.freeze({ name: 'kettle' });
    app.get('/v', async (_req, reply) => sendJson(reply, value));
    const res = await app.inject('/v');
    expect(res.body).toBe('{"name":"teapot"}');
    expect(res.headers.etag).toBe(etagOf('{"name":"teapot"}'));
  });
});

/** A pino logger writing JSON lines to `lines`, whose `child` calls are counted. */
function countingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        lines.push(z.record(z.string(), z.unknown()).parse(JSON.parse(line)));
      cb();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  const made = { children: 0 };
  const child = logger.child.bind(logger);
  logger.child = ((...args: Parameters<typeof child>) => {
    made.children++;
    return child(...args);
  }) as typeof logger.child;
  return { logger, lines, made };
}

describe('lazyRequestLogger: a pino child only for requests that log', () => {
  it('makes no child for requests that log nothing, and binds the request id to what is logged', async () => {
    const { logger, lines, made } = countingLogger();
    app = Fastify({
      loggerInstance: logger as FastifyBaseLogger,
      childLoggerFactory: lazyRequestLogger,
      disableRequestLogging: true,
      genReqId: (req) => String(req.headers['x-request-id'] ?? 'none'),
    });
    app.get('/quiet', async () => ({ ok: true }));
    app.get('/loud', async (req) => {
      req.log.info({ step: 1 }, 'first');
      req.log.warn('second');
      expect(req.log.level).toBe('info');
      return { ok: true };
    });
    await app.ready();
    const atStart = made.children;
    for (let i = 0; i < 5; i++) expect((await app.inject('/quiet')).statusCode).toBe(200);
    expect(made.children).toBe(atStart);

    const loud = await app.inject({ url: '/loud', headers: { 'x-request-id': 'r-42' } });
    expect(loud.statusCode).toBe(200);
    expect(made.children).toBe(atStart + 1);
    const mine = lines.filter((l) => l.reqId === 'r-42');
    expect(mine.map((l) => [l.msg, l.level])).toEqual([
      ['first', 30],
      ['second', 40],
    ]);
    expect(mine[0]?.step).toBe(1);
  });

  it('keeps a route log level: lines under it are dropped', async () => {
    const { logger, lines } = countingLogger();
    app = Fastify({ loggerInstance: logger as FastifyBaseLogger, childLoggerFactory: lazyRequestLogger });
    app.get('/warn-only', { logLevel: 'warn' }, async (req) => {
      expect(req.log.level).toBe('warn');
      req.log.info('dropped');
      req.log.error('kept');
      return {};
    });
    await app.inject('/warn-only');
    expect(lines.map((l) => l.msg).filter((m) => m === 'dropped' || m === 'kept')).toEqual(['kept']);
  });
});

describe('routeOf: the route of a request, once per request', () => {
  it('names the pattern of a matched route, even when a hook answered before the handler', async () => {
    app = Fastify();
    edgeCaching(app, { registry: new Registry() });
    const seen: string[] = [];
    app.addHook('onResponse', (req, _reply, done) => {
      seen.push(`${routeOf(req).url} ${routeOf(req).matched}`);
      done();
    });
    app.register(async (scope) => {
      scope.addHook('onRequest', (_req, reply, done) => {
        void reply.code(401).send({ error: 'unauthorized' });
        void done;
      });
      scope.get('/guarded/:id', async () => ({}));
    });
    app.get('/open/:id', { config: { edgeCache: 'public' } }, async (req) => ({
      policy: routeOf(req).config.edgeCache,
    }));
    await app.inject('/guarded/1');
    const open = await app.inject('/open/2');
    await app.inject('/nowhere');
    expect(open.json()).toEqual({ policy: 'public' });
    expect(seen).toEqual(['/guarded/:id true', '/open/:id true', 'unmatched false']);
  });
});

describe('pathMayBeSkipped: the request path is looked at only where it can be on the skip list', () => {
  // What edgeCaching decided before the shortcut: the pattern or the path starts with a prefix.
  const skippedBefore = (pattern: string, path: string, prefixes: readonly string[]) =>
    prefixes.some((p) => pattern.startsWith(p) || path.startsWith(p));
  const skippedNow = (pattern: string, path: string, prefixes: readonly string[]) =>
    prefixes.some((p) => pattern.startsWith(p)) ||
    (pathMayBeSkipped(pattern, prefixes) && prefixes.some((p) => path.startsWith(p)));
  // A small alphabet, so that prefixes, patterns and paths often share their starts.
  const segment = fc.string({ unit: fc.constantFrom('a', 'p', 'i', 'u', '/', '%', '7', '5'), maxLength: 8 });

  it('skips every response the full check skipped, for generated routes, paths and prefixes', () => {
    fc.assert(
      fc.property(
        segment,
        fc.constantFrom('', ':id', '*'),
        segment,
        fc.array(
          segment.map((s) => `/${s}`),
          { minLength: 1, maxLength: 4 },
        ),
        (fixedPart, dynamic, rest, prefixes) => {
          const fixed = `/${fixedPart}`;
          const pattern = `${fixed}${dynamic}`;
          // What the router hands this route: the static part, then anything where the pattern has
          // a parameter or a wildcard.
          const path = dynamic === '' ? fixed : `${fixed}${rest}`;
          expect(skippedNow(pattern, path, prefixes)).toBe(skippedBefore(pattern, path, prefixes));
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('looks at the path on wildcard and parametric routes under a prefix, not elsewhere', () => {
    const prefixes = ['/api/user', '/metrics'];
    expect(pathMayBeSkipped('/api/*', prefixes)).toBe(true);
    expect(pathMayBeSkipped('/api/:section', prefixes)).toBe(true);
    expect(pathMayBeSkipped('/products/:id', prefixes)).toBe(false);
    expect(pathMayBeSkipped('/api/users/:id', prefixes)).toBe(false);
    // A prefix that decoding or merged slashes could change: always looked at.
    expect(pathMayBeSkipped('/products/:id', ['/api/%75ser'])).toBe(true);
  });
});
