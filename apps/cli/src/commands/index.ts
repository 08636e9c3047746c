import type { Command } from '../command.js';
import { backup, backups, restore } from './backup.js';
import { capture } from './capture.js';
import { deployCmd } from './deploy.js';
import { invalidate } from './invalidate.js';
import { jobs } from './jobs.js';
import { migrate } from './migrate.js';
import { rollout } from './rollout.js';
import { status } from './status.js';
import { sweep } from './sweep.js';
import { top } from './top.js';
import { tune } from './tune.js';
import { warm } from './warm.js';

/** Every command, in the order `cachefleet --help` lists them. A new one is one more line here. */
export const COMMANDS: readonly Command[] = [
  warm,
  invalidate,
  migrate,
  sweep,
  backup,
  restore,
  backups,
  tune,
  rollout,
  jobs,
  status,
  top,
  capture,
  deployCmd,
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
