export {
  CAPTURE_ENV_SCHEMA,
  CAPTURE_ENV_VARS,
  type CaptureConfig,
  captureSchemaName,
  loadCaptureConfig,
} from './config.js';
export { CAPTURE_ERROR_CODES, CaptureError, type CaptureErrorCode } from './errors.js';
export type { CaptureFanOutJob } from './fanout.js';
export { CaptureLease, type CapturePosition, capturePositionSchema, readCaptureState } from './lease.js';
export { type NamespacePlan, type OutboxRow, type Plan, planBatch } from './plan.js';
export { CaptureReader, type CaptureReaderOptions } from './reader.js';
export { type CapturedSource, capturedSources, parseTemplate, render } from './source.js';
export {
  captureChannel,
  captureSql,
  DEFAULT_CAPTURE_SCHEMA,
  installCapture,
  outboxTable,
  type Queryable,
} from './sql.js';
