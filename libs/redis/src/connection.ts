import { z } from 'zod';

const hostPort = z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) });

/** How to reach one Redis deployment: single node, Sentinel set or Cluster. */
export const redisConnectionSchema = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('single'),
    /** `redis://[user:password@]host:port[/db]` or `rediss://` for TLS. */
    url: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://'),
  }),
  z.object({
    mode: z.literal('sentinel'),
    sentinels: z.array(hostPort).min(1),
    /** The master name the Sentinels monitor. */
    name: z.string().min(1),
    /** The ACL user of the data nodes (default `default`); the Sentinels take sentinelPassword alone. */
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    sentinelPassword: z.string().optional(),
    db: z.number().int().min(0).default(0),
  }),
  z.object({
    mode: z.literal('cluster'),
    nodes: z.array(hostPort).min(1),
    /** The ACL user of every node (default `default`). */
    username: z.string().min(1).optional(),
    password: z.string().optional(),
  }),
]);
export type RedisConnection = z.input<typeof redisConnectionSchema>;
export type ResolvedRedisConnection = z.output<typeof redisConnectionSchema>;
