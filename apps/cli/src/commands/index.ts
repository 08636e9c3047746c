import type { Command } from '../command.js';
import { capture } from './capture.js';
import { invalidate } from './invalidate.js';
import { jobs } from './jobs.js';
import { status } from './status.js';
import { top } from './top.js';
import { warm } from './warm.js';

/** Every command, in the order `cachefleet --help` lists them. A new one is one more line here. */
export const COMMANDS: readonly Command[] = [warm, invalidate, jobs, status, top, capture];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
