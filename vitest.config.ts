import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Finds or installs redis-server and Chromium, starts a private PostgreSQL (README "Tests").
    globalSetup: ['test/setup/global.ts'],
    include: ['libs/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Tests start their own redis-server processes; two cores, so keep files in few workers.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
