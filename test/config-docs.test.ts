/**
 * docs/configuration.md is generated from the settings schemas (scripts/config-docs.ts): this
 * renders it again and compares, and greps the sources of every package for the environment
 * variables they read, each of which must be in a schema the page is made from.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect, test } from 'vitest';
import { CONFIGURATION_DOC, documentedVariables, renderConfigurationDoc } from '../scripts/config-docs.js';

const ROOT = join(import.meta.dirname, '..');

test('docs/configuration.md is what the schemas say', () => {
  const committed = readFileSync(CONFIGURATION_DOC, 'utf8');
  const rendered = renderConfigurationDoc();
  if (committed !== rendered) {
    const a = committed.split('\n');
    const b = rendered.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    expect.fail(
      `docs/configuration.md differs from the settings schemas (first at line ${at + 1}: ` +
        `${JSON.stringify(a[at])} vs ${JSON.stringify(b[at])}): run npm run docs:config`,
    );
  }
});

/** Every .ts file under the src folders of the packages (not tests, not examples). */
function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) out.push(path);
    }
  };
  for (const top of ['libs', 'apps'])
    for (const pkg of readdirSync(join(ROOT, top))) {
      const src = join(ROOT, top, pkg, 'src');
      if (statSync(src, { throwIfNoEntry: false })?.isDirectory()) walk(src);
    }
  return out;
}

/** `process.env.X`, `env.X`, `env['X']`: the ways the code reads a variable outside a schema. */
const READS = [/\benv\.([A-Z][A-Z0-9_]+)\b/g, /\benv\[['"]([A-Z][A-Z0-9_]+)['"]\]/g];

function variablesRead(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of sources()) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of READS)
      for (const m of text.matchAll(pattern)) {
        const name = m[1] as string;
        if (!found.has(name)) found.set(name, relative(ROOT, file));
      }
  }
  return found;
}

test('every environment variable the code reads is in docs/configuration.md', () => {
  const read = variablesRead();
  // The grep must see the reads it is there for (an empty result would pass anything).
  for (const known of ['LOG_LEVEL', 'CACHEFLEET_API_URL', 'CACHE_REDIS_MODE', 'DATABASE_URL', 'KUBECTL_BIN'])
    expect(read.has(known), `the source grep no longer finds ${known}`).toBe(true);
  const documented = documentedVariables();
  const doc = readFileSync(CONFIGURATION_DOC, 'utf8');
  const missing = [...read].filter(([name]) => !documented.has(name) || !doc.includes(`| \`${name}\` |`));
  expect(
    missing.map(([name, file]) => `${name} (read in ${file})`),
    'add each to its package’s settings schema with a .describe() text, then run npm run docs:config',
  ).toEqual([]);
});
