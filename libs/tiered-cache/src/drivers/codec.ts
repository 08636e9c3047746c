import { randomBytes } from 'node:crypto';
import { deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * L2 values are JSON strings; a value whose JSON reaches the threshold is stored as
 * `~z` + base64(deflate-raw(json)). JSON never starts with `~`, so one char code tells them apart
 * and the common path stays a plain GET + JSON.parse.
 */
const MARK = '~z';
const TILDE = 126;

export interface Codec {
  /** Returns the wire string and the JSON length (the entry's size for L1 accounting). */
  encode(value: unknown): { wire: string; size: number };
  decode(wire: string): unknown;
}

export function createCodec(compressionThreshold: number): Codec {
  const decode = (wire: string): unknown => {
    if (wire.charCodeAt(0) !== TILDE) return JSON.parse(wire);
    if (wire.charCodeAt(1) === G) return decode(wire.slice(bodyStart(wire)));
    return JSON.parse(inflateRawSync(Buffer.from(wire.slice(MARK.length), 'base64')).toString('utf8'));
  };
  if (compressionThreshold === 0) {
    return {
      encode: (value) => {
        const json = stringify(value);
        return { wire: json, size: json.length };
      },
      decode,
    };
  }
  return {
    encode: (value) => {
      const json = stringify(value);
      if (json.length < compressionThreshold) return { wire: json, size: json.length };
      // Level 1: on ~1–100 KB JSON it keeps most of the ratio at a fraction of level 6's CPU.
      const packed = MARK + deflateRawSync(json, { level: 1 }).toString('base64');
      return { wire: packed.length < json.length ? packed : json, size: json.length };
    },
    decode,
  };
}

function stringify(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError('value is not JSON-serialisable');
  return json;
}

const T = 116;
const G = 103;

/**
 * When an entry was loaded and when it logically expires (wall-clock ms). Entries of namespaces with
 * grace or early refresh carry it in front of the value: `~g<loadedAt>.<expiresAt>:` (base 36) then
 * the JSON or `~z` wire; Redis keeps such a key past `expiresAt` (its grace). Entries without the
 * header are plain values, fresh until Redis expires them (the format before issue 11).
 */
export interface EntryTimes {
  readonly loadedAt: number;
  readonly expiresAt: number;
}

export function envelope(wire: string, times: EntryTimes): string {
  return `~g${Math.round(times.loadedAt).toString(36)}.${Math.round(times.expiresAt).toString(36)}:${wire}`;
}

/** The header of an enveloped wire; undefined for a plain value (or a malformed header). */
export function entryTimes(wire: string): EntryTimes | undefined {
  if (wire.charCodeAt(0) !== TILDE || wire.charCodeAt(1) !== G) return undefined;
  const dot = wire.indexOf('.', 2);
  const colon = wire.indexOf(':', 2);
  if (dot < 0 || colon < dot) return undefined;
  const loadedAt = Number.parseInt(wire.slice(2, dot), 36);
  const expiresAt = Number.parseInt(wire.slice(dot + 1, colon), 36);
  return Number.isFinite(loadedAt) && Number.isFinite(expiresAt) ? { loadedAt, expiresAt } : undefined;
}

function bodyStart(wire: string): number {
  const colon = wire.indexOf(':', 2);
  if (colon < 0) throw new SyntaxError('entry header without its end');
  return colon + 1;
}
/** Tombstones are `~t` + a random token; JSON never starts with `~`, compressed values use `~z`. */
export function isTombstone(wire: string): boolean {
  return wire.charCodeAt(0) === TILDE && wire.charCodeAt(1) === T;
}

/** 72 random bits per process: tombstones of different processes never share a prefix in practice. */
const TOMBSTONE_PREFIX = `~t${randomBytes(9).toString('base64url')}`;
let tombstones = 0;

/**
 * Unique per invalidation, so a fill that saw an older tombstone cannot mistake this one (no ABA):
 * this process's random prefix and a counter. Random bytes per tombstone cost ~25 µs cold (in the
 * publisher's profile of a delete), on the latency of every pod's delivery.
 */
export function newTombstone(): string {
  return `${TOMBSTONE_PREFIX}${(tombstones++).toString(36)}`;
}
