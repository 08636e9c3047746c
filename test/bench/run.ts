/**
 * cachefleet benchmark: floors, peers and the project on the same private redis-server.
 * Usage: npm run bench -- [--n <ops>] [--only l1-hit|l2-hit|stampede|invalidation|tags|consistency|warm|bulk-invalidate|http|read-path|read-path-http|migrate|backup|restore|capture|tracing|memory|a9]
 *   [--json <file>]
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis } from '../helpers/index.js';
import { prepare } from '../setup/prepare.js';
import { ADAPTERS } from './adapters/index.js';
import { errorMessage } from './data.js';
import { addRatios, renderTable } from './report.js';
import type { Row, Workload } from './types.js';
import { a9 } from './workloads/a9.js';
import { bulkInvalidate } from './workloads/bulk-invalidate.js';
import { capture } from './workloads/capture.js';
import { consistency } from './workloads/consistency.js';
import { http } from './workloads/http.js';
import { invalidation } from './workloads/invalidation.js';
import { l1Hit } from './workloads/l1-hit.js';
import { l2Hit } from './workloads/l2-hit.js';
import { backup, migrate, restore } from './workloads/lifecycle.js';
import { memory } from './workloads/memory.js';
import { readPath } from './workloads/read-path.js';
import { readPathHttp } from './workloads/read-path-http.js';
import { stampede } from './workloads/stampede.js';
import { tags } from './workloads/tags.js';
import { tracing } from './workloads/tracing.js';
import { warm } from './workloads/warm.js';

const WORKLOADS: readonly Workload[] = [
  l1Hit,
  l2Hit,
  a9,
  stampede,
  invalidation,
  tags,
  consistency,
  warm,
  bulkInvalidate,
  http,
  readPath,
  readPathHttp,
  migrate,
  backup,
  restore,
  capture,
  tracing,
  memory,
];

interface Cli {
  readonly n: number | undefined;
  readonly json: string | undefined;
  readonly only: readonly Workload[];
}

function parseCli(argv: readonly string[]): Cli {
  const { values } = parseArgs({
    args: [...argv],
    options: { n: { type: 'string' }, json: { type: 'string' }, only: { type: 'string' } },
    strict: true,
  });
  const n = values.n === undefined ? undefined : Number(values.n);
  if (n !== undefined && !(Number.isInteger(n) && n > 0))
    throw new Error(`--n must be a positive integer, got ${values.n}`);
  const only = values.only === undefined ? WORKLOADS : WORKLOADS.filter((w) => w.name === values.only);
  if (only.length === 0) {
    throw new Error(`--only must be one of ${WORKLOADS.map((w) => w.name).join(', ')}, got ${values.only}`);
  }
  return { n, json: values.json, only };
}

async function redisVersion(port: number): Promise<string> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  try {
    await client.connect();
    const info = await client.info('server');
    return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  } finally {
    client.disconnect();
  }
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  // The tests' set-up: redis-server found or installed, and a private PostgreSQL when the http
  // workload runs. Its lines go to stderr with the progress notes; stdout is the report.
  const prepared = await prepare({
    chromium: false,
    postgres: [http, readPathHttp, capture, memory].some((w) => cli.only.includes(w)),
    say: (line) => process.stderr.write(`set-up: ${line}\n`),
  });
  const redis = await startRedis().catch((err: unknown) => {
    prepared.stop();
    throw err;
  });
  const rows: Row[] = [];
  try {
    const cpu = cpus();
    const meta = {
      date: new Date().toISOString(),
      node: process.version,
      cpu: `${cpu[0]?.model.trim() ?? 'unknown'} × ${cpu.length}`,
      redis: await redisVersion(redis.port),
      n: cli.n ?? 'workload defaults',
    };
    console.log(`cachefleet bench  ${meta.date}`);
    console.log(
      `node ${meta.node} | cpu ${meta.cpu} | redis ${meta.redis} (private, 127.0.0.1:${redis.port})`,
    );
    console.log(`n: ${meta.n}\n`);
    const runId = `bench-${randomBytes(4).toString('hex')}`;
    for (const workload of cli.only) {
      const workloadRows = await workload.run({
        port: redis.port,
        n: cli.n,
        runId,
        log: (message) => process.stderr.write(`  … ${message}\n`),
      });
      addRatios(workloadRows);
      rows.push(...workloadRows);
      console.log(`\n## ${workload.name}: ${workload.describe}\n`);
      console.log(renderTable(workloadRows));
    }
    console.log('\nconfiguration:');
    for (const a of ADAPTERS) console.log(`  - ${a.name}: ${a.note}`);
    if (cli.json !== undefined) {
      await writeFile(cli.json, `${JSON.stringify({ meta, rows }, null, 2)}\n`);
      console.log(`\nrows written to ${cli.json}`);
    }
  } finally {
    await redis.stop();
    prepared.stop();
  }
  const failed = rows.filter((r) => r.error !== undefined);
  if (failed.length > 0) {
    console.error(
      `\n${failed.length} row(s) failed: ${failed.map((r) => `${r.workload}/${r.name}`).join(', ')}`,
    );
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${errorMessage(err)}`);
  process.exitCode = 1;
});
