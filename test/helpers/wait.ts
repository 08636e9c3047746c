/** Polling with a deadline, for the harness's "wait until the servers have settled" steps. */

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly intervalMs?: number;
}

/**
 * Calls `check` until it resolves with something other than undefined, and returns that.
 * `check` may call `note(text)` to say what it is still waiting for; the last note goes into the
 * time-out error, so a failed start says which condition never held. Errors thrown by `check`
 * count as "not yet" (servers restart, sockets get refused) and are noted too.
 */
export async function waitUntil<T>(
  what: string,
  check: (note: (text: string) => void) => Promise<T | undefined>,
  options: WaitOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const intervalMs = options.intervalMs ?? 100;
  const started = Date.now();
  let last = '';
  const note = (text: string) => {
    last = text;
  };
  for (;;) {
    try {
      const value = await check(note);
      if (value !== undefined) return value;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() - started >= timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    }
    await delay(intervalMs);
  }
}
