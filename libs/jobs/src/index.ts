export { BACKUP_ENV_SCHEMA, BACKUP_ENV_VARS, type BackupConfig, loadBackupConfig } from './backup/config.js';
export {
  type BackupHeader,
  type BackupLayout,
  backupHeaderSchema,
  FORMAT_VERSION,
  readLayout,
  readRecords,
  verifyBackup,
} from './backup/format.js';
export {
  type BackupStorage,
  type BackupUpload,
  backupName,
  FsBackupStorage,
  isBackupName,
  locateBackup,
  type StoredBackup,
} from './backup/storage.js';
export {
  type BackupPayload,
  type BackupResult,
  backupPayload,
  backupResultSchema,
  canonicalJson,
  DEFAULT_CONCURRENCY,
  dedupeId,
  type InvalidatePayload,
  type InvalidateResult,
  type InvalidateSlicePayload,
  type InvalidateState,
  invalidatePayload,
  invalidateResultSchema,
  invalidateSlicePayload,
  isJobName,
  JOB_NAMES,
  JOBS,
  type JobData,
  type JobName,
  type JobPolicy,
  type MigratePayload,
  type MigrateResult,
  type MigrateState,
  migratePayload,
  migrateResultSchema,
  type PayloadInputOf,
  type PayloadOf,
  QUEUE_NAMES,
  type QueueName,
  type RestorePayload,
  type RestoreResult,
  type RestoreState,
  type ResultOf,
  restorePayload,
  restoreResultSchema,
  type SliceResult,
  type SliceState,
  type StateOf,
  type SweepPayload,
  type SweepResult,
  type SweepState,
  sliceResultSchema,
  sweepPayload,
  sweepResultSchema,
  type TunePayload,
  type TuneResult,
  tunePayload,
  tuneResultSchema,
  type WarmPayload,
  type WarmResult,
  type WarmState,
  warmPayload,
  warmResultSchema,
} from './catalogue.js';
export {
  type Enqueued,
  type EnqueueOptions,
  JobClient,
  type JobClientOptions,
  type JobView,
  jobOptions,
  parsePayload,
} from './client.js';
export { loadQueueConfig, QUEUE_ENV_SCHEMA, QUEUE_ENV_VARS, type QueueConfig } from './config.js';
export { queueDown, withDeadline } from './deadline.js';
export {
  DEFAULT_DEFINITIONS,
  type DefinitionsModule,
  definitionsModule,
  namespaceRulesOf,
} from './definitions.js';
export { isJobError, JOB_ERROR_CODES, JobError, type JobErrorCode } from './errors.js';
export {
  AbortedError,
  type Definitions,
  type JobContext,
  type JobHandler,
  type JobHandlers,
} from './handlers/context.js';
export { isJobId } from './job-ids.js';
export { INVALID_KIND, JOB_KINDS, type JobKind, jobKind } from './job-kinds.js';
export {
  loadQueueMetricsLeaseMs,
  QUEUE_METRICS_ENV_SCHEMA,
  QUEUE_METRICS_ENV_VARS,
  type QueueMetrics,
  type QueueMetricsOptions,
  queueMetricsLeaseKey,
  registerProcessMetrics,
  registerQueueMetrics,
} from './metrics.js';
export { LISTED_IDS, type NamespaceRule, payloadSchemaWith } from './namespaces.js';
export {
  type InvalidateRequest,
  invalidatePayloadOf,
  type WarmRequest,
  warmPayloadOf,
} from './requests.js';
export {
  DEFAULT_QUEUE_LIST,
  FleetRuntime,
  parseQueueList,
  type QueueConcurrency,
  type RuntimeDeps,
  type RuntimeOptions,
} from './runtime.js';
export {
  applySchedules,
  installSchedules,
  keepSchedules,
  loadScheduleCheckMs,
  loadSchedules,
  SCHEDULE_CRONS_ENV_SCHEMA,
  SCHEDULE_ENV_VARS,
  SCHEDULE_PREFIX,
  SCHEDULED,
  SCHEDULES_ENV_SCHEMA,
  type Schedule,
  type ScheduledJob,
  type ScheduleKeeper,
  schedulesMarker,
} from './schedules.js';
export { readSlices, type SliceFamily, type SliceTotals, sliceId } from './slices.js';
export {
  checkSystemId,
  type GuardedRedis,
  guardSystemId,
  loadSystemId,
  queueSystemIdKey,
  SYSTEM_ID_ENV_SCHEMA,
  SYSTEM_ID_ENV_VARS,
  type SystemGuardOptions,
  type SystemIdCheck,
  type SystemIdTarget,
  systemIdSchema,
} from './system-id.js';
export { jobTitle } from './titles.js';
export { loadTuneConfig, TUNE_ENV_SCHEMA, TUNE_ENV_VARS, type TuneConfig } from './tune/config.js';
export {
  type GuardInputs,
  type GuardOutcome,
  guardRollouts,
  lowerStage,
  ROLLOUT_LADDER,
} from './tune/guard.js';
export { pinSetting, setRollout, undoLast, unpinSetting } from './tune/operator.js';
export {
  type Decision,
  decide,
  EMPTY_MEMORY,
  l1Target,
  l2Target,
  type NamespaceWindow,
  type PodCounters,
  TUNE_ACTIONS,
  TUNE_RULES,
  type TuneInputs,
  type TuneMemory,
  type TuneOutcome,
  type TuneWindow,
  windowOf,
} from './tune/rules.js';
