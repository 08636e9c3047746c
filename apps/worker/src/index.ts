export { loadWorkerConfig, WORKER_ENV_SCHEMA, WORKER_ENV_VARS, type WorkerConfig } from './config.js';
export { WORKER_ERROR_CODES, WorkerError, type WorkerErrorCode } from './errors.js';
export { loadDefinitions, type RunningWorker, startWorker } from './worker.js';
