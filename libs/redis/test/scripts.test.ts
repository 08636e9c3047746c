import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startRedis } from '@cachefleet/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, defineScripts, loadScripts, type RedisClient } from '../src/index.js';

const server = await startRedis();
afterAll(() => server.stop());

const ECHO = `-- Returns its key and argument.
-- KEYS[1]  a key
-- ARGV[1]  a value
-- returns  "<key>=<value>"
return KEYS[1] .. '=' .. ARGV[1]
`;
const COUNT = `-- Counts its keys.
-- KEYS[..]  any keys
-- returns   how many keys it was given
return #KEYS
`;

interface Echo {
  echoIt(key: string, value: string): Promise<string>;
}
interface Counts {
  countKeys(numKeys: number, ...keys: string[]): Promise<number>;
  countTwo(a: string, b: string): Promise<number>;
}

let dir: string;
let url: URL;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cachefleet-scripts-'));
  url = pathToFileURL(`${dir}/`);
  await writeFile(join(dir, 'echo-1.lua'), ECHO);
  await writeFile(join(dir, 'count-n.lua'), COUNT);
  await writeFile(join(dir, 'bare-1.lua'), 'return 1\n');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function client(): Promise<RedisClient> {
  const c = createRedisClient({ mode: 'single', url: server.url }, { role: 'cache' });
  await c.connect();
  return c;
}

describe('scripts registered by their owner', () => {
  it('a new client carries no scripts, a queue client none of the cache: each owner registers its own', async () => {
    const c = await client();
    const queue = createRedisClient({ mode: 'single', url: server.url }, { role: 'queue' });
    try {
      expect(Object.keys(c.scriptsSet)).toEqual([]);
      expect(Object.keys(queue.scriptsSet)).toEqual([]);
      const echo = defineScripts(c, loadScripts<Echo>(url, { echoIt: 'echo-1' }));
      expect(await echo.echoIt('k', 'v')).toBe('k=v');
      expect(Object.keys(c.scriptsSet)).toEqual(['echoIt']);
      expect(Object.keys(queue.scriptsSet)).toEqual([]);
    } finally {
      c.disconnect();
      queue.disconnect();
    }
  });

  it('runs -n scripts with the number of keys first, or with a number fixed at registration', async () => {
    const c = await client();
    try {
      const counts = defineScripts(
        c,
        loadScripts<Counts>(url, { countKeys: 'count-n', countTwo: { file: 'count-n', keys: 2 } }),
      );
      expect(await counts.countKeys(3, 'a', 'b', 'c')).toBe(3);
      expect(await counts.countTwo('a', 'b')).toBe(2);
    } finally {
      c.disconnect();
    }
  });

  it('defines a set once per client, and refuses a second owner of a command name', async () => {
    const c = await client();
    try {
      const set = loadScripts<Echo>(url, { echoIt: 'echo-1' });
      expect(defineScripts(c, set)).toBe(defineScripts(c, set));
      const clash = loadScripts<{ echoIt(): Promise<number> }>(url, { echoIt: { file: 'count-n', keys: 0 } });
      expect(() => defineScripts(c, clash)).toThrow(/already registered/);
    } finally {
      c.disconnect();
    }
  });

  it('refuses files that break the naming or header rules', () => {
    expect(() => loadScripts<Echo>(url, { echoIt: 'echo' })).toThrow(/<name>-<numKeys>/);
    expect(() => loadScripts<Echo>(url, { echoIt: 'bare-1' })).toThrow(/what it returns/);
    expect(() => loadScripts<Echo>(url, { echoIt: { file: 'echo-1', keys: 1 } })).toThrow(/-n script/);
  });
});
