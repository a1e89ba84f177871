/**
 * Raw parsed YAML/JSON → the config model, in four steps:
 *  1. canonicalise keys: gost matches keys case-insensitively (viper lower-cases them), so
 *     `Services`, `certfile`, `ENTRYPOINT`… are accepted; object keys get their canonical
 *     spelling, metadata maps are kept as written (their lookups are case-insensitive).
 *     gost keys burrow does not implement and keys gost does not know are dropped with a
 *     warning (gost ignores unknown keys silently; several doc examples depend on that);
 *  2. drop empty values (null, "", [], {}) outside metadata, as gost's omitempty output does;
 *  3. validate with the zod schema (errors name source, path, what was found and expected);
 *  4. apply gost's defaults (listener "tcp", dialer "tcp") and refuse what burrow cannot run
 *     (a missing handler or connector type, where gost would pick "auto" / "http").
 */
import type { z } from 'zod';
import { ConfigError } from '../core/errors';
import { CONNECTOR_TYPES, HANDLER_TYPES } from '../core/parts';
import type { Config, HopConfig, NodeConfig, ServiceConfig } from '../core/config';
import { setOrigin } from './origin';
import { chainSchema, configSchema, forwardNodeSchema, elementOf, infoOf, isRecord, shapeOf, type ParsedConfig } from './schema';

export type PathSeg = string | number;

/** Maps a path in the canonical config to a line number in the source (YAML/JSON text). */
export type Locator = (rawPath: PathSeg[]) => number | undefined;

export interface NormalizeOptions {
  /** Name used in messages: a file name, "<stdin>", "inline JSON". */
  source: string;
  /** Warnings are appended here. */
  warnings: string[];
  /** Optional line lookup by raw path (keys as written). */
  locate?: Locator;
}

/** "services[1].handler.type" */
export function formatPath(path: PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** Runs all four steps and records each list item's origin. Throws ConfigError. */
export function normalizeConfig(raw: unknown, opts: NormalizeOptions): Config {
  const ctx = new Context(opts);
  if (!isPlainObject(raw)) {
    throw new ConfigError(`expected a mapping at the top level (services:, chains:, …), found ${describeValue(raw)}`, {
      source: opts.source,
    });
  }
  const canon = ctx.canonicalize(raw, configSchema, [], [], []);
  const pruned = prune(canon, configSchema) ?? {};
  const parsed = configSchema.safeParse(pruned, { reportInput: true });
  if (!parsed.success) throw ctx.zodError(parsed.error);
  const config = applyDefaults(parsed.data, ctx);
  recordOrigins(config, opts.source);
  return config;
}

class Context {
  readonly source: string;
  readonly warnings: string[];
  readonly locate?: Locator;
  /** canonical path text → raw path, for line lookups of validation errors. */
  readonly rawPaths = new Map<string, PathSeg[]>();

  constructor(opts: NormalizeOptions) {
    this.source = opts.source;
    this.warnings = opts.warnings;
    this.locate = opts.locate;
  }

  lineOf(path: PathSeg[]): number | undefined {
    for (let n = path.length; n >= 0; n--) {
      const raw = this.rawPaths.get(formatPath(path.slice(0, n)));
      if (raw) return this.locate?.(raw);
    }
    return undefined;
  }

  at(path: PathSeg[]): string {
    const line = this.lineOf(path);
    const p = formatPath(path);
    return `${this.source}: ${p || '(top level)'}${line ? ` (line ${line})` : ''}`;
  }

  warn(path: PathSeg[], message: string): void {
    this.warnings.push(`${this.at(path)}: ${message}`);
  }

  error(path: PathSeg[], message: string): ConfigError {
    const line = this.lineOf(path);
    return new ConfigError(`${message}${line ? ` (line ${line})` : ''}`, { source: this.source, path: formatPath(path) || undefined });
  }

  /**
   * Walks `value` along `schema`, renaming keys to their canonical spelling. `ancestors` holds
   * the key sets of enclosing objects, to hint at mis-indented keys.
   */
  canonicalize(value: unknown, schema: z.ZodType, path: PathSeg[], rawPath: PathSeg[], ancestors: Array<{ path: PathSeg[]; keys: Set<string> }>): unknown {
    this.rawPaths.set(formatPath(path), rawPath);
    if (isRecord(schema)) return value;
    const element = elementOf(schema);
    if (element) {
      if (!Array.isArray(value)) return value;
      return value.map((v, i) => this.canonicalize(v, element, [...path, i], [...rawPath, i], ancestors));
    }
    const shape = shapeOf(schema);
    if (!shape || !isPlainObject(value)) return value;

    const info = infoOf(schema);
    const byLower = new Map(Object.keys(shape).map((k) => [k.toLowerCase(), k]));
    const ignored = new Map(Object.entries(info?.ignored ?? {}).map(([k, why]) => [k.toLowerCase(), why]));
    const seen = new Map<string, string>();
    const out: Record<string, unknown> = {};
    const inner = [...ancestors, { path, keys: new Set(byLower.keys()) }];
    for (const [rawKey, v] of Object.entries(value)) {
      const key = byLower.get(rawKey.toLowerCase());
      if (key === undefined) {
        this.unknownKey(rawKey, path, [...rawPath, rawKey], info?.kind ?? 'object', ignored.get(rawKey.toLowerCase()), ancestors);
        continue;
      }
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        const l1 = this.locate?.([...rawPath, earlier]);
        const l2 = this.locate?.([...rawPath, rawKey]);
        throw new ConfigError(
          `duplicate key '${key}'${l2 ? ` at line ${l2}` : ''}: "${earlier}"${l1 ? ` (line ${l1})` : ''} and "${rawKey}" ` +
            'are the same key (keys are case-insensitive)',
          { source: this.source, path: formatPath(path) || undefined },
        );
      }
      seen.set(key, rawKey);
      this.rawPaths.set(formatPath([...path, key]), [...rawPath, rawKey]);
      const why = info?.unsupported?.[key];
      if (why && v !== null && v !== undefined) this.warn([...path, key], why);
      out[key] = this.canonicalize(v, shape[key]!, [...path, key], [...rawPath, rawKey], inner);
    }
    return out;
  }

  private unknownKey(
    rawKey: string,
    path: PathSeg[],
    rawPath: PathSeg[],
    kind: string,
    ignoredWhy: string | undefined,
    ancestors: Array<{ path: PathSeg[]; keys: Set<string> }>,
  ): void {
    const line = this.locate?.(rawPath);
    const where = `${this.source}: ${formatPath([...path, rawKey])}${line ? ` (line ${line})` : ''}`;
    if (ignoredWhy !== undefined) {
      this.warnings.push(`${where}: gost key '${rawKey}' of a ${kind} is ignored (${ignoredWhy})`);
      return;
    }
    let hint = '';
    for (let i = ancestors.length - 1; i >= 0; i--) {
      const a = ancestors[i]!;
      if (a.keys.has(rawKey.toLowerCase())) {
        hint = `; '${rawKey}' is a key of ${formatPath(a.path) || 'the top level'} — check its indentation`;
        break;
      }
    }
    this.warnings.push(`${where}: unknown key '${rawKey}' in a ${kind} is ignored (gost ignores it too)${hint}`);
  }

  zodError(error: z.ZodError): ConfigError {
    const issues = error.issues;
    const first = issues[0]!;
    const lines = issues.slice(0, 10).map((issue) => {
      const p = issue.path.filter((s): s is PathSeg => typeof s === 'string' || typeof s === 'number');
      const line = this.lineOf(p);
      return `${formatPath(p) || '(top level)'}${line ? ` (line ${line})` : ''}: ${describeIssue(issue)}`;
    });
    const more = issues.length > 10 ? `\n  … and ${issues.length - 10} more` : '';
    const firstPath = first.path.filter((s): s is PathSeg => typeof s === 'string' || typeof s === 'number');
    const firstLine = this.lineOf(firstPath);
    const head = `${describeIssue(first)}${firstLine ? ` (line ${firstLine})` : ''}`;
    const rest = lines.length > 1 ? `\n  ${lines.slice(1).join('\n  ')}${more}` : '';
    return new ConfigError(head + rest, { source: this.source, path: formatPath(firstPath) || undefined });
  }
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

function describeIssue(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  if (issue.code === 'invalid_type') {
    const expected = issue.message.startsWith('expected ') ? issue.message.slice('expected '.length) : (EXPECTED[issue.expected] ?? issue.expected);
    if (input === undefined) return `missing (expected ${expected})`;
    return `expected ${expected}, found ${describeValue(input)}`;
  }
  if (issue.code === 'custom' || input === undefined) return issue.message;
  return `${issue.message}, found ${describeValue(input)}`;
}

/** Short text for a value in messages: `number 5`, `string "abc"`, `a list`. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Drops null/undefined, "" and empty lists/mappings outside metadata, following `schema`.
 * Returns undefined when `value` itself is empty. Chain `hops` is kept even when empty, and so
 * is a forwarder node's `tls: {}` (TLS to the node with every default).
 */
const CHAIN_SHAPE = shapeOf(chainSchema);
const FORWARD_NODE_SHAPE = shapeOf(forwardNodeSchema);

export function prune(value: unknown, schema: z.ZodType | undefined): unknown {
  if (value === null || value === undefined || value === '') return undefined;
  if (schema && isRecord(schema)) {
    return isPlainObject(value) && Object.keys(value).length === 0 ? undefined : value;
  }
  if (Array.isArray(value)) {
    const element = schema ? elementOf(schema) : undefined;
    const items = value.map((v) => prune(v, element)).filter((v) => v !== undefined);
    return items.length === 0 ? undefined : items;
  }
  if (isPlainObject(value)) {
    const shape = schema ? shapeOf(schema) : undefined;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v, shape?.[k]);
      if (p !== undefined) out[k] = p;
      else if (k === 'hops' && shape === CHAIN_SHAPE && Array.isArray(v)) out[k] = [];
      else if (k === 'tls' && shape === FORWARD_NODE_SHAPE && isPlainObject(v)) out[k] = {};
    }
    return Object.keys(out).length === 0 ? undefined : out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// defaults

const handlerList = HANDLER_TYPES.join(', ');
const connectorList = CONNECTOR_TYPES.join(', ');

function applyDefaults(parsed: ParsedConfig, ctx: Context): Config {
  const cfg = parsed as unknown as Config;
  parsed.services?.forEach((svc, i) => {
    const path: PathSeg[] = ['services', i];
    if (!svc.handler?.type) {
      throw ctx.error(
        [...path, 'handler', 'type'],
        `missing handler type (gost would use its "auto" proxy handler, which burrow does not support; ` +
          `set handler.type to one of: ${handlerList})`,
      );
    }
    if (!svc.listener) (svc as ServiceConfig).listener = { type: 'tcp' };
    else if (!svc.listener.type) svc.listener.type = 'tcp';
  });
  parsed.chains?.forEach((chain, c) =>
    chain.hops.forEach((hop, h) => defaultNodes(hop as HopConfig, ['chains', c, 'hops', h], ctx)),
  );
  parsed.hops?.forEach((hop, h) => defaultNodes(hop as HopConfig, ['hops', h], ctx));
  return cfg;
}

function defaultNodes(hop: HopConfig, path: PathSeg[], ctx: Context): void {
  hop.nodes?.forEach((node: NodeConfig, n) => {
    const np = [...path, 'nodes', n];
    if (!node.connector?.type) {
      throw ctx.error(
        [...np, 'connector', 'type'],
        `missing connector type (gost would use "http", which burrow does not support; set connector.type to one of: ${connectorList})`,
      );
    }
    if (!node.dialer) node.dialer = { type: 'tcp' };
    else if (!node.dialer.type) node.dialer.type = 'tcp';
  });
}

function recordOrigins(cfg: Config, source: string): void {
  cfg.services?.forEach((s, i) => setOrigin(s, source, `services[${i}]`));
  cfg.chains?.forEach((c, i) => {
    setOrigin(c, source, `chains[${i}]`);
    c.hops.forEach((h, j) => {
      setOrigin(h, source, `chains[${i}].hops[${j}]`);
      h.nodes?.forEach((n, k) => setOrigin(n, source, `chains[${i}].hops[${j}].nodes[${k}]`));
    });
  });
  cfg.hops?.forEach((h, j) => {
    setOrigin(h, source, `hops[${j}]`);
    h.nodes?.forEach((n, k) => setOrigin(n, source, `hops[${j}].nodes[${k}]`));
  });
  cfg.ingresses?.forEach((x, i) => setOrigin(x, source, `ingresses[${i}]`));
  cfg.authers?.forEach((x, i) => setOrigin(x, source, `authers[${i}]`));
  cfg.sds?.forEach((x, i) => setOrigin(x, source, `sds[${i}]`));
  if (cfg.api) setOrigin(cfg.api, source, 'api');
}
