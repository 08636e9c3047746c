/**
 * The PostgreSQL of this test run: the private server test/setup starts (or the caller's own, when
 * TEST_DATABASE_URL was set before the run). Never a default address: a test that found some other
 * server at 127.0.0.1:5432 would pass or fail for reasons outside this repository.
 */
export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (url === undefined || url === '') {
    throw new Error(
      'TEST_DATABASE_URL is unset: run tests through vitest (test/setup/global.ts starts a private PostgreSQL) or set it',
    );
  }
  return url;
}
