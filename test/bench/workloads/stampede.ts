import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { STAMPEDE_ADAPTERS } from '../adapters/index.js';
import { ChildLines } from '../child.js';
import { errorMessage } from '../data.js';
import { errorRow } from '../measure.js';
import type { ChildReport } from '../stampede-child.js';
import type { Row, Workload, WorkloadContext } from '../types.js';

const NAME = 'stampede';
const PROCESSES = 8;
const PER_PROCESS = 125;
const LOADER_MS = 50;
const READY_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 30_000;
const CHILD = fileURLToPath(new URL('../stampede-child.ts', import.meta.url));

function parseReport(line: string): ChildReport {
  const value: unknown = JSON.parse(line);
  if (typeof value !== 'object' || value === null || !('localCalls' in value) || !('ms' in value)) {
    throw new Error(`unexpected child report: ${line}`);
  }
  return value as ChildReport;
}

async function runFleet(lib: string, ctx: WorkloadContext, counter: Redis): Promise<Row> {
  const key = `${ctx.runId}-${NAME}-${lib}`;
  const counterKey = `${key}:loader-calls`;
  const args = [String(ctx.port), key, counterKey, String(PER_PROCESS), String(LOADER_MS)];
  const children = Array.from(
    { length: PROCESSES },
    () =>
      new ChildLines(
        spawn(process.execPath, ['--import', 'tsx', CHILD, lib, ...args], {
          stdio: ['pipe', 'pipe', 'inherit'],
        }),
      ),
  );
  let finished = false;
  try {
    for (const c of children) {
      const line = await c.nextLine(READY_TIMEOUT_MS);
      if (line !== 'ready') throw new Error(`child said "${line}" instead of ready`);
    }
    const t0 = performance.now();
    for (const c of children) c.proc.stdin?.write('go\n');
    const reports = await Promise.all(
      children.map(async (c) => parseReport(await c.nextLine(RUN_TIMEOUT_MS))),
    );
    const wallMs = performance.now() - t0;
    finished = true;
    const total = Number((await counter.get(counterKey)) ?? 0);
    const ok = reports.reduce((s, r) => s + r.ok, 0);
    const failed = reports.reduce((s, r) => s + r.bad + r.errors, 0);
    const firstError = reports.find((r) => r.firstError !== undefined)?.firstError;
    const parts = [
      `loader calls ${total} (per process ${reports.map((r) => r.localCalls).join(',')})`,
      `wall ${Math.round(wallMs)} ms`,
      `${ok}/${PROCESSES * PER_PROCESS} ok`,
    ];
    if (failed > 0) parts.push(`${failed} failed${firstError ? `: ${firstError}` : ''}`);
    const spec = STAMPEDE_ADAPTERS[lib];
    return {
      workload: NAME,
      name: spec?.name ?? lib,
      role: spec?.role ?? 'peer',
      // Gets completed per second of fleet wall time; the loader's 50 ms dominates.
      opsPerSec: (PROCESSES * PER_PROCESS) / (wallMs / 1000),
      extra: parts.join(', '),
    };
  } finally {
    for (const c of children) {
      c.proc.stdin?.end();
      if (c.proc.exitCode !== null || c.proc.signalCode !== null) continue;
      // A failed fleet may have children stuck in a library call; a finished one only closes clients.
      if (!finished) c.proc.kill('SIGKILL');
      const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
      await c.exited;
      clearTimeout(timer);
    }
  }
}

export const stampede: Workload = {
  name: NAME,
  describe: `${PROCESSES} processes × ${PER_PROCESS} concurrent gets of one missing key, loader INCR + ${LOADER_MS} ms`,
  async run(ctx) {
    const counter = new Redis({ host: '127.0.0.1', port: ctx.port, lazyConnect: true });
    await counter.connect();
    const rows: Row[] = [];
    try {
      for (const lib of Object.keys(STAMPEDE_ADAPTERS)) {
        ctx.log(`${NAME}: ${lib} (${PROCESSES} processes)`);
        try {
          rows.push(await runFleet(lib, ctx, counter));
        } catch (err) {
          const spec = STAMPEDE_ADAPTERS[lib];
          rows.push(errorRow(NAME, spec?.name ?? lib, spec?.role ?? 'peer', errorMessage(err)));
        }
      }
    } finally {
      await counter.quit();
    }
    return rows;
  },
};
