import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodedError, redisChoices, redisUrlOf, requireRedisUrl } from '../src/index.js';

class DemoError extends CodedError<'E_DEMO_CONFIG'> {}
const fail = (message: string) => new DemoError('E_DEMO_CONFIG', message);

/** The message of the coded error `fn` throws (it must throw one). */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DemoError);
    return (error as DemoError).message;
  }
  throw new Error('expected a coded error');
}

describe('one way to name each Redis: REDIS_URL for both roles, a role variable splits it off', () => {
  it('REDIS_URL alone names both roles; a role variable wins for its role only', () => {
    const env = { REDIS_URL: 'redis://shared:7000' };
    expect(requireRedisUrl(env, 'cache', fail)).toEqual({ url: 'redis://shared:7000', from: 'REDIS_URL' });
    expect(requireRedisUrl(env, 'queue', fail)).toEqual({ url: 'redis://shared:7000', from: 'REDIS_URL' });
    const split = { ...env, QUEUE_REDIS_URL: 'redis://q:7001/2' };
    expect(requireRedisUrl(split, 'queue', fail)).toEqual({
      url: 'redis://q:7001/2',
      from: 'QUEUE_REDIS_URL',
    });
    expect(requireRedisUrl(split, 'cache', fail).from).toBe('REDIS_URL');
    // The older rule stays: with only the cache's server named, the queue shares it.
    expect(requireRedisUrl({ CACHE_REDIS_URL: 'redis://c:1' }, 'queue', fail).from).toBe('CACHE_REDIS_URL');
    // Empty counts as unset.
    expect(redisUrlOf({ REDIS_URL: '', CACHE_REDIS_URL: '' }, 'cache', fail)).toBeUndefined();
  });

  it('none set: a coded error naming REDIS_URL and the role variable, never 127.0.0.1:6379', () => {
    expect(refusal(() => requireRedisUrl({}, 'queue', fail))).toMatch(
      /^REDIS_URL: required \(or QUEUE_REDIS_URL for the queue Redis alone\)/,
    );
    expect(refusal(() => requireRedisUrl({}, 'cache', fail))).toMatch(/or CACHE_REDIS_URL/);
  });

  it('says which Redis each role uses and from which variable, without the password', () => {
    expect(
      redisChoices({ REDIS_URL: 'redis://:secret@h:1', CACHE_REDIS_URL: 'rediss://u:pw@c:2/3' }),
    ).toEqual({ cache: 'rediss://c:2/3 (from CACHE_REDIS_URL)', queue: 'redis://h:1 (from REDIS_URL)' });
    expect(redisChoices({ QUEUE_REDIS_MODE: 'sentinel' }).queue).toBe('sentinel (QUEUE_REDIS_*)');
    expect(redisChoices({}).cache).toBe('none set');
  });

  it('accepts the URLs ioredis reads: user, password, TLS, a database number', () => {
    for (const url of [
      'redis://127.0.0.1:6379',
      'redis://h',
      'rediss://default:p%40ss@example.com:6380/15',
      'redis://[::1]:7000/0',
    ])
      expect(redisUrlOf({ REDIS_URL: url }, 'cache', fail)?.url).toBe(url);
  });

  it('a bad value in any of the variables: a coded error naming that variable, never a crash', () => {
    const names = ['REDIS_URL', 'CACHE_REDIS_URL', 'QUEUE_REDIS_URL'] as const;
    const bad = fc.oneof(
      fc.string(),
      fc.constantFrom(
        'http://x:1',
        'redis://',
        'redis://h:0',
        'redis://h:99999',
        'redis://h:1/x',
        'redis://h:1?a=b',
      ),
      fc.string().map((s) => `redis://${s}`),
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...names),
        bad,
        fc.constantFrom('cache', 'queue') as fc.Arbitrary<'cache' | 'queue'>,
        (name, value, role) => {
          let result: ReturnType<typeof redisUrlOf>;
          try {
            result = redisUrlOf({ [name]: value }, role, fail);
          } catch (error) {
            expect(error).toBeInstanceOf(DemoError);
            // Our own words after the name: the value (it may hold a password) is never repeated.
            expect((error as Error).message).toMatch(
              new RegExp(
                `^${name}: (must start with|not a URL|has no host|port out of range|the path must|no \\?query)`,
              ),
            );
            return;
          }
          // Accepted (or not this role's variable): then it is a URL a client can open.
          if (result !== undefined) expect(() => new URL(result?.url ?? '')).not.toThrow();
        },
      ),
      { numRuns: 500 },
    );
  });
});
