import { z } from 'zod';

/**
 * What docs/configuration.md says of each variable, read from the settings schema itself (its
 * `.describe()` text, its default, its checks through zod's JSON Schema), so the page cannot say
 * something the loader does not do: `npm run docs:config` writes it and a test compares.
 */
export interface SettingRow {
  readonly name: string;
  /** `integer`, `number`, `string`, `boolean`, `enum`, or the schema's `format` meta (`host:port,…`). */
  readonly type: string;
  /** The default as the variable would be written; `-` when none. */
  readonly default: string;
  /** Allowed values or range, from the schema's checks; `-` when any value of the type goes. */
  readonly allowed: string;
  readonly description: string;
}

/** The text values `boolishSchema` accepts. */
const BOOLISH = ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'];

type JsonSchema = {
  readonly type?: string;
  readonly format?: string;
  readonly description?: string;
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
};

function jsonSchemaOf(field: z.ZodType): JsonSchema {
  // Input side: a variable is text before coercion; transforms have no JSON Schema (any).
  return z.toJSONSchema(field, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

/** The description of every field of `schema`; a field without one is a programming error. */
export function envDescriptions<S extends z.ZodObject>(
  schema: S,
): { readonly [K in keyof S['shape'] & string]: string } {
  const out: Record<string, string> = {};
  for (const [name, field] of Object.entries(schema.shape)) {
    const text = jsonSchemaOf(field as z.ZodType).description;
    if (text === undefined || text.trim() === '') throw new Error(`${name}: no .describe() text`);
    out[name] = text;
  }
  return out as { readonly [K in keyof S['shape'] & string]: string };
}

/**
 * One row per field of `schema`, in its order. `resolvedBy(name)` may give the schema the value
 * goes through after the variable (an option of a library's options schema): its default and range
 * are shown where the variable's own schema has none.
 */
export function settingRows(
  schema: z.ZodObject,
  resolvedBy: (name: string) => z.ZodType | undefined = () => undefined,
): SettingRow[] {
  return Object.entries(schema.shape).map(([name, own]) => {
    const option = resolvedBy(name);
    const field = own as z.ZodType;
    const ownJson = jsonSchemaOf(field);
    const json = option === undefined ? ownJson : withBoundsOf(ownJson, jsonSchemaOf(option));
    const description = envDescriptions(z.object({ [name]: field as z.ZodType }))[name] ?? '';
    const values = json.enum?.map(String);
    const boolish =
      values !== undefined && values.length === BOOLISH.length && BOOLISH.every((v) => values.includes(v));
    const type = boolish
      ? 'boolean'
      : ((json.format === 'uri' ? 'URL' : json.format) ??
        (values !== undefined ? 'enum' : (json.type ?? 'string')));
    return {
      name,
      type,
      default: defaultOf(field) ?? (option !== undefined ? defaultOf(option) : undefined) ?? '-',
      allowed: boolish ? BOOLISH.join(', ') : allowedOf(json, values),
      description,
    };
  });
}

const BOUNDS = [
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
] as const;

/** `own` with the option's bounds where its own are missing or only a safe integer's. */
function withBoundsOf(own: JsonSchema, option: JsonSchema): JsonSchema {
  const out: Record<string, unknown> = { ...own };
  for (const key of BOUNDS) {
    const mine = own[key];
    const vague =
      mine === undefined || (typeof mine === 'number' && Math.abs(mine) >= Number.MAX_SAFE_INTEGER);
    if (vague && option[key] !== undefined) out[key] = option[key];
  }
  return out as JsonSchema;
}

/** The default of a field, looked up through its wrappers (JSON Schema drops it before a transform). */
function defaultOf(field: z.ZodType): string | undefined {
  let at: z.core.$ZodType | undefined = field;
  while (at !== undefined) {
    const def: z.core.$ZodTypeDef = at._zod.def;
    if (def.type === 'default' || def.type === 'prefault') {
      const value: unknown = (def as z.core.$ZodDefaultDef).defaultValue;
      return typeof value === 'string' ? value : JSON.stringify(value);
    }
    at =
      def.type === 'optional' || def.type === 'nullable'
        ? (def as z.core.$ZodOptionalDef).innerType
        : undefined;
  }
  return undefined;
}

function allowedOf(json: JsonSchema, values: readonly string[] | undefined): string {
  if (values !== undefined) return values.join(', ');
  const parts: string[] = [];
  if (json.type === 'integer' || json.type === 'number') {
    // intSchema's own bounds (safe integers) say nothing a reader needs.
    const minimum =
      json.minimum !== undefined && json.minimum > Number.MIN_SAFE_INTEGER ? json.minimum : undefined;
    const maximum =
      json.maximum !== undefined && json.maximum < Number.MAX_SAFE_INTEGER ? json.maximum : undefined;
    const low =
      minimum !== undefined
        ? `≥ ${minimum}`
        : json.exclusiveMinimum !== undefined
          ? `> ${json.exclusiveMinimum}`
          : undefined;
    const high =
      maximum !== undefined
        ? `≤ ${maximum}`
        : json.exclusiveMaximum !== undefined
          ? `< ${json.exclusiveMaximum}`
          : undefined;
    if (low !== undefined) parts.push(low);
    if (high !== undefined) parts.push(high);
  }
  if (json.minLength !== undefined && json.maxLength !== undefined)
    parts.push(`${json.minLength}–${json.maxLength} characters`);
  else if (json.minLength === 1) parts.push('not empty');
  else if (json.minLength !== undefined) parts.push(`at least ${json.minLength} characters`);
  else if (json.maxLength !== undefined) parts.push(`at most ${json.maxLength} characters`);
  if (json.pattern !== undefined) parts.push(`matches \`${json.pattern}\``);
  return parts.length === 0 ? '-' : parts.join(', ');
}

/** A Markdown table of `rows` (pipes in cells escaped, so a regular expression cannot break it). */
export function settingsTable(rows: readonly SettingRow[]): string {
  // `<data>` would be read as an HTML tag; a pipe would end the cell.
  const cell = (text: string) =>
    text
      .replace(/\|/g, '\\|')
      .replace(/</g, '&lt;')
      .replace(/\s*\n\s*/g, ' ');
  const code = (text: string) => (text === '-' ? '-' : `\`${text}\``);
  return [
    '| variable | type | default | allowed | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| \`${r.name}\` | ${cell(r.type)} | ${cell(code(r.default))} | ${cell(r.allowed)} | ${cell(r.description)} |`,
    ),
  ].join('\n');
}
