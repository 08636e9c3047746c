import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Finds or installs redis-server and Chromium, starts a private PostgreSQL (README "Tests").
    globalSetup: ['test/setup/global.ts'],
    include: ['libs/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Tests start their own redis-server processes; two cores, so keep files in few workers.
    pool: 'forks',
    maxWorkers: 2,
    // A bound on a hung test, not a timing: several multi-process tests take 20–30 s when the machine
    // is slow (a CI run at 18:04 on 2026-12-02 took 874 s where one at 15:50 took 515 s).
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
