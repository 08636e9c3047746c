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
  const decode = (wire: string): unknown =>
    wire.charCodeAt(0) === TILDE
      ? JSON.parse(inflateRawSync(Buffer.from(wire.slice(MARK.length), 'base64')).toString('utf8'))
      : JSON.parse(wire);
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
/** Tombstones are `~t` + a random token; JSON never starts with `~`, compressed values use `~z`. */
export function isTombstone(wire: string): boolean {
  return wire.charCodeAt(0) === TILDE && wire.charCodeAt(1) === T;
}

/** Unique per invalidation, so a fill that saw an older tombstone cannot mistake this one (no ABA). */
export function newTombstone(): string {
  return `~t${randomBytes(9).toString('base64url')}`;
}
