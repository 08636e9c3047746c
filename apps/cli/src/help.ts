import { envDescriptions } from '@cachefleet/config';
import { QUEUE_ENV_VARS } from '@cachefleet/jobs';
import type { Command } from './command.js';
import { COMMANDS } from './commands/index.js';
import { CLI_ENV_SCHEMA } from './settings.js';

/** Appended to every help text: scripts branch on these (README "Exit codes"). */
export const EXIT_CODES_HELP = `Exit codes:
  0  success (a followed job completed; --detach: the job was enqueued)
  1  the followed job failed, a deploy failed or was rolled back (or an unexpected error)
  2  usage error: unknown command or flag, bad argument, payload refused by the job catalogue
     (E_JOB_INVALID_PAYLOAD), invalid settings, retry of a job that has not failed
  3  cannot reach the queue Redis, the cache Redis or the API (gives up after 3 s)
  4  not found: no job with that id
Errors are one line on stderr: cachefleet <command>: <CODE>: <message>`;

export function commandHelp(command: Command): string {
  return `${command.help}\n\n${EXIT_CODES_HELP}`;
}

export function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const env = Object.entries({
    REDIS_URL: 'the Redis of the system (both roles; npm start prints it); no address is assumed',
    ...QUEUE_ENV_VARS,
    CACHE_REDIS_URL: 'the cache Redis, for top and status (default REDIS_URL); other CACHE_* apply too',
    ...envDescriptions(CLI_ENV_SCHEMA),
  });
  const envWidth = Math.max(...env.map(([k]) => k.length));
  return `cachefleet: run and watch the worker fleet's jobs

Usage:
  cachefleet <command> [flags]
  cachefleet <command> --help

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Environment:
${env.map(([k, v]) => `  ${k.padEnd(envWidth)}  ${v}`).join('\n')}

${EXIT_CODES_HELP}`;
}
