export { loadWorkerConfig, WORKER_ENV_VARS, type WorkerConfig } from './config.js';
export { loadDefinitions, type RunningWorker, startWorker } from './worker.js';
