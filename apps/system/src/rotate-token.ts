/**
 * `npm run rotate-token`: a new admin token in the data folder of `npm start` (CACHEFLEET_DATA_DIR,
 * default .data). Every dashboard session ends; the running system keeps the old token until it is
 * restarted. Prints the new token on stdout.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rotateAdminToken } from './data-dir.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const dir = resolve(ROOT, process.env.CACHEFLEET_DATA_DIR ?? '.data');
const token = rotateAdminToken(dir);
process.stderr.write(
  `[cachefleet] a new admin token is in ${dir}/admin-token; restart npm start to use it\n`,
);
process.stdout.write(`${token}\n`);
