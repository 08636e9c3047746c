import { z } from 'zod';
import { JobError } from './errors.js';
import type { Definitions } from './handlers/context.js';
import type { NamespaceRule } from './namespaces.js';

/** The definitions module workers load by default (and the CLI, to check ids): the sample catalogue. */
export const DEFAULT_DEFINITIONS = '@cachefleet/catalogue';

/**
 * A definitions module (WORKER_DEFINITIONS): `createDefinitions(env)` gives the namespaces with
 * their loaders (it may connect to the source of truth); the optional `describeNamespaces(env)`
 * gives their names and id schemas without I/O, which is all a producer needs to check a payload.
 */
export interface DefinitionsModule {
  createDefinitions(env: NodeJS.ProcessEnv): Promise<Definitions>;
  describeNamespaces?(env: NodeJS.ProcessEnv): readonly NamespaceRule[];
}

const fn = <F>(message: string) => z.custom<F>((v) => typeof v === 'function', { message });
const moduleSchema = z.object({
  createDefinitions: fn<DefinitionsModule['createDefinitions']>('must export createDefinitions(env)'),
  describeNamespaces: fn<NonNullable<DefinitionsModule['describeNamespaces']>>(
    'describeNamespaces, when exported, must be a function',
  ).optional(),
});

/**
 * Checks what `import(specifier)` gave (the app imports it, so that the specifier resolves from
 * the app's own dependencies); a module of another shape throws E_JOB_CONFIG naming it.
 */
export function definitionsModule(imported: unknown, specifier: string): DefinitionsModule {
  const parsed = moduleSchema.safeParse(imported);
  if (parsed.success) return parsed.data;
  const why = parsed.error.issues[0]?.message ?? 'not a definitions module';
  throw new JobError('E_JOB_CONFIG', `WORKER_DEFINITIONS (${specifier}): ${why}`);
}

/**
 * The namespaces' names and id schemas: `describeNamespaces(env)` when the module has it (no I/O),
 * else those of `createDefinitions(env)`, closed again at once.
 */
export async function namespaceRulesOf(
  module: DefinitionsModule,
  env: NodeJS.ProcessEnv,
): Promise<readonly NamespaceRule[]> {
  if (module.describeNamespaces !== undefined) return module.describeNamespaces(env);
  const definitions = await module.createDefinitions(env);
  try {
    return definitions.namespaces.map((ns) => ({ name: ns.name, idSchema: ns.idSchema }));
  } finally {
    await definitions.close();
  }
}
