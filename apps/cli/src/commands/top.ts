import { parseArgs } from 'node:util';
import {
  type Cache,
  createCache,
  escapeGlob,
  type HotKey,
  loadCacheConfig,
  ok,
  RedisStore,
  type Result,
} from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { check, commaList, flagName, parseFlags, wholeNumber } from '../args.js';
import type { Command } from '../command.js';
import { CONNECT_TIMEOUT_MS, describeRedis, probe } from '../connect.js';
import { CliError, EXIT } from '../errors.js';
import { formatScalar, table } from '../format.js';

const DEFAULT_CACHE_REDIS_URL = 'redis://127.0.0.1:6379';
/** Namespaces found by `top` without --namespace; far more than any deployment defines. */
const MAX_DISCOVERED = 1_000;

const topFlags = z.object({
  namespace: z
    .array(z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'a namespace name ([a-z][a-z0-9_-]*)'))
    .optional(),
  limit: wholeNumber.pipe(z.number().int().min(1).max(10_000)).default(20),
  json: z.boolean().default(false),
});

export const top: Command = {
  name: 'top',
  summary: 'the hottest ids per namespace (sampled reads the hot warm uses), with their scores',
  help: `Usage:
  cachefleet top [--namespace <ns>]... [--limit 20] [--json]

Reads the hot-key counts pods flush to the cache Redis (<prefix>__hot:<namespace>, the set the
hot warm takes its ids from) and prints the top ids with their scores (sampled reads scaled to
an estimate, halved by each hot warm). Without --namespace, every namespace that has counts.
Uses the cache settings (CACHE_REDIS_URL, default ${DEFAULT_CACHE_REDIS_URL}; CACHE_KEY_PREFIX …).

Flags:
  -n, --namespace <ns>  namespace; repeat or comma-separate (default: every namespace with counts)
  -l, --limit <n>       ids per namespace (default 20, at most 10000)
  --json                one JSON object: {"<namespace>": [{"id", "score"}, …]}`,

  async run(args, session) {
    const { values } = parseFlags('top', () =>
      parseArgs({
        args,
        options: {
          namespace: { type: 'string', short: 'n', multiple: true },
          limit: { type: 'string', short: 'l' },
          json: { type: 'boolean' },
        },
        allowPositionals: false,
        strict: true,
      }),
    );
    const flags = check(topFlags, { ...values, namespace: commaList(values.namespace) }, flagName);
    const env = session.env;
    // Read-only here: no bus (this is no pod), no sampling of its own.
    const config = loadCacheConfig({
      ...env,
      CACHE_IMPL: 'redis',
      CACHE_BUS_ENABLED: 'false',
      CACHE_HOT_KEYS_ENABLED: 'false',
      CACHE_REDIS_URL: env.CACHE_REDIS_URL || DEFAULT_CACHE_REDIS_URL,
    });
    const what = `cache Redis (${config.redis ? describeRedis(config.redis) : 'none'})`;
    if (config.redis) await probe(config.redis, CONNECT_TIMEOUT_MS, what);
    const cache = createCache({ ...config, l2: { ...config.l2, connectTimeoutMs: CONNECT_TIMEOUT_MS } });
    session.onClose(() => cache.close());
    await cache.start(); // never throws: it starts degraded when Redis does not answer
    const store = cache.registry.store;
    if (store instanceof RedisStore && !store.available) {
      throw new CliError('E_CLI_UNREACHABLE', `${what} did not answer within ${CONNECT_TIMEOUT_MS} ms`);
    }
    const namespaces = flags.namespace ?? must(await hotNamespaces(cache));
    const hottest: Record<string, HotKey[]> = {};
    for (const ns of namespaces) hottest[ns] = must(await cache.fleet.hotKeys(ns, flags.limit));
    if (flags.json) {
      session.out(JSON.stringify(hottest));
      return EXIT.OK;
    }
    if (namespaces.length === 0) {
      session.out('no hot-key counts yet (pods flush them every CACHE_HOT_KEYS_FLUSH_MS)');
      return EXIT.OK;
    }
    for (const [ns, keys] of Object.entries(hottest)) {
      session.out(`${ns}: ${keys.length === 0 ? 'no counts' : `top ${keys.length}`}`);
      if (keys.length === 0) continue;
      for (const line of table(
        ['#', 'ID', 'SCORE'],
        keys.map((k, i) => [String(i + 1), k.id, formatScalar(k.score)]),
      ))
        session.out(`  ${line}`);
    }
    return EXIT.OK;
  },
};

function must<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

/** Namespaces with a hot set, found with SCAN (never KEYS) on every master. */
async function hotNamespaces(cache: Cache): Promise<Result<string[]>> {
  const store = cache.registry.store;
  if (!(store instanceof RedisStore)) return ok([]);
  const base = `${cache.options.prefix}__hot:`;
  const match = `${escapeGlob(base)}*`;
  return store.guarded(async () => {
    const client = store.client;
    const nodes = 'nodes' in client ? client.nodes('master') : [client];
    const found = new Set<string>();
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1_000);
        cursor = next;
        for (const key of keys) found.add(key.slice(base.length));
      } while (cursor !== '0' && found.size < MAX_DISCOVERED);
    }
    return [...found].sort();
  });
}
