import { readFileSync } from 'node:fs';
import { API_ERROR_CODES, ApiError } from '@cachefleet/api';
import { CAPTURE_ERROR_CODES, CaptureError } from '@cachefleet/capture';
import { CATALOGUE_ERROR_CODES, CatalogueError } from '@cachefleet/catalogue';
import { CLI_ERROR_CODES, CliError } from '@cachefleet/cli';
import { CodedError, formatError } from '@cachefleet/config';
import { JOB_ERROR_CODES, JobError } from '@cachefleet/jobs';
import { TELEMETRY_ERROR_CODES, TelemetryError } from '@cachefleet/telemetry';
import { CacheError, ERROR_CODES } from '@cachefleet/tiered-cache';
import { WORKER_ERROR_CODES, WorkerError } from '@cachefleet/worker';
import { describe, expect, it } from 'vitest';

/**
 * One error model (libs/config): every package's codes are a table in its `errors.ts`, and the
 * README that documents the package carries the same table. Checked both ways, so a code added,
 * renamed or removed on one side only fails here.
 */
function pkg<C extends string>(
  name: string,
  codes: Readonly<Record<C, string>>,
  ErrorClass: new (code: C, message: string) => CodedError<C>,
  readme: string,
) {
  const list = Object.keys(codes) as C[];
  return { name, codes: list, readme, errors: () => list.map((code) => new ErrorClass(code, 'm')) };
}

const PACKAGES = [
  pkg('tiered-cache', ERROR_CODES, CacheError, 'README.md'),
  pkg('jobs', JOB_ERROR_CODES, JobError, 'README.md'),
  pkg('api', API_ERROR_CODES, ApiError, 'README.md'),
  pkg('worker', WORKER_ERROR_CODES, WorkerError, 'README.md'),
  pkg('catalogue', CATALOGUE_ERROR_CODES, CatalogueError, 'libs/catalogue/README.md'),
  pkg('cli', CLI_ERROR_CODES, CliError, 'apps/cli/README.md'),
  pkg('capture', CAPTURE_ERROR_CODES, CaptureError, 'libs/capture/README.md'),
  pkg('telemetry', TELEMETRY_ERROR_CODES, TelemetryError, 'README.md'),
];

const ROOT = new URL('../', import.meta.url);

/** The codes in the first cell of a README's table rows (`| \`E_X\` | …`, several per cell allowed). */
function documentedCodes(readme: string): Set<string> {
  const text = readFileSync(new URL(readme, ROOT), 'utf8');
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const first = /^\|([^|]*)\|/.exec(line)?.[1];
    if (first === undefined) continue;
    for (const m of first.matchAll(/`(E_[A-Z0-9_]+)`/g)) out.add(m[1] as string);
  }
  return out;
}

describe('error codes', () => {
  it.each(PACKAGES.map((p) => [p.name, p] as const))('%s: every code is in its README table', (_, p) => {
    const documented = documentedCodes(p.readme);
    const missing = p.codes.filter((code) => !documented.has(code));
    expect(missing, `codes of ${p.name} missing from ${p.readme}'s tables`).toEqual([]);
  });

  it('every code in a README table exists in a package', () => {
    const known = new Set<string>(PACKAGES.flatMap((p) => p.codes));
    for (const readme of new Set(PACKAGES.map((p) => p.readme))) {
      const unknown = [...documentedCodes(readme)].filter((code) => !known.has(code));
      expect(unknown, `codes in ${readme} that no package has`).toEqual([]);
    }
  });

  it('each package error is a CodedError named after its class, its code shown once by formatError', () => {
    for (const p of PACKAGES) {
      for (const error of p.errors()) {
        expect(error, p.name).toBeInstanceOf(CodedError);
        expect(error.name, p.name).toBe(error.constructor.name);
        expect(error.message).toBe('m');
        expect(formatError(error)).toBe(`${error.code}: m`);
      }
    }
  });
});
