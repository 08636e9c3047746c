import { formatBytes as bytes } from '@cachefleet/config';
import {
  type Cache,
  createCache,
  type FleetView,
  loadCacheConfig,
  type Result,
} from '@cachefleet/tiered-cache';
import { CONNECT_TIMEOUT_MS, describeRedis, probe } from './connect.js';
import { CliError } from './errors.js';
import { formatScalar, table } from './format.js';
import type { Session } from './session.js';

/**
 * A read-only cache on the cache Redis (CACHE_REDIS_URL, else REDIS_URL; CACHE_KEY_PREFIX …) for
 * the commands that look at it (`top`, `status`): no bus (it is no pod), no hot-key sampling, no
 * telemetry snapshot of its own. Closed with the session. E_CLI_UNREACHABLE when Redis does not
 * answer within CONNECT_TIMEOUT_MS.
 */
export async function openViewer(session: Session, options: { readonly bus?: boolean } = {}): Promise<Cache> {
  const config = loadCacheConfig({
    ...session.env,
    CACHE_IMPL: 'redis',
    // On the bus only to publish (`cachefleet rollout`'s config event); it serves no reads.
    CACHE_BUS_ENABLED: options.bus === true ? 'true' : 'false',
    CACHE_HOT_KEYS_ENABLED: 'false',
    CACHE_TELEMETRY_ENABLED: 'false',
  });
  const what = `cache Redis (${config.redis ? describeRedis(config.redis) : 'none'})`;
  if (config.redis) await probe(config.redis, CONNECT_TIMEOUT_MS, what);
  const cache = createCache({ ...config, l2: { ...config.l2, connectTimeoutMs: CONNECT_TIMEOUT_MS } });
  session.onClose(() => cache.close());
  await cache.start(); // never throws: it starts degraded when Redis does not answer
  if (cache.tiers().l2?.available === false) {
    throw new CliError('E_CLI_UNREACHABLE', `${what} did not answer within ${CONNECT_TIMEOUT_MS} ms`);
  }
  return cache;
}

export function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The fleet as `status` prints it: processes, namespaces, Redis nodes. */
export function fleetLines(view: FleetView): string[] {
  const now = view.at;
  const out: string[] = [];
  if (view.pods.length === 0)
    out.push('fleet: no process has published a snapshot (CACHE_TELEMETRY_ENABLED)');
  else {
    out.push(
      ...table(
        ['POD', 'ROLE', 'HOST:PID', 'UP', 'SEEN', 'L1 ENTRIES', 'L1 BYTES', 'BUS', 'BUS LAG', 'FAILOVERS'],
        view.pods.map((p) => [
          p.pod,
          p.role,
          `${p.host}:${p.pid}`,
          `${Math.round((now - p.startedAt) / 1000)} s`,
          `${((now - p.at) / 1000).toFixed(1)} s ago`,
          formatScalar(p.l1?.entries ?? '-'),
          bytes(p.l1?.bytes),
          p.bus === undefined ? '-' : p.bus.connected ? 'up' : 'DOWN',
          p.bus === undefined ? '-' : `${p.bus.lagMs} ms`,
          formatScalar(p.l2?.failovers ?? '-'),
        ]),
      ),
    );
  }
  if (view.invalid > 0)
    out.push(`(${view.invalid} snapshot(s) could not be read: another version's or damaged)`);
  out.push('');
  if (view.namespaces.length > 0) {
    out.push(
      ...table(
        [
          'NAMESPACE',
          'VERSIONS',
          'PODS',
          'L1 HIT',
          'L2 HIT',
          'COMBINED',
          'LOADS',
          'DELETES',
          'L2 KEYS~',
          'L2 BYTES~',
        ],
        view.namespaces.map((n) => [
          n.namespace,
          n.versions.join(','),
          String(n.pods),
          pct(n.l1.hitRate),
          pct(n.l2.hitRate),
          pct(n.combinedHitRate),
          formatScalar(n.loads),
          formatScalar(n.deletes),
          formatScalar(n.l2Entries ?? '-'),
          bytes(n.l2Bytes),
        ]),
      ),
      '',
    );
  }
  out.push(
    ...table(
      ['REDIS NODE', 'ROLE', 'MEMORY', 'MAX', 'PRESSURE', 'POLICY', 'EVICTED', 'CLIENTS', 'KEYS', 'REPLICAS'],
      view.redis.map((r) => [
        r.node,
        r.role,
        bytes(r.usedMemoryBytes),
        r.maxMemoryBytes === 0 ? 'none' : bytes(r.maxMemoryBytes),
        r.maxMemoryBytes === 0 ? '-' : pct(r.usedMemoryBytes / r.maxMemoryBytes),
        r.maxMemoryPolicy,
        formatScalar(r.evictedKeys),
        formatScalar(r.connectedClients),
        formatScalar(r.keys),
        r.replicas.length === 0
          ? r.masterLinkUp === undefined
            ? '-'
            : `link ${r.masterLinkUp ? 'up' : 'DOWN'}`
          : r.replicas.map((x) => `${x.node} ${x.state} -${x.lagBytes} B`).join('; '),
      ]),
    ),
  );
  if (view.sample !== undefined)
    out.push(`(L2 sizes estimated from ${view.sample.sampled} random keys of ${view.sample.dbKeys})`);
  return out;
}
