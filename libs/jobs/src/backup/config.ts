import { type Env, intSchema, parseEnv } from '@cachefleet/config';
import { z } from 'zod';
import { JobError } from '../errors.js';

/** Backup settings (README "Worker settings"). */
export const BACKUP_ENV_VARS = {
  BACKUP_DIR: 'directory of the backup files (default .data/backups)',
  BACKUP_KEEP: 'backups kept; older ones are removed after each backup (default 42: 6-hourly for a week)',
  BACKUP_HMAC_KEY:
    'when set (at least 32 characters): backups are signed, and restores refuse unsigned or mis-signed files',
  BACKUP_ENCRYPTION_KEY: 'when set (64 hex digits: 32 bytes): backups are encrypted with AES-256-GCM',
} as const;

export interface BackupConfig {
  readonly dir: string;
  readonly keep: number;
  readonly hmacKey: Buffer | undefined;
  readonly encryptionKey: Buffer | undefined;
}

export const BACKUP_ENV_SCHEMA = z.object({
  BACKUP_DIR: z.string().min(1).default('.data/backups').describe(BACKUP_ENV_VARS.BACKUP_DIR),
  BACKUP_KEEP: intSchema.min(1).max(10_000).default(42).describe(BACKUP_ENV_VARS.BACKUP_KEEP),
  BACKUP_HMAC_KEY: z
    .string()
    .min(32, 'at least 32 characters')
    .optional()
    .describe(BACKUP_ENV_VARS.BACKUP_HMAC_KEY),
  BACKUP_ENCRYPTION_KEY: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, '64 hex digits (32 bytes)')
    .optional()
    .describe(BACKUP_ENV_VARS.BACKUP_ENCRYPTION_KEY),
});

export function loadBackupConfig(env: Env): BackupConfig {
  const fail = (message: string, cause: z.ZodError) => new JobError('E_JOB_CONFIG', message, { cause });
  const e = parseEnv(BACKUP_ENV_SCHEMA, env, fail);
  return {
    dir: e.BACKUP_DIR,
    keep: e.BACKUP_KEEP,
    hmacKey: e.BACKUP_HMAC_KEY !== undefined ? Buffer.from(e.BACKUP_HMAC_KEY, 'utf8') : undefined,
    encryptionKey:
      e.BACKUP_ENCRYPTION_KEY !== undefined ? Buffer.from(e.BACKUP_ENCRYPTION_KEY, 'hex') : undefined,
  };
}
