/**
 * What the memory workload and its child (memory-child.ts) say to each other. A module of its own:
 * importing the child would run it.
 */
import { z } from 'zod';

export const memoryChildArgsSchema = z.strictObject({
  adapter: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  prefix: z.string().min(1),
  n: z.number().int().positive(),
  payloadBytes: z.number().int().min(0),
});

export const memoryChildReportSchema = z.strictObject({
  adapter: z.string(),
  heapEmpty: z.number(),
  heapFull: z.number(),
  rssFull: z.number(),
  /** Entries read back as the value written: every one, or the row is invalid. */
  verified: z.number().int(),
});
