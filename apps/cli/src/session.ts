import type { JobClient, NamespaceRule } from '@cachefleet/jobs';
import { type ConnectedJobs, closeJobs, connectJobs } from './connect.js';
import { loadNamespaceRules } from './definitions.js';

/** Where the CLI writes; process.stdout / process.stderr in the real program. */
export interface Output {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface Io {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: Output;
  readonly stderr: Output;
  /** Injectable for tests of the progress bar. */
  readonly now: () => number;
  /**
   * Asks the person at the terminal a yes/no question (true: yes). Undefined when no one can be
   * asked (stdin or stderr not a terminal): a destructive command then needs --yes.
   */
  readonly confirm?: (question: string) => Promise<boolean>;
}

/**
 * One run of the CLI: its output and the connections it opened (made on first use, so `--help`
 * and usage errors need no Redis), all closed by `close()` so the process exits by itself.
 */
export class Session {
  readonly io: Io;
  #jobs: Promise<ConnectedJobs> | undefined;
  #rules: Promise<readonly NamespaceRule[]> | undefined;
  readonly #closers: (() => Promise<void>)[] = [];

  constructor(io: Io) {
    this.io = io;
  }

  get env(): Readonly<Record<string, string | undefined>> {
    return this.io.env;
  }

  /** A line of the command's output (stdout). */
  out(line = ''): void {
    this.io.stdout.write(`${line}\n`);
  }

  /** A note for the person at the terminal (stderr), kept out of what scripts capture. */
  note(line: string): void {
    this.io.stderr.write(`${line}\n`);
  }

  /** The queue client, connected (E_CLI_UNREACHABLE after 3 s), its system id checked. */
  async jobs(): Promise<JobClient> {
    return (await this.connected()).jobs;
  }

  /** The queue client with the system id its Redis holds and where it went. */
  connected(): Promise<ConnectedJobs> {
    this.#jobs ??= connectJobs(this.io.env).then((connected) => {
      this.onClose(() => closeJobs(connected.jobs));
      return connected;
    });
    return this.#jobs;
  }

  /** The namespaces of the definitions module (WORKER_DEFINITIONS), to check payloads with. */
  namespaceRules(): Promise<readonly NamespaceRule[]> {
    this.#rules ??= loadNamespaceRules(this.io.env);
    return this.#rules;
  }

  /** Registers something to release at the end of the run (last registered, first closed). */
  onClose(close: () => Promise<void>): void {
    this.#closers.push(close);
  }

  async close(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) await close().catch(() => undefined);
  }
}
