import { createConnection } from 'node:net';

/**
 * A tiny RESP2 client for the harness itself, so starting and checking servers never depends on
 * the Redis client under test. One connection per call: slow, but simple and always fresh.
 */

/** An error reply from the server (`-ERR ...`, `-NOGOOD ...`). */
export class RespError extends Error {
  override readonly name = 'RespError';
  /** The first word of the reply: `ERR`, `NOGOOD`, `INPROG`, `LOADING`... */
  readonly code: string;
  constructor(message: string) {
    super(message);
    this.code = message.split(' ', 1)[0] ?? '';
  }
}

export type RespValue = string | number | null | RespValue[];

export interface RawCommandOptions {
  readonly host?: string;
  /** For the whole exchange: connect, write, read. */
  readonly timeoutMs?: number;
  /** Log in first (AUTH user password), for servers with ACL users. */
  readonly auth?: { readonly user: string; readonly password: string };
}

/**
 * Sends one command to 127.0.0.1:`port` and resolves with the parsed reply.
 * Rejects with a RespError on an error reply, or with an Error on a socket error or time-out.
 */
export function rawCommand(
  port: number,
  args: readonly (string | number)[],
  options: RawCommandOptions = {},
): Promise<RespValue> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.timeoutMs ?? 2_000;
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host, port });
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined, value?: RespValue) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value ?? null);
    };
    const timer = setTimeout(
      () => finish(new Error(`${args.join(' ')} on ${host}:${port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.once('error', (err) => finish(err));
    sock.once('close', () => finish(new Error(`${host}:${port} closed the connection`)));
    const auth = options.auth;
    // With auth, two replies come back: AUTH's (an error ends the exchange), then the command's.
    let start = 0;
    let authPending = auth !== undefined;
    sock.once('connect', () =>
      sock.write(
        auth === undefined
          ? encodeCommand(args)
          : Buffer.concat([encodeCommand(['AUTH', auth.user, auth.password]), encodeCommand(args)]),
      ),
    );
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        let parsed: Parsed | undefined;
        try {
          parsed = parseReply(buf, start);
        } catch (err) {
          finish(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (parsed === undefined) return; // incomplete, wait for more
        if (parsed.error !== undefined) return finish(parsed.error);
        if (!authPending) return finish(undefined, parsed.value);
        authPending = false;
        start = parsed.end;
      }
    });
  });
}

/** rawCommand that resolves with undefined instead of rejecting. */
export async function tryCommand(
  port: number,
  args: readonly (string | number)[],
  options: RawCommandOptions = {},
): Promise<RespValue | undefined> {
  try {
    return await rawCommand(port, args, options);
  } catch {
    return undefined;
  }
}

function encodeCommand(args: readonly (string | number)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const b = Buffer.from(String(arg));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

interface Parsed {
  readonly value: RespValue;
  /** Set for an error reply at the top level (errors nested in arrays become RespError values' messages). */
  readonly error?: RespError;
  readonly end: number;
}

/** Parses one reply starting at `start`; undefined if `buf` does not hold a whole reply yet. */
function parseReply(buf: Buffer, start: number): Parsed | undefined {
  const lineEnd = buf.indexOf('\r\n', start);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[start] ?? 0);
  const line = buf.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: line, error: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: next };
      if (buf.length < next + len + 2) return undefined;
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let pos = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, pos);
        if (item === undefined) return undefined;
        // An error inside an array (e.g. in EXEC results) is kept as its message text.
        items.push(item.value);
        pos = item.end;
      }
      return { value: items, end: pos };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/** `INFO` text → { field: value }. */
export function parseInfo(text: RespValue | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof text !== 'string') return out;
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** A flat [k1, v1, k2, v2...] reply (SENTINEL MASTER, SENTINEL REPLICAS entries) → { k: v }. */
export function pairsToRecord(reply: RespValue | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const k = reply[i];
    const v = reply[i + 1];
    if (typeof k === 'string') out[k] = typeof v === 'string' || typeof v === 'number' ? String(v) : '';
  }
  return out;
}

/** INFO of one server, parsed; undefined if it does not answer. */
export async function info(
  port: number,
  section?: string,
  options: RawCommandOptions = {},
): Promise<Record<string, string> | undefined> {
  const reply = await tryCommand(port, section === undefined ? ['INFO'] : ['INFO', section], options);
  return reply === undefined ? undefined : parseInfo(reply);
}
