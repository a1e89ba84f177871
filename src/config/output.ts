/**
 * `-O yaml|json`: prints the config model as gost does — fields in gost's order (services:
 * name, addr, handler, listener, forwarder, metadata; …), empty fields omitted, metadata
 * values as they are (CLI values stay strings, so `tunnel.weight: "1"` is quoted in YAML).
 * The output loads back into the same model (tested).
 */
import { stringify } from 'yaml';
import type { z } from 'zod';
import type { Config } from '../core/config';
import { isPlainObject, prune } from './normalize';
import { configSchema, elementOf, isRecord, shapeOf } from './schema';

export type OutputFormat = 'yaml' | 'json';

/** Renders `config`; the text ends with a newline. */
export function renderConfig(config: Config, format: OutputFormat): string {
  const ordered = order(prune(config, configSchema) ?? {}, configSchema);
  if (format === 'json') return `${JSON.stringify(ordered, null, 2)}\n`;
  return stringify(ordered, { indentSeq: false, lineWidth: 0, aliasDuplicateObjects: false });
}

/** Re-creates objects with keys in schema order (unknown keys, if any, last). */
function order(value: unknown, schema: z.ZodType | undefined): unknown {
  if (schema && isRecord(schema)) return value;
  if (Array.isArray(value)) {
    const element = schema ? elementOf(schema) : undefined;
    return value.map((v) => order(v, element));
  }
  if (!isPlainObject(value)) return value;
  const shape = schema ? shapeOf(schema) : undefined;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape ?? {})) {
    if (key in value) out[key] = order(value[key], shape![key]);
  }
  for (const [k, v] of Object.entries(value)) if (!(k in out)) out[k] = order(v, undefined);
  return out;
}
