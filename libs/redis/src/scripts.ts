import { readFileSync } from 'node:fs';
import type { RedisClient } from './client.js';

/**
 * Lua scripts live as files `<name>-<numKeys>.lua` (`-n` when the caller passes the number of
 * keys first) in their owner's folder, each with a header naming its KEYS, ARGV and what it
 * returns. Each owner (the cache, the bus) registers its own set on the clients it uses:
 * `defineCommand` sends EVALSHA and falls back to EVAL after a restart or a failover.
 */
export interface ScriptFile {
  /** The command name on the client. */
  readonly command: string;
  readonly file: string;
  /** Undefined for `-n` files: the caller passes the number of keys first. */
  readonly numberOfKeys: number | undefined;
  readonly lua: string;
}

/**
 * A file, or a `-n` file registered with a fixed number of keys: ioredis's auto-pipelining on a
 * Cluster takes a command's slot from its first argument, so a command whose first argument is
 * its number of keys is grouped with the wrong node there ("All keys in the pipeline should
 * belong to the same slots allocation group").
 */
export type ScriptSource = string | { readonly file: string; readonly keys: number };

/** A loaded set of scripts whose commands `defineScripts` returns as `Commands`. */
export interface ScriptSet<Commands> {
  readonly scripts: readonly ScriptFile[];
  /** Type only: ties the set to its commands' signatures. */
  readonly commands?: Commands;
}

const FILE_NAME = /^[a-z][a-z0-9-]*-(\d+|n)$/;

/**
 * Reads a set once (at module load, not per client): `files` maps each command of `Commands` to
 * its file name without `.lua`, so a command without a file does not compile.
 */
export function loadScripts<Commands>(
  dir: URL,
  files: { readonly [K in keyof Commands & string]: ScriptSource },
): ScriptSet<Commands> {
  const scripts = Object.entries<ScriptSource>(files).map(([command, source]): ScriptFile => {
    const file = typeof source === 'string' ? source : source.file;
    const arity = FILE_NAME.exec(file)?.[1];
    if (arity === undefined) throw new Error(`script ${file}: the name must be <name>-<numKeys>`);
    if (typeof source !== 'string' && arity !== 'n')
      throw new Error(`script ${file}: only a -n script takes a number of keys`);
    const lua = readFileSync(new URL(`${file}.lua`, dir), 'utf8');
    if (!/^-- returns/m.test(lua)) throw new Error(`script ${file}.lua: its header must say what it returns`);
    const numberOfKeys = typeof source !== 'string' ? source.keys : arity === 'n' ? undefined : Number(arity);
    return { command, file, numberOfKeys, lua };
  });
  return { scripts };
}

/** What each client has registered, by command name: a second owner may not take a name. */
const registered = new WeakMap<RedisClient, Map<string, string>>();

/**
 * Registers a set on a client (once per client: a second call is free) and returns the client
 * typed with the set's commands. Throws if another set already registered one of the names.
 */
export function defineScripts<Commands>(client: RedisClient, set: ScriptSet<Commands>): Commands {
  let names = registered.get(client);
  if (names === undefined) {
    names = new Map();
    registered.set(client, names);
  }
  for (const s of set.scripts) {
    const had = names.get(s.command);
    if (had === s.lua) continue;
    if (had !== undefined)
      throw new Error(`a script named ${s.command} is already registered on this client`);
    client.defineCommand(s.command, {
      ...(s.numberOfKeys !== undefined ? { numberOfKeys: s.numberOfKeys } : {}),
      lua: s.lua,
    });
    names.set(s.command, s.lua);
  }
  return client as unknown as Commands;
}
