import type { ExitCode } from './errors.js';
import type { Session } from './session.js';

/**
 * One `cachefleet <name>` command. Each lives in its own module under `commands/` and is listed
 * once in `commands/index.ts`: a new job kind (migrate, backup, restore) is one more file that
 * builds its payload and hands it to `submit`.
 */
export interface Command {
  readonly name: string;
  /** One line for `cachefleet --help`. */
  readonly summary: string;
  /** Usage, arguments and flags, shown by `cachefleet <name> --help` (the exit codes are appended). */
  readonly help: string;
  /** Flags and arguments after the command name; returns the exit code, or throws (see errors.ts). */
  run(args: string[], session: Session): Promise<ExitCode>;
}

/** Flags every job-submitting command takes; `submit` reads them. */
export const SUBMIT_OPTIONS = {
  detach: { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

export const SUBMIT_HELP = `  --detach              print the job id and exit 0 at once (do not follow the job)
  --json                no progress bar; one JSON object at the end:
                        {"id", "state", "result" | "failedReason", "deduplicated"}`;
