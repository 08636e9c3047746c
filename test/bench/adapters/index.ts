import type { AdapterSpec } from '../types.js';
import { bentocache, bentocacheAutoPipelined, bentocacheRawL1 } from './bentocache.js';
import { cacheManager } from './cache-manager.js';
import { ioredisFloor } from './ioredis.js';
import { lruFloor } from './lru.js';
import { project } from './project.js';

/** Floors first: later rows run on a heap and JIT already disturbed by earlier ones. */
export const ADAPTERS: readonly AdapterSpec[] = [
  lruFloor,
  ioredisFloor,
  bentocache,
  bentocacheRawL1,
  bentocacheAutoPipelined,
  cacheManager,
  project,
];

/** The libraries a stampede child can run, by the name passed on its command line. */
export const STAMPEDE_ADAPTERS: Readonly<Record<string, AdapterSpec>> = {
  bentocache,
  'cache-manager': cacheManager,
  project,
};
