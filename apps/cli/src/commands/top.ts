import { parseArgs } from 'node:util';
import type { HotKey } from '@cachefleet/tiered-cache';
import { z } from 'zod';
import { check, commaList, flagName, parseFlags, wholeNumber } from '../args.js';
import { must, openViewer } from '../cache-viewer.js';
import type { Command } from '../command.js';
import { EXIT } from '../errors.js';
import { formatScalar, table } from '../format.js';

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
Uses the cache settings (CACHE_REDIS_URL, else REDIS_URL: one is required; CACHE_KEY_PREFIX …).

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
    const cache = await openViewer(session);
    const namespaces = flags.namespace ?? must(await cache.fleet.hotNamespaces(MAX_DISCOVERED));
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
