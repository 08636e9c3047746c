/**
 * The migrate, sweep, backup and restore payload schemas, and the backup settings (property tests): any JSON value is either refused by
 * `JobClient.check` with E_JOB_INVALID_PAYLOAD naming a field, or accepted as a payload within the
 * catalogue's bounds. No Redis: `check` does no I/O.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backupPayload,
  isJobError,
  JobClient,
  loadBackupConfig,
  loadQueueConfig,
  migratePayload,
  restorePayload,
  sweepPayload,
} from '../src/index.js';

// `check` does no I/O: the client (pointed at a closed port) is disconnected at once.
const client = new JobClient(loadQueueConfig({ QUEUE_REDIS_URL: 'redis://127.0.0.1:1' }));
client.connection.disconnect();

const anyValue = fc.oneof(
  fc.jsonValue(),
  fc.record(
    {
      namespace: fc.oneof(fc.constantFrom('product', 'item', 'A', '', '__x', 'a'.repeat(70)), fc.string()),
      to: fc.oneof(fc.integer({ min: -3, max: 2_000_000 }), fc.double(), fc.string()),
      dryRun: fc.oneof(fc.boolean(), fc.constantFrom('true', 1, null)),
      rate: fc.oneof(fc.integer({ min: -10, max: 20_000_000 }), fc.constant('5')),
      count: fc.oneof(fc.integer({ min: 0, max: 20_000 }), fc.constant(null)),
      extra: fc.string(),
    },
    { requiredKeys: [] },
  ),
);

function accepts(name: 'migrate' | 'sweep' | 'backup' | 'restore', value: unknown): boolean {
  try {
    client.check(name, value as never);
    return true;
  } catch (error) {
    expect(isJobError(error) && error.code === 'E_JOB_INVALID_PAYLOAD').toBe(true);
    expect(String((error as Error).message)).toMatch(new RegExp(`^${name}: `));
    return false;
  }
}

describe('lifecycle payloads', () => {
  it('migrate: valid payloads are within bounds, everything else is refused naming a field', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        if (!accepts('migrate', value)) return;
        const p = migratePayload.parse(value);
        expect(p.namespace).toMatch(/^[a-z][a-z0-9_-]{0,63}$/);
        expect(Number.isInteger(p.to) && p.to >= 2).toBe(true);
        expect(p.rate).toBeGreaterThanOrEqual(0);
        expect(p.count).toBeGreaterThanOrEqual(10);
      }),
      { numRuns: 3_000, seed: 12 },
    );
  });

  it('sweep: an optional namespace and a step size, nothing else', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        if (!accepts('sweep', value)) return;
        const p = sweepPayload.parse(value);
        expect(Object.keys(p).every((k) => k === 'namespace' || k === 'count')).toBe(true);
      }),
      { numRuns: 3_000, seed: 12 },
    );
    expect(accepts('sweep', {})).toBe(true);
    expect(accepts('sweep', { namespace: 'product' })).toBe(true);
    expect(accepts('sweep', { namespace: 'product', extra: 1 })).toBe(false);
  });
});

const fileish = fc.oneof(
  fc.constantFrom(
    'latest',
    'cachefleet-20261201T000000000Z-abcd1234.cfb',
    '/tmp/x.cfb',
    '',
    'a\u0000b',
    'x\ny',
  ),
  fc.string({ maxLength: 50 }),
);

describe('backup and restore payloads', () => {
  it('restore: a file (no NUL or newline) and a replace flag, nothing else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record(
            { file: fileish, replace: fc.oneof(fc.boolean(), fc.constant('yes')), more: fc.nat() },
            { requiredKeys: [] },
          ),
        ),
        (value) => {
          if (!accepts('restore', value)) return;
          const p = restorePayload.parse(value);
          expect(p.file.length).toBeGreaterThan(0);
          expect(p.file).not.toMatch(/[\0\n]/);
          expect(typeof p.replace).toBe('boolean');
        },
      ),
      { numRuns: 3_000, seed: 12 },
    );
  });

  it('backup: an optional list of namespace names', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record({ namespaces: fc.array(fc.oneof(fc.constantFrom('product', 'X'), fc.string())) }),
        ),
        (value) => {
          if (!accepts('backup', value)) return;
          for (const ns of backupPayload.parse(value).namespaces ?? [])
            expect(ns).toMatch(/^[a-z][a-z0-9_-]*$/);
        },
      ),
      { numRuns: 3_000, seed: 12 },
    );
  });

  it('settings: keys of the wrong shape are refused naming the variable', () => {
    expect(loadBackupConfig({})).toMatchObject({ dir: '.data/backups', keep: 42, hmacKey: undefined });
    expect(() => loadBackupConfig({ BACKUP_HMAC_KEY: 'short' })).toThrow(/^BACKUP_HMAC_KEY: /);
    expect(() => loadBackupConfig({ BACKUP_ENCRYPTION_KEY: 'zz'.repeat(32) })).toThrow(
      /^BACKUP_ENCRYPTION_KEY: /,
    );
    expect(() => loadBackupConfig({ BACKUP_KEEP: '0' })).toThrow(/^BACKUP_KEEP: /);
    expect(loadBackupConfig({ BACKUP_ENCRYPTION_KEY: 'ab'.repeat(32) }).encryptionKey?.length).toBe(32);
  });
});
