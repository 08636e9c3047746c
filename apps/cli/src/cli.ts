import { inSpan } from '@cachefleet/telemetry';
import { usage } from './args.js';
import { findCommand } from './commands/index.js';
import { describeFailure, EXIT, type ExitCode } from './errors.js';
import { commandHelp, globalHelp } from './help.js';
import { type Io, Session } from './session.js';

/**
 * One run of `cachefleet`: dispatches to the command, turns any error into one stderr line with
 * its code and the documented exit code, and closes every connection it opened whatever happened.
 */
export async function run(argv: readonly string[], io: Io): Promise<ExitCode> {
  const [name, ...args] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    const about = args[0] !== undefined ? findCommand(args[0]) : undefined;
    io.stdout.write(`${about ? commandHelp(about) : globalHelp()}\n`);
    return EXIT.OK;
  }
  if (name === undefined) {
    io.stderr.write(`${globalHelp()}\n`);
    return EXIT.USAGE;
  }
  const command = findCommand(name);
  if (command === undefined) {
    const error = usage(`unknown command ${JSON.stringify(name)} (see cachefleet --help)`);
    io.stderr.write(`cachefleet: ${describeFailure(error).text}\n`);
    return EXIT.USAGE;
  }
  if (wantsHelp(args)) {
    io.stdout.write(`${commandHelp(command)}\n`);
    return EXIT.OK;
  }
  const session = new Session(io);
  try {
    // The command's span: the jobs it enqueues carry its trace into the worker (docs/tracing.md).
    return await inSpan(`cachefleet ${name}`, { 'cachefleet.command': name }, () =>
      command.run(args, session),
    );
  } catch (error) {
    const failure = describeFailure(error);
    io.stderr.write(`cachefleet ${name}: ${failure.text}\n`);
    return failure.exit;
  } finally {
    await session.close();
  }
}

/** `--help` / `-h` anywhere before a `--` terminator. */
function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
