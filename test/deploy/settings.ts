/** What the deployment files must agree with in the apps' settings (k8s and compose tests). */
import { API_ENV_VARS } from '@cachefleet/api';
import { CAPTURE_ENV_VARS } from '@cachefleet/capture';
import { BACKUP_ENV_VARS, QUEUE_ENV_VARS, SCHEDULE_ENV_VARS } from '@cachefleet/jobs';
import { ENV_VARS as CACHE_ENV_VARS } from '@cachefleet/tiered-cache';
import { WORKER_ENV_VARS } from '@cachefleet/worker';

/** Every variable some process of the fleet reads: the packages' own lists, and the few below. */
export const READ_BY_THE_CODE = new Set([
  ...Object.keys(API_ENV_VARS),
  ...Object.keys(WORKER_ENV_VARS),
  ...Object.keys(QUEUE_ENV_VARS),
  ...Object.keys(SCHEDULE_ENV_VARS),
  ...Object.keys(BACKUP_ENV_VARS),
  ...Object.keys(CACHE_ENV_VARS),
  ...Object.keys(CAPTURE_ENV_VARS),
  // loadCatalogueEnv (libs/catalogue), the API's rollout (apps/api rollout.ts) and the worker's
  // capture role (apps/worker worker.ts: CAPTURE_INSTALL) keep no exported list.
  'CATALOGUE_SCHEMA',
  'CACHE_ROLLOUT',
  'CACHE_ROLLOUT_ANONYMOUS',
  'CAPTURE_INSTALL',
]);

/**
 * A worker closes by force at WORKER_SHUTDOWN_MS after SIGTERM; closing its connections and
 * flushing its logs then take a moment: this much margin before the grace period ends, in ms.
 */
export const CLOSE_MARGIN_MS = 10_000;

/** Variables that hold a credential: given by reference, never written in a file. */
export const SECRET_NAME = /PASSWORD|TOKEN|SECRET|DATABASE_URL/;

/** A URL with a password written in it (`$(VAR)` or `${VAR}` in its place is fine). */
export const URL_WITH_PASSWORD = /:\/\/[^/\s@]*:[^$\s@]+@/;
