import { z } from 'zod';

/**
 * The CLI's own variables (the queue, cache, capture, backup and tracing settings are read by their
 * packages from the same environment). Read where they are used: `status` and `deploy` talk to the
 * admin API, `deploy` runs kubectl.
 */
export const CLI_ENV_SCHEMA = z.object({
  CACHEFLEET_API_URL: z
    .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
    .optional()
    .describe(
      'base URL of the admin API: `status` then shows GET /cache/stats, `deploy` reads the fleet hit rate there (or --api-url)',
    ),
  CACHEFLEET_ADMIN_TOKEN: z
    .string()
    .min(1)
    .optional()
    .describe('bearer token sent to the admin API (the API pod’s ADMIN_TOKEN)'),
  KUBECTL_BIN: z.string().min(1).optional().describe('the kubectl `deploy` runs (default: kubectl on PATH)'),
});
