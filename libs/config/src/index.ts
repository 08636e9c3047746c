export { CodedError, formatError, isCodedError } from './errors.js';
export { formatBytes } from './format.js';
export {
  type ChosenRedisUrl,
  describeChoice,
  REDIS_URL_ENV_SCHEMA,
  REDIS_URL_VARIABLES,
  type RedisUrlRole,
  redactRedisUrl,
  redisChoices,
  redisUrlOf,
  redisUrlSchema,
  requireRedisUrl,
} from './redis-url.js';
export {
  boolishSchema,
  type Env,
  hostListSchema,
  type IssueNaming,
  intSchema,
  issueMessage,
  parseEnv,
  pickEnv,
  portSchema,
} from './settings.js';
export { envDescriptions, type SettingRow, settingRows, settingsTable } from './settings-doc.js';
