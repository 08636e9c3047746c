import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  type DecipherGCM,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { DumpedKey } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { JobError } from '../errors.js';
import type { BackupStorage } from './storage.js';

/**
 * The backup file (docs/design-lifecycle.md), written in one pass and read in two (verify, then
 * restore):
 *
 *   "CFBACKUP\n" | payload | header JSON | header length (u32 BE) | SHA-256 | HMAC-SHA-256
 *
 * The payload is gzip of one JSON line per key (`{"k": key without prefix, "x": absolute expiry ms
 * or 0, "d": base64 DUMP}`), then AES-256-GCM when an encryption key is configured (IV and tag in
 * the header). The header comes last because it holds what is known at the end (key count, GCM
 * tag). The SHA-256 covers every byte before it; the HMAC (zeros when unsigned) covers every byte
 * before it, the SHA-256 included.
 */
export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('CFBACKUP\n', 'latin1');
const DIGEST = 32;
const TAIL = 4 + DIGEST + DIGEST;

export const backupHeaderSchema = z.object({
  format: z.literal('cachefleet-backup'),
  version: z.number().int(),
  createdAt: z.string(),
  prefix: z.string(),
  namespaces: z.array(
    z.object({
      name: z.string(),
      version: z.number().int(),
      generation: z.number().int().min(0),
      invalidations: z.number().int().min(0),
    }),
  ),
  keys: z.number().int().min(0),
  /** The bus stream's last id when the backup began: later events happened after it. */
  busId: z.string(),
  redisVersion: z.string(),
  compression: z.literal('gzip'),
  encryption: z.union([
    z.null(),
    z.object({ alg: z.literal('aes-256-gcm'), iv: z.string(), tag: z.string() }),
  ]),
  signed: z.boolean(),
});
export type BackupHeader = z.output<typeof backupHeaderSchema>;

export interface BackupKeys {
  readonly hmacKey: Buffer | undefined;
  readonly encryptionKey: Buffer | undefined;
}

export type HeaderBase = Omit<
  BackupHeader,
  'format' | 'version' | 'keys' | 'compression' | 'encryption' | 'signed'
>;

/**
 * Streams `records` into `sink` (backpressure all the way: a slow disk slows the SCAN), then the
 * trailer, and ends `sink`. Resolves the header written, the file's size and its SHA-256.
 */
export async function writeBackup(
  sink: Writable,
  records: AsyncIterable<readonly DumpedKey[]>,
  base: HeaderBase,
  keys: BackupKeys,
): Promise<{ readonly header: BackupHeader; readonly bytes: number; readonly sha256: string }> {
  const hash = createHash('sha256');
  const mac = keys.hmacKey !== undefined ? createHmac('sha256', keys.hmacKey) : undefined;
  let bytes = 0;
  const emit = async (buf: Buffer) => {
    hash.update(buf);
    mac?.update(buf);
    bytes += buf.length;
    if (!sink.write(buf)) await once(sink, 'drain');
  };
  await emit(MAGIC);
  const gzip = createGzip({ level: 1 });
  const iv = randomBytes(12);
  const cipher =
    keys.encryptionKey !== undefined ? createCipheriv('aes-256-gcm', keys.encryptionKey, iv) : undefined;
  const out: Readable = cipher !== undefined ? gzip.pipe(cipher) : gzip;
  let count = 0;
  const feed = async () => {
    try {
      for await (const batch of records) {
        let lines = '';
        // The bytes JSON.stringify({k, x, d}) gives (x is an integer, base64 needs no escape),
        // without an object and its walk per key.
        for (const r of batch)
          lines += `{"k":${JSON.stringify(r.key)},"x":${Math.round(r.expireAt)},"d":"${r.dump.toString('base64')}"}\n`;
        count += batch.length;
        if (lines.length > 0 && !gzip.write(lines)) await once(gzip, 'drain');
      }
      gzip.end();
    } catch (error) {
      gzip.destroy(error instanceof Error ? error : new Error(String(error)));
      out.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
  };
  const consume = async () => {
    for await (const chunk of out) await emit(chunk as Buffer);
  };
  await Promise.all([feed(), consume()]);
  const header: BackupHeader = {
    format: 'cachefleet-backup',
    version: FORMAT_VERSION,
    ...base,
    keys: count,
    compression: 'gzip',
    encryption:
      cipher !== undefined
        ? { alg: 'aes-256-gcm', iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64') }
        : null,
    signed: mac !== undefined,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  await emit(json);
  await emit(len);
  const digest = hash.digest();
  mac?.update(digest);
  const signature = mac !== undefined ? mac.digest() : Buffer.alloc(DIGEST);
  bytes += DIGEST * 2;
  if (!sink.write(Buffer.concat([digest, signature]))) await once(sink, 'drain');
  sink.end();
  return { header, bytes, sha256: digest.toString('hex') };
}

function corrupt(name: string, why: string): JobError {
  return new JobError('E_JOB_BACKUP_CORRUPT', `backup ${name}: ${why}: refused, nothing written`);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Where the parts of a backup file are, from its tail. */
export interface BackupLayout {
  readonly header: BackupHeader;
  readonly size: number;
  readonly payloadStart: number;
  readonly payloadEnd: number;
}

/** Reads the header from the tail of a backup (no check of the whole: `verifyBackup` does that). */
export async function readLayout(storage: BackupStorage, name: string): Promise<BackupLayout> {
  const size = await storage.size(name);
  if (size === undefined) throw new JobError('E_JOB_BACKUP_NOT_FOUND', `no backup ${name}`);
  if (size < MAGIC.length + TAIL + 2) throw corrupt(name, `truncated (${size} bytes)`);
  const magic = await readAll(storage.read(name, 0, MAGIC.length));
  if (!magic.equals(MAGIC)) throw corrupt(name, 'not a cachefleet backup');
  const len = (await readAll(storage.read(name, size - TAIL, size - TAIL + 4))).readUInt32BE(0);
  const headerStart = size - TAIL - len;
  if (len < 2 || headerStart < MAGIC.length) throw corrupt(name, 'truncated or damaged (header length)');
  let header: BackupHeader;
  try {
    const json: unknown = JSON.parse(
      (await readAll(storage.read(name, headerStart, size - TAIL))).toString('utf8'),
    );
    const version = z
      .looseObject({ format: z.literal('cachefleet-backup'), version: z.number() })
      .parse(json);
    if (version.version !== FORMAT_VERSION) {
      throw new JobError(
        'E_JOB_BACKUP_INCOMPATIBLE',
        `backup ${name} has format version ${version.version}; this release reads version ${FORMAT_VERSION}: refused, nothing written`,
      );
    }
    header = backupHeaderSchema.parse(json);
  } catch (error) {
    if (error instanceof JobError) throw error;
    throw corrupt(name, 'truncated or damaged (header)');
  }
  return { header, size, payloadStart: MAGIC.length, payloadEnd: headerStart };
}

/** One record of the payload, parsed. */
const recordSchema = z.object({ k: z.string().min(1), x: z.number().int().min(0), d: z.string() });

/**
 * Checks a backup whole before anything is written: the SHA-256 over every byte, the signature
 * (required when a key is configured, refused without one), then decrypts and decompresses the
 * payload and counts its records against the header. Throws a coded error naming what is wrong.
 */
export async function verifyBackup(
  storage: BackupStorage,
  name: string,
  keys: BackupKeys,
): Promise<BackupLayout> {
  const layout = await readLayout(storage, name);
  const { header, size } = layout;
  if (header.signed && keys.hmacKey === undefined)
    throw new JobError(
      'E_JOB_BACKUP_SIGNATURE',
      `backup ${name} is signed and BACKUP_HMAC_KEY is not set: refused, nothing written`,
    );
  if (!header.signed && keys.hmacKey !== undefined)
    throw new JobError(
      'E_JOB_BACKUP_SIGNATURE',
      `backup ${name} is not signed and BACKUP_HMAC_KEY is set: refused, nothing written`,
    );
  if (header.encryption !== null && keys.encryptionKey === undefined)
    throw new JobError(
      'E_JOB_BACKUP_KEY',
      `backup ${name} is encrypted and BACKUP_ENCRYPTION_KEY is not set: refused, nothing written`,
    );
  const hash = createHash('sha256');
  const mac = keys.hmacKey !== undefined ? createHmac('sha256', keys.hmacKey) : undefined;
  for await (const chunk of storage.read(name, 0, size - DIGEST * 2)) {
    hash.update(chunk as Buffer);
    mac?.update(chunk as Buffer);
  }
  const tail = await readAll(storage.read(name, size - DIGEST * 2, size));
  const digest = hash.digest();
  if (!digest.equals(tail.subarray(0, DIGEST))) throw corrupt(name, 'checksum mismatch (SHA-256)');
  if (mac !== undefined) {
    mac.update(digest);
    if (!timingSafeEqual(mac.digest(), tail.subarray(DIGEST)))
      throw new JobError(
        'E_JOB_BACKUP_SIGNATURE',
        `backup ${name}: the signature does not match BACKUP_HMAC_KEY: refused, nothing written`,
      );
  }
  let count = 0;
  for await (const batch of readRecords(storage, name, layout, keys, 0, 1_000)) count += batch.length;
  if (count !== header.keys) throw corrupt(name, `${count} records where the header says ${header.keys}`);
  return layout;
}

/**
 * The payload's records in batches of `batch`, from record `from` on (a resumed restore skips what
 * it did). Decryption and decompression errors become coded errors.
 */
export async function* readRecords(
  storage: BackupStorage,
  name: string,
  layout: BackupLayout,
  keys: BackupKeys,
  from: number,
  batch: number,
): AsyncGenerator<DumpedKey[]> {
  const { header } = layout;
  const source = storage.read(name, layout.payloadStart, layout.payloadEnd);
  let decipher: DecipherGCM | undefined;
  if (header.encryption !== null) {
    if (keys.encryptionKey === undefined)
      throw new JobError(
        'E_JOB_BACKUP_KEY',
        `backup ${name} is encrypted and BACKUP_ENCRYPTION_KEY is not set`,
      );
    decipher = createDecipheriv(
      'aes-256-gcm',
      keys.encryptionKey,
      Buffer.from(header.encryption.iv, 'base64'),
    );
    decipher.setAuthTag(Buffer.from(header.encryption.tag, 'base64'));
  }
  const gunzip = createGunzip();
  const forward = (error: Error) => gunzip.destroy(error);
  source.on('error', forward);
  decipher?.on('error', forward);
  (decipher !== undefined ? source.pipe(decipher) : source).pipe(gunzip);
  let rest = '';
  let index = 0;
  let out: DumpedKey[] = [];
  try {
    for await (const chunk of gunzip) {
      const lines = (rest + (chunk as Buffer).toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (index++ < from) continue;
        let r: z.output<typeof recordSchema>;
        try {
          r = recordSchema.parse(JSON.parse(line));
        } catch {
          throw corrupt(name, `record ${index} is damaged`);
        }
        out.push({ key: r.k, expireAt: r.x, dump: Buffer.from(r.d, 'base64') });
        if (out.length >= batch) {
          yield out;
          out = [];
        }
      }
    }
  } catch (error) {
    if (error instanceof JobError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    if (decipher !== undefined && /authenticate|bad decrypt/i.test(message))
      throw new JobError(
        'E_JOB_BACKUP_KEY',
        `backup ${name} does not decrypt with BACKUP_ENCRYPTION_KEY (wrong key?): refused, nothing written`,
      );
    throw corrupt(name, `unreadable payload (${message})`);
  } finally {
    source.destroy();
  }
  if (rest.length > 0) throw corrupt(name, 'truncated payload');
  if (out.length > 0) yield out;
}
