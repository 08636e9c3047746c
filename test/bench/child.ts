import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** `nextLine` found nothing within its time: the child may just be slow (callers may ask again). */
export class ChildTimeoutError extends Error {}

/** A child's stdout as a queue of lines, so the parent can await "ready" and then the report. */
export class ChildLines {
  readonly #lines: string[] = [];
  readonly #waiters: Array<() => void> = [];
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    if (proc.stdout === null) throw new Error('child has no stdout pipe');
    createInterface({ input: proc.stdout }).on('line', (line) => {
      this.#lines.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    void this.exited.then(() => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  async nextLine(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.#lines.shift();
      if (line !== undefined) return line;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        throw new Error(`child ${this.proc.pid} exited (${this.proc.exitCode ?? this.proc.signalCode})`);
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new ChildTimeoutError(`child ${this.proc.pid} sent nothing within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
