import {
  DEFAULT_DEFINITIONS,
  definitionsModule,
  JobError,
  type NamespaceRule,
  namespaceRulesOf,
} from '@cachefleet/jobs';

/**
 * The namespaces' names and id schemas, from the definitions module the workers load
 * (WORKER_DEFINITIONS, default @cachefleet/catalogue): `warm keys` and `invalidate` check their
 * namespace and ids against them before anything is enqueued, as the API does. Imported here, so
 * that the specifier resolves from the CLI's own dependencies.
 */
export async function loadNamespaceRules(
  env: Readonly<Record<string, string | undefined>>,
): Promise<readonly NamespaceRule[]> {
  return namespaceRulesOf(await importDefinitions(env), { ...env });
}

/** The definitions module named by WORKER_DEFINITIONS (default the sample catalogue), checked. */
export async function importDefinitions(
  env: Readonly<Record<string, string | undefined>>,
): Promise<ReturnType<typeof definitionsModule>> {
  const specifier = env.WORKER_DEFINITIONS || DEFAULT_DEFINITIONS;
  let imported: unknown;
  try {
    imported = await import(specifier);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new JobError('E_JOB_CONFIG', `WORKER_DEFINITIONS (${specifier}): cannot be loaded: ${why}`, {
      cause: error,
    });
  }
  return definitionsModule(imported, specifier);
}
