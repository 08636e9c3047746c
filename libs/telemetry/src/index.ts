export type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
export { loadTracingConfig, TRACING_ENV_SCHEMA, TRACING_ENV_VARS, type TracingConfig } from './config.js';
export { TELEMETRY_ERROR_CODES, TelemetryError, type TelemetryErrorCode } from './errors.js';
export { inSpan, installTestTracing, startTracing, type TestTracing, type Tracing } from './sdk.js';
