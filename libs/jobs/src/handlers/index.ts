import { backupHandler, restoreHandler } from './backup.js';
import type { JobHandlers } from './context.js';
import { invalidateHandler, invalidateSliceHandler } from './invalidate.js';
import { migrateHandler } from './migrate.js';
import { sweepHandler } from './sweep.js';
import { tuneHandler } from './tune.js';
import { warmHandler } from './warm.js';

/** One line per job of the catalogue: the mapped type refuses a missing one or a mistyped one. */
export const HANDLERS: JobHandlers = {
  warm: warmHandler,
  invalidate: invalidateHandler,
  'invalidate-slice': invalidateSliceHandler,
  migrate: migrateHandler,
  sweep: sweepHandler,
  backup: backupHandler,
  restore: restoreHandler,
  tune: tuneHandler,
};
