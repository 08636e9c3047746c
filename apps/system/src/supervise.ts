import type { ChildProcess } from 'node:child_process';

/** First restart delay after a crash, ms; it doubles up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A run this long was healthy: the next crash restarts after FIRST_BACKOFF_MS again. */
const HEALTHY_RUN_MS = 60_000;

interface Spawned<R> {
  readonly child: ChildProcess;
  /** Resolves once the process is ready (with what its ready line said); rejects if it cannot be. */
  readonly ready: Promise<R>;
}

interface ServiceOptions<R> {
  readonly name: string;
  /** Spawns the process and says how to know it is ready; called again for each restart. */
  spawn(): Spawned<R>;
  /** SIGTERM, then SIGKILL after this long. */
  readonly stopGraceMs: number;
  /** One line for the person at the terminal. */
  say(line: string): void;
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `code 1` or `signal SIGKILL`: a child killed by a signal has no exit code. */
function describeExit(exit: Exit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/**
 * One child of `npm start`, kept running: started once (its first start must reach ready), then
 * restarted after a crash with back-off (1 s doubling to 30 s, back to 1 s after a healthy minute),
 * one line each time. `stop()` ends it (SIGTERM, SIGKILL after the grace) and any pending restart;
 * it knows a process killed by a signal has exited (exitCode is null then: the old launcher waited
 * 35 s on such a child before stopping the next one).
 */
export class Service<R> {
  readonly #o: ServiceOptions<R>;
  #child: ChildProcess | undefined;
  #exited: Promise<Exit> | undefined;
  #stopping = false;
  #restart: NodeJS.Timeout | undefined;
  #backoffMs = FIRST_BACKOFF_MS;

  constructor(options: ServiceOptions<R>) {
    this.#o = options;
  }

  /** The pid of the running process, if one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The first start: resolves when ready, rejects if the process exits or fails before. */
  start(): Promise<R> {
    return this.#run(true);
  }

  #run(first: boolean): Promise<R> {
    const { child, ready: isReady } = this.#o.spawn();
    const startedAt = Date.now();
    this.#child = child;
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    this.#exited = exited;
    let ready = false;
    void exited.then((exit) => {
      if (this.#child === child) this.#child = undefined;
      if (this.#stopping || (first && !ready)) return;
      const ran = Date.now() - startedAt;
      if (ran >= HEALTHY_RUN_MS) this.#backoffMs = FIRST_BACKOFF_MS;
      const wait = this.#backoffMs;
      this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs * 2);
      this.#o.say(
        `${this.#o.name} exited (${describeExit(exit)}) after ${Math.round(ran / 1000)} s; restarting in ${wait / 1000} s`,
      );
      this.#restart = setTimeout(() => {
        this.#restart = undefined;
        // A restart that dies before it is ready is said by its own exit line.
        if (!this.#stopping) this.#run(false).catch(() => undefined);
      }, wait);
    });
    return Promise.race([
      isReady.then((r) => {
        ready = true;
        return r;
      }),
      exited.then((exit): never => {
        throw new Error(`${this.#o.name} exited (${describeExit(exit)}) before it was ready`);
      }),
    ]);
  }

  /**
   * No restart from now on, whatever happens to the process. Called on every service before they
   * are stopped one by one: a Ctrl-C reaches the whole process group, so a child may exit on its
   * own before its turn, and must not be started again.
   */
  endRestarts(): void {
    this.#stopping = true;
    clearTimeout(this.#restart);
  }

  /** Ends the process and any pending restart; resolves once it has exited (at once if it has). */
  async stop(): Promise<void> {
    this.endRestarts();
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined) return;
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), this.#o.stopGraceMs);
    await exited;
    clearTimeout(force);
  }

  /** At once, with SIGKILL (a second Ctrl-C). */
  kill(): void {
    this.endRestarts();
    this.#child?.kill('SIGKILL');
  }
}
