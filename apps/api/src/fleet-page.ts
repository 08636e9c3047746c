import { formatBytes as bytes } from '@cachefleet/config';
import { type JobClient, jobTitle, QUEUE_NAMES } from '@cachefleet/jobs';
import type {
  Cache,
  CacheEvent,
  FleetView,
  HotKey,
  PodSnapshot,
  RecentEvent,
} from '@cachefleet/tiered-cache';
import type { FastifyInstance } from 'fastify';
import { queueCall } from './admin.js';
import type { AdminGuard } from './auth.js';
import { DASHBOARD_PATH } from './dashboard.js';
import { escapeHtml as h } from './html.js';

export const FLEET_PATH = '/admin/fleet';

/** Random keys sized per page view for the L2 estimates. */
const SAMPLES = 200;
const HOT_IDS = 5;
const RECENT_EVENTS = 20;
const RUNNING_JOBS = 20;
/** The page reloads itself this often, s. */
const REFRESH_S = 5;

interface RunningJob {
  readonly id: string;
  readonly queue: string;
  readonly title: string;
  readonly progress: string;
  readonly startedAt: number | undefined;
}

interface PageData {
  readonly fleet: FleetView | undefined;
  readonly fleetError: string | undefined;
  readonly hot: ReadonlyMap<string, readonly HotKey[]>;
  readonly recent: readonly RecentEvent[];
  readonly jobs: readonly RunningJob[] | undefined;
  readonly jobsError: string | undefined;
}

/**
 * The fleet page (issue 10): server-rendered HTML beside the queue dashboard, behind the same
 * guard (bearer token or the dashboard's session cookie). Per namespace and per process the hit
 * rates per tier, reads and loads per second, L1 size and bus lag (the telemetry snapshots), the hot
 * ids, the jobs running with their progress, the last events of the bus, and the cache Redis's
 * masters. It reloads itself every few seconds; a part whose Redis does not answer says so and the
 * rest is still shown.
 */
export function registerFleetPage(
  app: FastifyInstance,
  deps: { readonly cache: Cache; readonly jobs: JobClient; readonly guard: AdminGuard },
): void {
  app.get(FLEET_PATH, { onRequest: deps.guard }, async (_req, reply) => {
    const data = await gather(deps.cache, deps.jobs);
    return reply
      .code(data.fleet === undefined ? 503 : 200)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(render(data, Date.now()));
  });
}

async function gather(cache: Cache, jobs: JobClient): Promise<PageData> {
  const [fleet, recent, running] = await Promise.all([
    cache.fleetView(SAMPLES),
    cache.bus?.recent(RECENT_EVENTS),
    runningJobs(jobs).then(
      (list) => ({ list, error: undefined }),
      (error: unknown) => ({
        list: undefined,
        error: error instanceof Error ? error.message : String(error),
      }),
    ),
  ]);
  const hot = new Map<string, readonly HotKey[]>();
  if (fleet.ok) {
    await Promise.all(
      fleet.value.namespaces.map(async (n) => {
        const r = await cache.fleet.hotKeys(n.namespace, HOT_IDS);
        if (r.ok) hot.set(n.namespace, r.value);
      }),
    );
  }
  return {
    fleet: fleet.ok ? fleet.value : undefined,
    fleetError: fleet.ok ? undefined : `the cache Redis did not answer (${fleet.error.code})`,
    hot,
    recent: recent?.ok ? recent.value : [],
    jobs: running.list,
    jobsError: running.error,
  };
}

async function runningJobs(jobs: JobClient): Promise<RunningJob[]> {
  const perQueue = await Promise.all(
    QUEUE_NAMES.map((q) => queueCall(jobs, () => jobs.queue(q).getJobs(['active'], 0, RUNNING_JOBS - 1))),
  );
  return perQueue
    .flatMap((list, i) =>
      list.map((job) => ({
        id: job.id ?? '?',
        queue: QUEUE_NAMES[i] ?? '?',
        title: jobTitle(job.name, job.data),
        progress: progressText(job.progress),
        startedAt: job.processedOn,
      })),
    )
    .slice(0, RUNNING_JOBS);
}

/** A job's progress as the workers report it: `{done, total}` (a percentage) or a number. */
function progressText(progress: unknown): string {
  if (typeof progress === 'number') return `${progress}%`;
  if (progress !== null && typeof progress === 'object') {
    const p = progress as Record<string, unknown>;
    const done = typeof p.done === 'number' ? p.done : undefined;
    const total = typeof p.total === 'number' ? p.total : undefined;
    if (done !== undefined && total !== undefined && total > 0)
      return `${done.toLocaleString('en')} / ${total.toLocaleString('en')} (${Math.floor((done / total) * 100)}%)`;
    if (done !== undefined) return `${done.toLocaleString('en')} done`;
  }
  return '-';
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number) => x.toLocaleString('en', { maximumFractionDigits: 1 });

function ago(now: number, at: number | undefined): string {
  if (at === undefined) return '-';
  const s = Math.max(0, (now - at) / 1000);
  return s < 60 ? `${s.toFixed(1)} s ago` : `${Math.round(s / 60)} min ago`;
}

function table(
  id: string,
  header: readonly string[],
  rows: readonly (readonly string[])[],
  empty: string,
): string {
  if (rows.length === 0) return `<p class="empty" id="${id}">${h(empty)}</p>`;
  const head = header.map((c) => `<th>${h(c)}</th>`).join('');
  // Cells are escaped by the callers (some carry markup of their own).
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table id="${id}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function podRows(pods: readonly PodSnapshot[], now: number): string[][] {
  return pods.map((p) => [
    h(p.pod),
    h(p.role),
    h(`${p.host}:${p.pid}`),
    h(ago(now, p.startedAt).replace(' ago', '')),
    h(ago(now, p.at)),
    h(p.l1 === undefined ? '-' : `${num(p.l1.entries)} / ${num(p.l1.maxEntries)}`),
    h(bytes(p.l1?.bytes)),
    p.bus === undefined ? '-' : p.bus.connected ? 'up' : '<strong class="bad">DOWN</strong>',
    h(p.bus === undefined ? '-' : `${p.bus.lagMs} ms`),
    h(p.l2 === undefined ? '-' : p.l2.breaker),
    h(String(p.l2?.failovers ?? '-')),
  ]);
}

function what(e: CacheEvent): string {
  switch (e.event_type) {
    case 'invalidate':
      if (e.generation !== undefined) return `whole namespace (generation ${e.generation})`;
      if (e.keys !== undefined)
        return `ids ${e.keys.slice(0, 5).join(', ')}${e.keys.length > 5 ? ` … (${e.keys.length})` : ''}`;
      if (e.key_pattern !== undefined) return `pattern ${e.key_pattern}`;
      return `tags ${(e.tags ?? []).join(', ')}`;
    case 'update':
      return `set ${e.keys.slice(0, 5).join(', ')}${e.keys.length > 5 ? ` … (${e.keys.length})` : ''}`;
    case 'prewarm':
      return `prewarm ${e.keys.length} ids`;
    case 'config':
      return `config ${Object.keys(e.settings).join(', ')}`;
  }
}

function render(d: PageData, now: number): string {
  const f = d.fleet;
  const sections: string[] = [];
  if (f === undefined) {
    sections.push(
      `<p class="bad" id="fleet-error">${h(d.fleetError ?? 'the fleet view is not available')}</p>`,
    );
  } else {
    sections.push(
      `<h2>Processes (${f.pods.length})</h2>`,
      table(
        'processes',
        [
          'pod',
          'role',
          'host:pid',
          'up',
          'snapshot',
          'L1 entries',
          'L1 bytes',
          'bus',
          'bus lag',
          'L2 breaker',
          'failovers',
        ],
        podRows(f.pods, now),
        'No process has published a snapshot yet (CACHE_TELEMETRY_ENABLED).',
      ),
    );
    const nsRows: string[][] = [];
    for (const n of f.namespaces) {
      nsRows.push([
        `<strong>${h(n.namespace)}</strong>`,
        h(`all ${n.pods}`),
        h(n.versions.map((v) => `v${v}`).join(', ')),
        h(pct(n.l1.hitRate)),
        h(pct(n.l2.hitRate)),
        h(pct(n.combinedHitRate)),
        h(num(n.readsPerSecond)),
        h(num(n.loadsPerSecond)),
        h(n.l2Entries === undefined ? '-' : `~${num(n.l2Entries)}`),
        h(n.l2Bytes === undefined ? '-' : `~${bytes(n.l2Bytes)}`),
        h((d.hot.get(n.namespace) ?? []).map((k) => k.id).join(', ') || '-'),
      ]);
      for (const p of f.pods) {
        const s = p.namespaces.find((x) => x.namespace === n.namespace);
        if (s === undefined) continue;
        const l1Misses = s.l2Hits + s.misses;
        const rate = (hits: number, misses: number) => (hits + misses === 0 ? 0 : hits / (hits + misses));
        nsRows.push([
          '',
          h(`${p.pod} (${p.role})`),
          h(`v${s.version}`),
          h(pct(rate(s.l1Hits, l1Misses))),
          h(pct(rate(s.l2Hits, s.misses))),
          h(pct(rate(s.l1Hits + s.l2Hits, s.misses))),
          h(num(s.readsPerSecond)),
          h(num(s.loadsPerSecond)),
          '',
          '',
          '',
        ]);
      }
    }
    sections.push(
      '<h2>Namespaces</h2>',
      table(
        'namespaces',
        [
          'namespace',
          'pods',
          'versions',
          'L1 hit',
          'L2 hit',
          'combined',
          'reads/s',
          'loads/s',
          'L2 keys',
          'L2 bytes',
          'hot ids',
        ],
        nsRows,
        'No namespace has been read yet.',
      ),
      '<h2>Cache Redis</h2>',
      table(
        'redis',
        ['node', 'role', 'memory', 'max', 'pressure', 'policy', 'evicted', 'clients', 'keys', 'replicas'],
        f.redis.map((r) => [
          h(r.node),
          h(r.role),
          h(bytes(r.usedMemoryBytes)),
          h(r.maxMemoryBytes === 0 ? 'none' : bytes(r.maxMemoryBytes)),
          h(r.maxMemoryBytes === 0 ? '-' : pct(r.usedMemoryBytes / r.maxMemoryBytes)),
          h(r.maxMemoryPolicy),
          h(num(r.evictedKeys)),
          h(num(r.connectedClients)),
          h(num(r.keys)),
          h(r.replicas.map((x) => `${x.node} ${x.state}, ${x.lagBytes} B behind`).join('; ') || '-'),
        ]),
        'No node answered.',
      ),
    );
  }
  sections.push(
    '<h2>Jobs running</h2>',
    d.jobs === undefined
      ? `<p class="bad" id="jobs-error">The queue Redis did not answer: ${h(d.jobsError ?? '')}</p>`
      : table(
          'jobs',
          ['job', 'queue', 'what', 'progress', 'started'],
          d.jobs.map((j) => [h(j.id), h(j.queue), h(j.title), h(j.progress), h(ago(now, j.startedAt))]),
          'No job is running.',
        ),
    '<h2>Last invalidations and updates</h2>',
    table(
      'events',
      ['when', 'namespace', 'what', 'from'],
      d.recent.map((r) => [h(ago(now, r.at)), h(r.event.namespace), h(what(r.event)), h(r.event.source_pod)]),
      'No event on the bus yet.',
    ),
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cachefleet fleet</title>
<meta http-equiv="refresh" content="${REFRESH_S}">
<style>
body{font:14px system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
nav a{margin-right:1rem}
table{border-collapse:collapse;min-width:40rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .6rem;text-align:left;white-space:nowrap}
th{background:#f4f4f4}td:empty{padding:0}
.bad{color:#b00}.empty{color:#666}
</style></head><body>
<h1>cachefleet fleet</h1>
<nav><a href="${DASHBOARD_PATH}">Queues</a><a href="${FLEET_PATH}">Fleet</a>
<span class="empty">as of ${h(new Date(now).toISOString())}, reloads every ${REFRESH_S} s; counters since each process started</span></nav>
${sections.join('\n')}
</body></html>
`;
}
