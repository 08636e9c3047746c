export { CodedError, formatError, isCodedError } from './errors.js';
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
