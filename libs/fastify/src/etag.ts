import * as crypto from 'node:crypto';

/** One-shot `crypto.hash` (Node ≥ 20.12) is cheaper than a Hash object per body. */
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;

/** The strong ETag of a body: `"<sha1, base64url>"`. */
export function etagOf(body: string | Buffer): string {
  const digest =
    oneShot !== undefined
      ? oneShot('sha1', body, 'base64url')
      : crypto.createHash('sha1').update(body).digest('base64url');
  return `"${digest}"`;
}

/**
 * RFC 9110 §13.1.2: `If-None-Match` uses the weak comparison (`W/"x"` matches `"x"`), `*` matches
 * any current representation, and the field is a comma-separated list. The list is read tag by tag
 * (an entity tag may itself contain a comma), and anything that is not a tag is ignored.
 */
export function ifNoneMatchMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(', ') : header;
  if (value.trim() === '*') return true;
  const opaque = stripWeak(etag);
  for (const m of value.matchAll(ENTITY_TAG)) {
    if (m[1] === opaque) return true;
  }
  return false;
}

/** `(W/)?"<etagc>*"`; group 1 is the opaque tag with its quotes. */
const ENTITY_TAG = /(?:W\/)?("[\x21\x23-\x7e\x80-\xff]*")/g;

function stripWeak(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag;
}
