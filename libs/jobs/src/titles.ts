import { z } from 'zod';
import { JOB_NAMES, type JobName } from './catalogue.js';

/**
 * What a person reads as a job's title (the dashboard's job name, `jobs list`): the job name and
 * what it was asked, `warm all`, `warm keys product (12)`, `invalidate pattern product 12*`. Only a
 * title: BullMQ's job name, which the workers route on, stays `warm` / `invalidate`. Job data comes
 * from Redis, unchecked: anything that is not a payload of that job shows as the bare name.
 */
const MAX_TITLE = 100;

const list = z.array(z.string()).optional();
const loose = z.looseObject({
  type: z.string().optional(),
  scope: z.string().optional(),
  namespace: z.string().optional(),
  namespaces: list,
  keys: z.array(z.unknown()).optional(),
  tags: z.array(z.unknown()).optional(),
  pattern: z.string().optional(),
  top: z.number().optional(),
  to: z.number().optional(),
  dryRun: z.boolean().optional(),
  master: z.string().optional(),
  file: z.string().optional(),
});
const dataSchema = z.object({ payload: loose });

export function jobTitle(name: string, data: unknown): string {
  if (!(JOB_NAMES as readonly string[]).includes(name)) return name;
  const parsed = dataSchema.safeParse(data);
  if (!parsed.success) return name;
  const words = titleWords(name as JobName, parsed.data.payload);
  const title = [name, ...words.filter((w) => w !== undefined && w !== '')].join(' ');
  return title.length > MAX_TITLE ? `${title.slice(0, MAX_TITLE - 1)}…` : title;
}

function titleWords(name: JobName, p: z.output<typeof loose>): (string | undefined)[] {
  const count = (items: readonly unknown[] | undefined) =>
    items === undefined ? undefined : `(${items.length})`;
  const namespaces = p.namespaces?.length ? p.namespaces.join(',') : undefined;
  switch (name) {
    case 'warm':
      if (p.type === 'keys') return ['keys', p.namespace, count(p.keys)];
      if (p.type === 'hot') return ['hot', namespaces, p.top !== undefined ? `(top ${p.top})` : undefined];
      return [p.type, namespaces];
    case 'invalidate':
      if (p.scope === 'pattern') return ['pattern', p.namespace, p.pattern];
      if (p.scope === 'keys') return ['keys', p.namespace, count(p.keys)];
      if (p.scope === 'tags') return ['tags', p.namespace, count(p.tags)];
      return [p.scope, p.namespace];
    case 'invalidate-slice':
      return [p.namespace, p.pattern, p.master !== undefined ? `on ${p.master}` : undefined];
    case 'migrate':
      return [
        p.namespace,
        p.to !== undefined ? `to v${p.to}` : undefined,
        p.dryRun ? '(dry run)' : undefined,
      ];
    case 'sweep':
      return [p.namespace ?? 'all'];
    case 'backup':
      return [namespaces ?? 'all'];
    case 'restore':
      return [p.file];
    case 'tune':
      return [p.dryRun ? '(dry run)' : undefined];
  }
}
