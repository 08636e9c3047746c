export { SYSTEM_ENV_SCHEMA } from './settings.js';
