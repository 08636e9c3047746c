/**
 * Writes docs/configuration.md from the settings schemas of every package (`npm run docs:config`).
 * Each table is made from a zod schema the loaders parse with: the variable names, types, defaults,
 * ranges and texts (`.describe()`) are the loader's own, so the page cannot drift from the code;
 * test/config-docs.test.ts renders it again and compares.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_ENV_SCHEMA, ROLLOUT_ENV_SCHEMA } from '@cachefleet/api';
import { CAPTURE_ENV_SCHEMA } from '@cachefleet/capture';
import { CATALOGUE_ENV_SCHEMA } from '@cachefleet/catalogue';
import { CLI_ENV_SCHEMA } from '@cachefleet/cli';
import { REDIS_URL_ENV_SCHEMA, settingRows, settingsTable } from '@cachefleet/config';
import {
  BACKUP_ENV_SCHEMA,
  QUEUE_ENV_SCHEMA,
  QUEUE_METRICS_ENV_SCHEMA,
  SCHEDULE_CRONS_ENV_SCHEMA,
  SCHEDULES_ENV_SCHEMA,
  SYSTEM_ID_ENV_SCHEMA,
  TUNE_ENV_SCHEMA,
} from '@cachefleet/jobs';
import { SYSTEM_ENV_SCHEMA } from '@cachefleet/system';
import { TRACING_ENV_SCHEMA } from '@cachefleet/telemetry';
import { CACHE_ENV_SCHEMA, ENV_VARS as CACHE_OPTION_OF, cacheOptionsSchema } from '@cachefleet/tiered-cache';
import { WORKER_ENV_SCHEMA } from '@cachefleet/worker';
import { z } from 'zod';

export const CONFIGURATION_DOC = join(
  fileURLToPath(new URL('..', import.meta.url)),
  'docs',
  'configuration.md',
);

const PROCESSES = {
  api: 'API pod (`npm run api`, apps/api)',
  worker: 'worker (`npm run worker`, apps/worker)',
  capture: 'capture reader (a worker with `capture` in `--queues`)',
  cli: 'CLI (`cachefleet`, apps/cli)',
  start: '`npm start` (apps/system)',
} as const;
type Process = keyof typeof PROCESSES;

interface Group {
  readonly title: string;
  /** Where the schema lives and what reads it. */
  readonly source: string;
  readonly schemas: readonly z.ZodObject[];
  readonly readBy: readonly Process[];
  /** The schema a variable's value goes through next, for the defaults and ranges it holds. */
  readonly resolvedBy?: (name: string) => z.ZodType | undefined;
}

/** The cache option a CACHE_* variable sets (ENV_VARS maps each to its path), unwrapped. */
function cacheOption(name: string): z.ZodType | undefined {
  const path = (CACHE_OPTION_OF as Readonly<Record<string, string>>)[name];
  if (path === undefined || !/^[a-zA-Z0-9.]+$/.test(path)) return undefined;
  let at: z.ZodType | undefined = cacheOptionsSchema;
  for (const key of path.split('.')) {
    while (at instanceof z.ZodDefault || at instanceof z.ZodPrefault || at instanceof z.ZodOptional)
      at = at.unwrap() as z.ZodType;
    at = at instanceof z.ZodObject ? (at.shape[key] as z.ZodType | undefined) : undefined;
  }
  return at;
}

/** Every settings schema of every process; a new one is one more entry. */
export const GROUPS: readonly Group[] = [
  {
    title: 'Redis addresses',
    source: '`libs/config` `REDIS_URL_ENV_SCHEMA` (`redisUrlOf`, single mode)',
    schemas: [REDIS_URL_ENV_SCHEMA],
    readBy: ['api', 'worker', 'cli'],
  },
  {
    title: 'Cache (the library)',
    source: '`libs/tiered-cache` `CACHE_ENV_SCHEMA` (`loadCacheConfig`)',
    schemas: [CACHE_ENV_SCHEMA],
    readBy: ['api', 'worker', 'cli'],
    resolvedBy: cacheOption,
  },
  {
    title: 'Queue Redis',
    source: '`libs/jobs` `QUEUE_ENV_SCHEMA` (`loadQueueConfig`)',
    schemas: [QUEUE_ENV_SCHEMA],
    readBy: ['api', 'worker', 'cli'],
  },
  {
    title: 'System id',
    source: '`libs/jobs` `SYSTEM_ID_ENV_SCHEMA` (`loadSystemId`)',
    schemas: [SYSTEM_ID_ENV_SCHEMA],
    readBy: ['api', 'worker', 'cli', 'start'],
  },
  {
    title: 'Queue metrics',
    source: '`libs/jobs` `QUEUE_METRICS_ENV_SCHEMA` (`loadQueueMetricsLeaseMs`)',
    schemas: [QUEUE_METRICS_ENV_SCHEMA],
    readBy: ['api', 'worker'],
  },
  {
    title: 'Tracing (OpenTelemetry)',
    source: '`libs/telemetry` `TRACING_ENV_SCHEMA` (`loadTracingConfig`)',
    schemas: [TRACING_ENV_SCHEMA],
    readBy: ['api', 'worker', 'cli'],
  },
  {
    title: 'Catalogue (the sample definitions module)',
    source: '`libs/catalogue` `CATALOGUE_ENV_SCHEMA` (`loadCatalogueEnv`)',
    schemas: [CATALOGUE_ENV_SCHEMA],
    readBy: ['api', 'worker', 'capture', 'cli'],
  },
  {
    title: 'API pod',
    source: '`apps/api` `API_ENV_SCHEMA` (`loadApiConfig`)',
    schemas: [API_ENV_SCHEMA],
    readBy: ['api'],
  },
  {
    title: 'Cache rollout',
    source: '`apps/api` `ROLLOUT_ENV_SCHEMA` (`rolloutOptionsFromEnv`)',
    schemas: [ROLLOUT_ENV_SCHEMA],
    readBy: ['api'],
  },
  {
    title: 'Worker',
    source: '`apps/worker` `WORKER_ENV_SCHEMA` (`loadWorkerConfig`; `--queues` wins over WORKER_QUEUES)',
    schemas: [WORKER_ENV_SCHEMA],
    readBy: ['worker'],
  },
  {
    title: 'Schedules',
    source: '`libs/jobs` `SCHEDULES_ENV_SCHEMA`, `SCHEDULE_CRONS_ENV_SCHEMA` (`loadSchedules`)',
    schemas: [SCHEDULES_ENV_SCHEMA, SCHEDULE_CRONS_ENV_SCHEMA],
    readBy: ['worker'],
  },
  {
    title: 'Backups',
    source: '`libs/jobs` `BACKUP_ENV_SCHEMA` (`loadBackupConfig`)',
    schemas: [BACKUP_ENV_SCHEMA],
    readBy: ['worker', 'cli'],
  },
  {
    title: 'Tuner',
    source: '`libs/jobs` `TUNE_ENV_SCHEMA` (`loadTuneConfig`)',
    schemas: [TUNE_ENV_SCHEMA],
    readBy: ['worker'],
  },
  {
    title: 'Change capture',
    source: '`libs/capture` `CAPTURE_ENV_SCHEMA` (`loadCaptureConfig`)',
    schemas: [CAPTURE_ENV_SCHEMA],
    readBy: ['capture', 'cli'],
  },
  {
    title: 'CLI',
    source: '`apps/cli` `CLI_ENV_SCHEMA`',
    schemas: [CLI_ENV_SCHEMA],
    readBy: ['cli'],
  },
  {
    title: '`npm start`',
    source: '`apps/system` `SYSTEM_ENV_SCHEMA` (start.ts; the children it starts read their own groups)',
    schemas: [SYSTEM_ENV_SCHEMA],
    readBy: ['start'],
  },
];

function anchor(title: string): string {
  return title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .trim()
    .replace(/ /g, '-');
}

/** The whole page; deterministic (no date), so the committed file can be compared. */
export function renderConfigurationDoc(): string {
  const lines: string[] = [
    '# Configuration',
    '',
    '<!-- Generated by `npm run docs:config` (scripts/config-docs.ts) from the zod settings schemas. Do not edit:',
    '     test/config-docs.test.ts fails when this file differs from what the schemas say. -->',
    '',
    'Every process reads its settings from environment variables, each through a zod schema that',
    'validates it at start (a bad value stops the process with one `E_<PACKAGE>_CONFIG` line naming the',
    'variable, never its value). Empty counts as unset. The tables below are made from those schemas:',
    '`type` and `allowed` are what the schema checks on the text of the variable, `default` what it',
    'takes when unset (`-`: none; the meaning says what unset does then).',
    '',
    '## Which process reads what',
    '',
    '| process | settings |',
    '| --- | --- |',
    ...(Object.keys(PROCESSES) as Process[]).map(
      (p) =>
        `| ${PROCESSES[p]} | ${GROUPS.filter((g) => g.readBy.includes(p))
          .map((g) => `[${g.title.replace(/`/g, '')}](#${anchor(g.title)})`)
          .join(', ')} |`,
    ),
    '',
    'A variable listed in two groups (`DATABASE_URL`, `ADMIN_TOKEN`, `API_PORT` …) means the same',
    'thing in each; `npm start` sets some of its children’s settings from its own (its table says which).',
  ];
  for (const g of GROUPS) {
    lines.push(
      '',
      `## ${g.title}`,
      '',
      `Read by: ${g.readBy.map((p) => PROCESSES[p]).join('; ')}. Schema: ${g.source}.`,
      '',
      settingsTable(g.schemas.flatMap((s) => settingRows(s, g.resolvedBy))),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Every variable the page documents. */
export function documentedVariables(): Set<string> {
  return new Set(GROUPS.flatMap((g) => g.schemas.flatMap((s) => Object.keys(s.shape))));
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONFIGURATION_DOC, renderConfigurationDoc());
  process.stdout.write(`wrote ${CONFIGURATION_DOC}\n`);
}
