import { readFileSync } from 'node:fs';

/**
 * Lua scripts live as files named `<name>-<numKeys>.lua` (STYLE.md) and are registered once per
 * client with `defineCommand`, which sends EVALSHA and falls back to EVAL after a restart.
 */
const FILES = [
  'lock-release-1',
  'tag-add-1',
  'tag-add-many-1',
  'bus-publish-1',
  'fill-1',
  'fill-fenced-2',
  'invalidate-1',
  'warm-n',
] as const;

export interface ScriptDef {
  readonly name: string;
  /** Undefined for `-n` files: the caller passes the number of keys first. */
  readonly numberOfKeys: number | undefined;
  readonly lua: string;
}

export const SCRIPTS: readonly ScriptDef[] = FILES.map((file) => {
  const at = file.lastIndexOf('-');
  return {
    name: camel(file.slice(0, at)),
    numberOfKeys: file.endsWith('-n') ? undefined : Number(file.slice(at + 1)),
    lua: readFileSync(new URL(`./scripts/${file}.lua`, import.meta.url), 'utf8'),
  };
});

function camel(s: string): string {
  return s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
