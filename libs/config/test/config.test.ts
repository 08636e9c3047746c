import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  boolishSchema,
  CodedError,
  formatError,
  hostListSchema,
  isCodedError,
  issueMessage,
  parseEnv,
  pickEnv,
  portSchema,
} from '../src/index.js';

class DemoError extends CodedError<'E_DEMO_CONFIG' | 'E_DEMO_OTHER'> {}

const schema = z.object({
  DEMO_PORT: portSchema.default(80),
  DEMO_ON: boolishSchema.default(false),
  DEMO_NODES: hostListSchema.optional(),
});
const load = (env: Record<string, string | undefined>) =>
  parseEnv(schema, env, (message, cause) => new DemoError('E_DEMO_CONFIG', message, { cause }));

describe('settings', () => {
  it('reads only the variables the schema names; empty counts as unset', () => {
    expect(pickEnv({ A: '1', B: '', C: undefined, D: 'x' }, ['A', 'B', 'C'])).toEqual({ A: '1' });
    expect(load({ DEMO_PORT: '', DEMO_ON: 'yes', OTHER: 'ignored' })).toEqual({
      DEMO_PORT: 80,
      DEMO_ON: true,
    });
    expect(load({ DEMO_NODES: ' a:1, b:2 ' }).DEMO_NODES).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ]);
  });

  it('refuses a bad value with the package error, naming the variable and keeping the zod error', () => {
    for (const [env, name] of [
      [{ DEMO_PORT: '70000' }, 'DEMO_PORT'],
      [{ DEMO_PORT: 'abc' }, 'DEMO_PORT'],
      [{ DEMO_ON: 'maybe' }, 'DEMO_ON'],
      [{ DEMO_NODES: 'nohost' }, 'DEMO_NODES'],
    ] as const) {
      const error = (() => {
        try {
          load(env);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(DemoError);
      expect(error).toMatchObject({
        code: 'E_DEMO_CONFIG',
        message: expect.stringMatching(`^${name}(\\.\\d+)?: `),
      });
      expect((error as Error).cause).toBeInstanceOf(z.ZodError);
    }
  });

  it('words the first issue as NAME: problem, with the caller naming fields and the whole input', () => {
    const body = z.strictObject({ a: z.object({ b: z.number() }) });
    const bad = body.safeParse({ a: { b: 'x' } });
    const whole = body.safeParse('x');
    if (bad.success || whole.success) throw new Error('expected failures');
    expect(issueMessage(bad.error)).toMatch(/^a\.b: /);
    expect(issueMessage(bad.error, { name: (path) => `--${String(path[0])}` })).toMatch(/^--a: /);
    expect(issueMessage(whole.error)).toMatch(/^\(root\): /);
    expect(issueMessage(whole.error, { root: '(body)' })).toMatch(/^\(body\): /);
  });
});

describe('coded errors', () => {
  it('keep the code apart from the message, the cause, and their class name', () => {
    const cause = new Error('socket closed');
    const e = new DemoError('E_DEMO_OTHER', 'it broke', { cause });
    expect(e).toBeInstanceOf(Error);
    expect(isCodedError(e)).toBe(true);
    expect(isCodedError(cause)).toBe(false);
    expect({ name: e.name, code: e.code, message: e.message, cause: e.cause }).toEqual({
      name: 'DemoError',
      code: 'E_DEMO_OTHER',
      message: 'it broke',
      cause,
    });
    expect(String(e)).toBe('DemoError [E_DEMO_OTHER]: it broke');
  });

  it('are written CODE: message once, wherever a person reads them', () => {
    expect(formatError(new DemoError('E_DEMO_OTHER', 'it broke'))).toBe('E_DEMO_OTHER: it broke');
    expect(formatError(new TypeError('plain'))).toBe('plain');
    expect(formatError('a string')).toBe('a string');
  });
});
