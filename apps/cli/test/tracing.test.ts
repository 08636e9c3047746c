/**
 * A CLI command into the worker in one trace (docs/tracing.md): the command runs in this process
 * (`run`, as main.ts calls it) with the SDK installed and spans kept in memory, against a real
 * worker and a private redis-server. A bad OTEL_* value stops the real CLI before anything runs.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { installTestTracing, type ReadableSpan } from '@cachefleet/telemetry';
import { type RedisProcess, startRedis, startTestRuntime, type TestRuntime } from '@cachefleet/test';
import { ATTR, SPAN } from '@cachefleet/tiered-cache';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, run } from '../src/index.js';
import { definitions } from './definitions.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEFINITIONS = pathToFileURL(fileURLToPath(new URL('./definitions.ts', import.meta.url))).href;
const QUEUE_PREFIX = `clitr${randomBytes(3).toString('hex')}`;

// Before the worker is built: its queues and cache look for a provider once.
const tracing = installTestTracing('cachefleet-cli-test');
let redis: RedisProcess;
let worker: TestRuntime;
beforeAll(async () => {
  redis = await startRedis();
  worker = await startTestRuntime({
    redisUrl: redis.url,
    prefix: QUEUE_PREFIX,
    definitions,
    queues: [{ queue: 'invalidate', concurrency: 1 }],
  });
});
afterAll(async () => {
  await worker?.close();
  await redis?.stop();
  await tracing.shutdown();
});

const spans = (): ReadableSpan[] => tracing.exporter.getFinishedSpans();
function one(name: string): ReadableSpan {
  const found = spans().filter((s) => s.name === name);
  expect(found, name).toHaveLength(1);
  return found[0] as ReadableSpan;
}

describe('traces', () => {
  it('cachefleet invalidate: the worker processes the job in the command’s trace', async () => {
    let out = '';
    const io = {
      env: {
        QUEUE_REDIS_URL: redis.url,
        QUEUE_PREFIX,
        CACHE_REDIS_URL: redis.url,
        CACHE_KEY_PREFIX: `${QUEUE_PREFIX}:`,
        WORKER_DEFINITIONS: DEFINITIONS,
      },
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (out += t) },
      now: Date.now,
    };
    // It follows the job until it ends: every span of the job has ended when it returns.
    const code = await run(['invalidate', '--namespace', 'product', '--keys', 'a001,a002', '--yes'], io);
    expect(code, out).toBe(EXIT.OK);
    const command = one('cachefleet invalidate');
    expect(command.attributes['cachefleet.command']).toBe('invalidate');
    const traceId = command.spanContext().traceId;
    expect(one('add invalidate.invalidate').parentSpanContext?.spanId).toBe(command.spanContext().spanId);
    const processed = one('process invalidate');
    expect(processed.spanContext().traceId).toBe(traceId);
    const del = one(SPAN.delete);
    expect(del.attributes).toMatchObject({ [ATTR.namespace]: 'product', [ATTR.ids]: 2 });
    expect(del.parentSpanContext?.spanId).toBe(processed.spanContext().spanId);
  });

  it('a bad OTEL_EXPORTER_OTLP_ENDPOINT: the CLI says which variable and exits 2, running nothing', async () => {
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'apps/cli/src/main.ts', 'jobs'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        err += d;
      });
      child.once('error', reject);
      child.once('close', (c) => resolve({ code: c, stderr: err }));
    });
    expect(code).toBe(EXIT.USAGE);
    expect(stderr).toMatch(
      /^cachefleet: E_TELEMETRY_CONFIG: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/,
    );
  });
});
