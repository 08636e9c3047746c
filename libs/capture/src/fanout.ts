import { type CacheKeys, type RedisClient, scopedTag } from '@cachefleet/redis';

/** The invalidate job's payload for a tag fan-out (libs/jobs catalogue, scope `tags`). */
export interface CaptureFanOutJob {
  readonly scope: 'tags';
  readonly namespace: string;
  readonly tags: string[];
}

/** SCARDs per round of awaits: a batch may coalesce into many tags. */
const CHUNK = 1_000;

/**
 * Which coalesced tags the reader walks itself (`inline`) and which go to an invalidate job
 * (`queued`: the index holds at least `jobAt` entries). A tag walk costs about 20 µs per entry its
 * index holds (192.7 ms for 10,000 in docs/design-coherence.md): the index size is what makes a
 * fan-out large, not the number of changed rows (100k updated rows of a category nobody reads
 * leave an empty index). One SCARD per tag, asked only when a batch coalesced.
 */
export async function splitTags(
  redis: RedisClient,
  keys: CacheKeys,
  namespace: string,
  tags: readonly string[],
  jobAt: number,
): Promise<{ inline: string[]; queued: string[] }> {
  const inline: string[] = [];
  const queued: string[] = [];
  for (let i = 0; i < tags.length; i += CHUNK) {
    const chunk = tags.slice(i, i + CHUNK);
    const sizes = await Promise.all(chunk.map((t) => redis.scard(keys.tag(scopedTag(namespace, t)))));
    for (const [j, t] of chunk.entries()) ((sizes[j] ?? 0) >= jobAt ? queued : inline).push(t);
  }
  return { inline, queued };
}
