/**
 * The queue dashboard in a real browser: headless Chromium (CHROMIUM_PATH, which test/setup points
 * at Debian's /usr/bin/chromium, installing it if needed) driven by playwright-core, against an API
 * pod started in process (`startApi`: the run's PostgreSQL with a schema of its own and 300 products,
 * a private redis-server as cache and queue Redis) and a real worker (`startWorker`) serving both
 * queues. No mocks.
 *
 *  1. a dashboard page without logging in sends the browser to the login form; a wrong token is
 *     refused there, the right one sets a session cookie (not the token) and goes back to the page
 *  2. /admin/login?token=… sets the cookie and redirects to the dashboard, which lists both queues
 *     (`warm`, `invalidate`); the warm queue's failed tab shows a failed job (a warm of a namespace the
 *     worker has no definition for: E_JOB_UNKNOWN_NAMESPACE, not retried by the worker); its "Retry"
 *     button (and the confirmation) make the worker run it again: attemptsMade grows, it fails anew.
 *  3. the fleet page (/admin/fleet) after reads, an invalidation and a job left running: the API pod
 *     and the worker in the processes, the product namespace with its hot id, the running job with
 *     its progress, the invalidation among the last events. FLEET_SCREENSHOT=<file.png> keeps a
 *     screenshot (docs/fleet-page.png was taken so).
 *
 * A missing Chromium fails the file (it is not skipped).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type RunningApi, startApi } from '@cachefleet/api';
import { connectPg, type Db, migrate, seed } from '@cachefleet/catalogue';
import { JobClient, type JobView, loadQueueConfig } from '@cachefleet/jobs';
import { loadWorkerConfig, type RunningWorker, startWorker } from '@cachefleet/worker';
import { Worker } from 'bullmq';
import { pino } from 'pino';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type RedisProcess, startRedis, testDatabaseUrl, waitUntil } from './helpers/index.js';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TAG = randomBytes(4).toString('hex');
const SCHEMA = `browser_${TAG}`;
const PRODUCTS = 300;
const TOKEN = `browser-test-token-${TAG}-0123456789`;
const DATABASE_URL = testDatabaseUrl();
/** Playwright's own waits: well inside the test's time. */
const UI_TIMEOUT_MS = 10_000;
const logger = pino({ level: 'silent' });

let redis: RedisProcess | undefined;
let db: Db | undefined;
let api: RunningApi | undefined;
let worker: RunningWorker | undefined;
let jobs: JobClient | undefined;
let browser: Browser | undefined;

/**
 * Set when Chromium is not installed: every test then fails with this message (an error thrown by
 * the hook would only mark them skipped).
 */
let missingChromium: string | undefined;

function need<T>(value: T | undefined, what: string): T {
  if (missingChromium !== undefined) throw new Error(missingChromium);
  if (value === undefined) throw new Error(`${what} did not start (see beforeAll)`);
  return value;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    missingChromium = `${CHROMIUM} is missing: run the tests through vitest (test/setup installs it) or set CHROMIUM_PATH`;
    return;
  }
  redis = await startRedis();
  db = connectPg(DATABASE_URL);
  await migrate(db, { schema: SCHEMA });
  await seed(db, { schema: SCHEMA, count: PRODUCTS });
  const env: NodeJS.ProcessEnv = {
    API_HOST: '127.0.0.1',
    API_PORT: '0',
    ADMIN_TOKEN: TOKEN,
    API_CRITICAL_WARM: 'false',
    DATABASE_URL,
    CATALOGUE_SCHEMA: SCHEMA,
    CACHE_REDIS_URL: redis.url,
    CACHE_KEY_PREFIX: `browser${TAG}:`,
    QUEUE_REDIS_URL: redis.url,
    QUEUE_PREFIX: `browserq${TAG}`,
    SCHEDULES_ENABLED: 'false',
    WORKER_QUEUES: 'warm:1,invalidate:1',
    WORKER_HTTP_PORT: '0',
    // The fleet page's figures, quickly: a snapshot a second, hot ids flushed every 200 ms.
    CACHE_TELEMETRY_INTERVAL_S: '1',
    CACHE_HOT_KEYS_FLUSH_MS: '200',
  };
  api = await startApi(env, logger);
  worker = await startWorker(loadWorkerConfig(env, []), env, logger);
  jobs = new JobClient(loadQueueConfig(env));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // As root there is no sandbox; the rest keeps Chromium off the (closed) network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    timeout: 30_000,
  });
}, 60_000);

afterAll(async () => {
  const steps: Array<[string, () => Promise<unknown> | undefined]> = [
    ['browser', () => browser?.close()],
    ['job client', () => jobs?.close()],
    ['worker', () => worker?.close()],
    ['api', () => api?.close()],
    ['schema', () => db?.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`)],
    ['database', () => db?.close()],
    ['redis', () => redis?.stop()],
  ];
  const failures: string[] = [];
  // Every step runs, whatever failed before it.
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (err) {
      failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (failures.length > 0) throw new Error(`cleanup failed: ${failures.join('; ')}`);
}, 60_000);

/** Enqueues a warm of a namespace no worker knows and waits until the worker failed it. */
async function failedWarmJob(client: JobClient): Promise<JobView> {
  const { id, deduplicated } = await client.enqueue('warm', {
    type: 'keys',
    namespace: 'nosuch',
    keys: ['1'],
  });
  expect(deduplicated).toBe(false);
  return waitUntil(`job ${id} to fail`, async (note) => {
    const view = await client.job(id);
    note(`state ${view?.state ?? 'unknown'}`);
    return view?.state === 'failed' ? view : undefined;
  });
}

describe('queue dashboard in Chromium', () => {
  it('sends a browser that has not logged in to the login form; a wrong token stays there, the right one opens the dashboard', async () => {
    const base = need(api, 'the API').url;
    const context = await need(browser, 'chromium').newContext();
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      const page = await context.newPage();
      const direct = await page.goto(`${base}/admin/queues/queue/warm`);
      expect(direct?.status()).toBe(200);
      expect(new URL(page.url()).pathname).toBe('/admin/login');
      await page.getByLabel('Admin token', { exact: false }).fill('not-the-token-0123456789');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('That is not the admin token.').waitFor({ state: 'visible' });
      expect(await context.cookies()).toEqual([]);
      const wrongLink = await page.goto(`${base}/admin/login?token=not-the-token-0123456789`);
      expect(wrongLink?.status()).toBe(401);
      expect(await context.cookies()).toEqual([]);

      // The form again, with the right token: back to the page asked for first.
      await page.goto(`${base}/admin/queues/queue/warm`);
      await page.getByLabel('Admin token', { exact: false }).fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(/\/admin\/queues\/queue\/warm$/);
      const [session] = await context.cookies();
      expect(session).toMatchObject({ name: 'cf_admin', path: '/admin', httpOnly: true, sameSite: 'Strict' });
      expect(session?.value).not.toContain(TOKEN);
    } finally {
      await context.close();
    }
  });

  it('logs in, lists both queues, and retries a failed warm job from its failed tab', async () => {
    const base = need(api, 'the API').url;
    const client = need(jobs, 'the job client');
    const failed = await failedWarmJob(client);
    expect(failed.failedReason).toContain('E_JOB_UNKNOWN_NAMESPACE');
    expect(failed.attemptsMade).toBe(1);

    const context = await need(browser, 'chromium').newContext();
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      const page = await context.newPage();
      const login = await page.goto(`${base}/admin/login?token=${encodeURIComponent(TOKEN)}`);
      expect(login?.status()).toBe(200);
      expect(new URL(page.url()).pathname).toBe('/admin/queues');

      // Both queues, in the side bar (links to their pages).
      const sidebar = page.locator('#bull-board-sidebar');
      for (const queue of ['warm', 'invalidate']) {
        await sidebar.getByRole('link', { name: queue, exact: true }).waitFor({ state: 'visible' });
      }

      // The warm queue, then its failed tab.
      await sidebar.getByRole('link', { name: 'warm', exact: true }).click();
      await page.waitForURL(/\/admin\/queues\/queue\/warm/);
      await page.locator('a[href$="/queue/warm?status=failed"]').click();
      await page.waitForURL(/\/queue\/warm\?status=failed$/);

      // The job's card: its id links to the job; its error is shown.
      const card = page.locator('[class*="card-"]', {
        has: page.locator(`a[href*="/queue/warm/${failed.id}"]`),
      });
      await card.waitFor({ state: 'visible' });
      await card.getByText('E_JOB_UNKNOWN_NAMESPACE', { exact: false }).first().waitFor({ state: 'visible' });

      // Its first action is Retry (an icon: the tooltip names it), then the confirmation.
      const retry = card.locator('ul[class*="jobActions"] li button').first();
      await retry.hover();
      await page.getByText('Retry', { exact: true }).waitFor({ state: 'visible' });
      await retry.click();
      const dialog = page.getByRole('alertdialog', { name: 'Are you sure?' });
      await dialog.getByText('retry this job', { exact: false }).waitFor({ state: 'visible' });
      const answered = page.waitForResponse(
        (r) => r.request().method() === 'PUT' && r.url().includes(`/api/queues/warm/${failed.id}/retry`),
      );
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      expect((await answered).ok()).toBe(true);

      // The worker ran it again: one more attempt, failed for the same reason, at a later time.
      const again = await waitUntil(`job ${failed.id} to be retried`, async (note) => {
        const view = await client.job(failed.id);
        note(`state ${view?.state ?? 'unknown'}, attemptsMade ${view?.attemptsMade ?? '?'}`);
        return view !== undefined && view.state === 'failed' && view.attemptsMade > failed.attemptsMade
          ? view
          : undefined;
      });
      expect(again.attemptsMade).toBe(failed.attemptsMade + 1);
      expect(again.failedReason).toContain('E_JOB_UNKNOWN_NAMESPACE');
      expect(again.finishedAt ?? 0).toBeGreaterThanOrEqual(failed.finishedAt ?? Number.POSITIVE_INFINITY);
    } finally {
      await context.close();
    }
  }, 45_000);
});

describe('fleet page in Chromium', () => {
  it('shows the processes, the namespace with its hot id, a running job with its progress and the last invalidation', async () => {
    const base = need(api, 'the API').url;
    const client = need(jobs, 'the job client');
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (let i = 1; i <= 20; i++) await (await fetch(`${base}/products/${i}`)).text();
    // One id read far more than the others: the hot id (reads are sampled 1 in 64).
    for (let k = 0; k < 640; k++) await (await fetch(`${base}/products/7`)).text();
    // An invalidation through the admin API: a job, then the worker's event on the bus.
    const res = await fetch(`${base}/cache/invalidate`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'product', keys: ['12'] }),
    });
    expect(res.status).toBe(202);
    const { jobId } = z.object({ jobId: z.string() }).parse(await res.json());
    await waitUntil(`invalidate job ${jobId}`, async () =>
      (await client.job(jobId))?.state === 'completed' ? true : undefined,
    );
    // A job left running with its progress: a BullMQ worker of this test takes the sweep queue
    // (the fleet's worker serves warm and invalidate only) and holds its job until released.
    const url = new URL(need(redis, 'redis').url);
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const sweeper = new Worker(
      'sweep',
      async (job) => {
        await job.updateProgress({ namespace: 'product', done: 40, total: 100 });
        await held;
      },
      {
        connection: { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null },
        prefix: client.prefix,
      },
    );
    const context = await need(browser, 'chromium').newContext({ viewport: { width: 1500, height: 1100 } });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    try {
      const sweep = await client.enqueue('sweep', { namespace: 'product' });
      await waitUntil(`sweep job ${sweep.id} running`, async () =>
        (await client.job(sweep.id))?.state === 'active' ? true : undefined,
      );
      const page = await context.newPage();
      // Not logged in: the login form, which sends the browser back to the fleet page.
      await page.goto(`${base}/admin/fleet`);
      expect(new URL(page.url()).pathname).toBe('/admin/login');
      await page.getByLabel('Admin token', { exact: false }).fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(/\/admin\/fleet$/);
      // The snapshots and the hot ids arrive within a second or two: reload until they are in.
      await waitUntil('the fleet page to show the traffic', async (note) => {
        await page.goto(`${base}/admin/fleet`);
        const processes = await page.locator('#processes td').allTextContents();
        const first = await page.locator('#namespaces tbody tr').first().locator('td').allTextContents();
        note(`process cells: ${processes.join('|')}; first namespace row: ${first.join('|')}`);
        return processes.includes('api') &&
          processes.includes('worker') &&
          first[0] === 'product' &&
          (first.at(-1) ?? '').split(', ').includes('7')
          ? true
          : undefined;
      });
      const jobsTable = page.locator('#jobs');
      await jobsTable.getByText(sweep.id, { exact: true }).waitFor({ state: 'visible' });
      await jobsTable.getByText('40 / 100 (40%)').waitFor({ state: 'visible' });
      await page.locator('#events').getByText('ids 12').first().waitFor({ state: 'visible' });
      await page.locator('#redis').getByText('master').first().waitFor({ state: 'visible' });
      // Back to the queues from the page's own link.
      const shot = process.env.FLEET_SCREENSHOT;
      if (shot) await page.screenshot({ path: shot, fullPage: true });
      await page.getByRole('link', { name: 'Queues' }).click();
      await page.waitForURL(/\/admin\/queues/);
    } finally {
      release();
      await context.close();
      await sweeper.close();
    }
  }, 60_000);
});
