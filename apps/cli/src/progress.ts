import { clip } from './format.js';
import type { Output } from './session.js';

export interface ProgressState {
  /** 0–1 when the job reports how far it is; undefined draws no bar, only the text. */
  readonly fraction: number | undefined;
  readonly text: string;
}

const BAR_WIDTH = 24;
/** Non-TTY output (CI logs, pipes): one line per change at most this often. */
const LINE_INTERVAL_MS = 1_000;

/**
 * A one-line progress display. On a terminal it redraws the line in place (`\r`, erase to the end
 * of line); elsewhere it prints a line when the text changed, at most one a second, so a log of a
 * 20-minute warm stays readable.
 */
export class ProgressBar {
  readonly #out: Output;
  readonly #now: () => number;
  #lastText: string | undefined;
  #lastPrinted = Number.NEGATIVE_INFINITY;
  #drawn = false;

  constructor(out: Output, now: () => number) {
    this.#out = out;
    this.#now = now;
  }

  update(state: ProgressState): void {
    const line = render(state);
    if (this.#out.isTTY) {
      if (line === this.#lastText) return;
      this.#lastText = line;
      this.#drawn = true;
      this.#out.write(`\r${clip(line, this.#width())}\x1b[K`);
      return;
    }
    const now = this.#now();
    if (line === this.#lastText || now - this.#lastPrinted < LINE_INTERVAL_MS) return;
    this.#lastText = line;
    this.#lastPrinted = now;
    this.#out.write(`${line}\n`);
  }

  /** Terminal width (0 when unknown, e.g. under script(1)): lines longer than it would wrap, and \r would redraw only the last row. */
  #width(): number {
    return Math.max(20, (this.#out.columns || 80) - 1);
  }

  /** Draws the final state (always, whatever the interval) and ends the line. */
  finish(state?: ProgressState): void {
    if (state !== undefined) {
      const line = render(state);
      if (this.#out.isTTY) {
        this.#out.write(`\r${clip(line, this.#width())}\x1b[K\n`);
        this.#drawn = false;
      } else if (line !== this.#lastText) this.#out.write(`${line}\n`);
      this.#lastText = line;
      return;
    }
    if (this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }
}

export function render(state: ProgressState): string {
  if (state.fraction === undefined) return state.text;
  const f = Math.min(1, Math.max(0, state.fraction));
  const full = Math.round(f * BAR_WIDTH);
  const percent = `${Math.floor(f * 100)}%`.padStart(4);
  return `[${'#'.repeat(full)}${'-'.repeat(BAR_WIDTH - full)}] ${percent} ${state.text}`.trimEnd();
}
