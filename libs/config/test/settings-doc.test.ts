import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import {
  boolishSchema,
  envDescriptions,
  hostListSchema,
  intSchema,
  settingRows,
  settingsTable,
} from '../src/index.js';

describe('settings documentation read from a schema', () => {
  const schema = z.object({
    PORT: intSchema.min(0).max(65535).default(9465).describe('the port'),
    ON: boolishSchema.default(false).describe('a switch'),
    HOSTS: hostListSchema.optional().describe('the Sentinels'),
    MODE: z.enum(['a', 'b']).default('b').describe('a | b'),
    NAME: z
      .string()
      .regex(/^(x|y)$/)
      .optional()
      .describe('a <name>'),
  });

  test('type, default, range and text come from the schema itself', () => {
    expect(settingRows(schema)).toEqual([
      { name: 'PORT', type: 'integer', default: '9465', allowed: '≥ 0, ≤ 65535', description: 'the port' },
      {
        name: 'ON',
        type: 'boolean',
        default: 'false',
        allowed: 'true, false, 1, 0, yes, no, on, off',
        description: 'a switch',
      },
      {
        name: 'HOSTS',
        type: 'host:port,host:port',
        default: '-',
        allowed: '-',
        description: 'the Sentinels',
      },
      { name: 'MODE', type: 'enum', default: 'b', allowed: 'a, b', description: 'a | b' },
      { name: 'NAME', type: 'string', default: '-', allowed: 'matches `^(x|y)$`', description: 'a <name>' },
    ]);
  });

  test('a pipe or an angle bracket cannot break the Markdown table', () => {
    const lines = settingsTable(settingRows(schema)).split('\n');
    expect(lines.at(-1)).toBe('| `NAME` | string | - | matches `^(x\\|y)$` | a &lt;name> |');
    expect(lines[5]).toBe('| `MODE` | enum | `b` | a, b | a \\| b |');
  });

  test('a field without a description is refused by name', () => {
    expect(() => envDescriptions(z.object({ BARE: z.string().optional() }))).toThrow(
      'BARE: no .describe() text',
    );
  });
});
