export {
  canonicalJson,
  dedupeId,
  type InvalidatePayload,
  type InvalidateResult,
  type InvalidateSlicePayload,
  invalidatePayload,
  invalidateResultSchema,
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
  type SliceResult,
  sliceResultSchema,
  type WarmPayload,
  type WarmResult,
  warmPayload,
  warmResultSchema,
} from './catalogue.js';
export { type Enqueued, JobClient, type JobView, jobOptions, parsePayload } from './client.js';
export { loadQueueConfig, QUEUE_ENV_VARS, type QueueConfig } from './config.js';
export { queueDown, withDeadline } from './deadline.js';
export { isJobError, JOB_ERROR_CODES, JobError, type JobErrorCode } from './errors.js';
export { AbortedError, type Definitions, type JobContext } from './handlers/context.js';
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
