export { type AppDeps, buildApp } from './app.js';
export { API_ENV_SCHEMA, API_ENV_VARS, type ApiConfig, loadApiConfig } from './config.js';
export { type Database, openDatabase } from './db.js';
export { API_ERROR_CODES, ApiError, type ApiErrorCode } from './errors.js';
export { bucketOf, ROLLOUT_ENV_SCHEMA } from './rollout.js';
export { type RunningApi, startApi } from './server.js';
