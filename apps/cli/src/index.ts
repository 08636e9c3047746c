export { run } from './cli.js';
export type { Command } from './command.js';
export { COMMANDS, findCommand } from './commands/index.js';
export {
  type DeployOutcome,
  type DeployPlan,
  deploy,
  type FleetHitRate,
  fleetHitRate,
  overlaysIn,
  type RenderedOverlay,
  renderOverlay,
  requestPrewarm,
} from './deploy/deploy.js';
export { type ClusterVerbs, type Kubectl, realKubectl } from './deploy/kubectl.js';
export {
  HASH_SUFFIX,
  Manifests,
  name,
  parseManifests,
  podSpec,
  unhashed,
  type Workload,
} from './deploy/manifests.js';
export {
  CLI_ERROR_CODES,
  CliError,
  type CliErrorCode,
  describeFailure,
  EXIT,
  type ExitCode,
} from './errors.js';
export { describeProgress } from './follow.js';
export { EXIT_CODES_HELP } from './help.js';
export { ProgressBar, type ProgressState, render } from './progress.js';
export type { Io, Output } from './session.js';
export { CLI_ENV_SCHEMA } from './settings.js';
