export {
  canonicalJson,
  dedupeId,
  type InvalidatePayload,
  type InvalidateSlicePayload,
  invalidatePayload,
  invalidateSlicePayload,
  isJobName,
  JOB_NAMES,
  JOBS,
  type JobData,
  type JobName,
  type JobPolicy,
  type PayloadInputOf,
  type PayloadOf,
  QUEUE_NAMES,
  type QueueName,
  type WarmPayload,
  warmPayload,
} from './catalogue.js';
export { type Enqueued, JobClient, type JobView, jobOptions, parsePayload } from './client.js';
export { loadQueueConfig, QUEUE_ENV_VARS, type QueueConfig } from './config.js';
export { queueDown, withDeadline } from './deadline.js';
export { isJobError, JOB_ERROR_CODES, JobError, type JobErrorCode } from './errors.js';
export { AbortedError, type Definitions, type JobContext } from './handlers/context.js';
export type { InvalidateResult, SliceResult } from './handlers/invalidate.js';
export type { WarmResult } from './handlers/warm.js';
export { registerQueueMetrics } from './metrics.js';
export {
  FleetRuntime,
  parseQueueList,
  type QueueConcurrency,
  type RuntimeDeps,
  type RuntimeOptions,
} from './runtime.js';
export {
  applySchedules,
  loadSchedules,
  SCHEDULE_ENV_VARS,
  SCHEDULE_PREFIX,
  type Schedule,
} from './schedules.js';
