/**
 * Config sources → one validated config (spec/config.md §1).
 *
 * A source is a file path (YAML for .yaml/.yml, JSON for .json, else sniffed: "{" → JSON),
 * "-" (stdin), an inline JSON object ('{"services": …}') or an http(s):// URL. Sources merge in
 * gost's order — each -C value, then the config built from -L/-F — with lists concatenated
 * and the single objects (tls, log, api, metrics) replaced by the later source (mergeConfigs;
 * cli/load.ts puts the command line, the environment and -D/-DD, -api, -metrics on top).
 *
 * Every failure is a ConfigError naming the source: missing file, YAML/JSON syntax (line and
 * column), duplicate keys (line), empty input, schema and cross-reference problems (path).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { Document, Node as YamlNode } from 'yaml';
import type * as YamlModule from 'yaml';
import { ConfigError } from '../core/errors';
import type { Config } from '../core/config';
import type { Locator, PathSeg } from './normalize';
import type * as NormalizeModule from './normalize';

// The YAML parser and the schema are loaded on first use: a start from -L/-F flags alone needs
// neither, which keeps process start-up short.
/* eslint-disable @typescript-eslint/no-require-imports */
function yamlLib(): typeof YamlModule {
  return require('yaml') as typeof YamlModule;
}
function normalizeConfig(...args: Parameters<typeof NormalizeModule.normalizeConfig>): ReturnType<typeof NormalizeModule.normalizeConfig> {
  return (require('./normalize') as typeof NormalizeModule).normalizeConfig(...args);
}
/* eslint-enable @typescript-eslint/no-require-imports */

export type SourceFormat = 'yaml' | 'json';

export interface LoadedConfig {
  config: Config;
  /** Soft problems (ignored keys, unsupported features), each naming source and path. */
  warnings: string[];
}

export interface LoadOptions {
  /** Reads all of stdin (for "-"); defaults to process.stdin. */
  readStdin?: () => Promise<string>;
  /** fetch for http(s) sources; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Environment for GOST_* overrides; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Directories searched for gost.yaml/gost.yml/gost.json when nothing else is given. */
  searchPaths?: string[];
  /** Timeout for http(s) sources, ms (default 30 s). */
  httpTimeoutMs?: number;
}

const MAX_HTTP_BYTES = 10 * 1024 * 1024;
const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
const DEFAULT_NAMES = ['gost.yaml', 'gost.yml', 'gost.json'];

/** Merges in order: lists concatenated, single objects replaced by later ones. */
export function mergeConfigs(parts: Config[]): Config {
  const out: Config = {};
  for (const p of parts) {
    for (const key of ['services', 'chains', 'hops', 'authers', 'ingresses', 'sds'] as const) {
      const items = p[key];
      if (items?.length) (out[key] as unknown[]) = [...((out[key] as unknown[] | undefined) ?? []), ...items];
    }
    for (const key of ['tls', 'log', 'api', 'metrics'] as const) {
      if (p[key] !== undefined) (out as Record<string, unknown>)[key] = p[key];
    }
  }
  return out;
}

/** Reads one source and normalises it (schema + defaults; no cross-source checks). */
export async function loadConfigSource(src: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  if (src === '-') {
    const text = await (opts.readStdin ?? readProcessStdin)();
    return parseConfigText(text, '<stdin>');
  }
  if (src.trimStart().startsWith('{')) return parseConfigText(src, 'inline JSON (-C)', 'json');
  if (/^https?:\/\//i.test(src)) return loadUrl(src, opts);
  if (src.trim() === '') throw new ConfigError('empty config source (expected a file name, "-" or inline JSON)', { source: '-C' });

  let text: string;
  try {
    text = await readFile(src, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file: ${fsReason(err)}`, { source: src, cause: err });
  }
  return parseConfigText(text, src, formatFromName(src));
}

function fsReason(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return (err as Error).message;
}

function formatFromName(name: string): SourceFormat | undefined {
  const ext = extname(name).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  return undefined;
}

async function readProcessStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

async function loadUrl(url: string, opts: LoadOptions): Promise<LoadedConfig> {
  const doFetch = opts.fetch ?? globalThis.fetch;
  const timeoutMs = opts.httpTimeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  let res: Response;
  try {
    res = await doFetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no response within ${timeoutMs} ms` : (err as Error).message;
    throw new ConfigError(`cannot fetch config: ${reason}`, { source: url, cause: err });
  }
  if (res.status !== 200) throw new ConfigError(`cannot fetch config: HTTP status ${res.status} (expected 200)`, { source: url });
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_HTTP_BYTES) throw new ConfigError(`config is larger than ${MAX_HTTP_BYTES} bytes`, { source: url });
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > MAX_HTTP_BYTES) throw new ConfigError(`config is larger than ${MAX_HTTP_BYTES} bytes`, { source: url });
  const type = (res.headers.get('content-type') ?? '').toLowerCase();
  const format: SourceFormat =
    type.includes('json') ? 'json' : type.includes('yaml') ? 'yaml' : formatFromName(new URL(url).pathname) ?? 'yaml';
  return parseConfigText(body.toString('utf8'), url, format);
}

/**
 * Parses YAML or JSON text (format sniffed when not given: "{" → JSON) and normalises it.
 * Never throws anything but ConfigError.
 */
export function parseConfigText(input: string, source: string, format?: SourceFormat): LoadedConfig {
  const text = input.replace(/^\uFEFF/, '');
  if (text.trim() === '') {
    throw new ConfigError('the config is empty (expected YAML or JSON with services:, chains:, …)', { source });
  }
  const fmt = format ?? (text.trimStart().startsWith('{') ? 'json' : 'yaml');
  const warnings: string[] = [];
  const { data, locate } = fmt === 'json' ? parseJson(text, source) : parseYaml(text, source, warnings);
  if (data === null || data === undefined) {
    throw new ConfigError('the config is empty (it holds only comments or null)', { source });
  }
  const config = normalizeConfig(data, { source, warnings, locate });
  return { config, warnings };
}

// ---------------------------------------------------------------------------------------------
// YAML

interface Parsed {
  data: unknown;
  locate?: Locator;
}

const MAX_DEPTH = 200;

function parseYaml(text: string, source: string, warnings: string[]): Parsed {
  const lineCounter = new (yamlLib().LineCounter)();
  let doc: Document;
  try {
    doc = yamlLib().parseDocument(text, { lineCounter, uniqueKeys: true, merge: true, prettyErrors: false });
  } catch (err) {
    throw new ConfigError(`YAML cannot be parsed: ${(err as Error).message}`, { source, cause: err });
  }
  const lineOf = (offset: number): number => lineCounter.linePos(offset).line;
  if (doc.errors.length > 0) {
    const dup = doc.errors.find((e) => e.code === 'DUPLICATE_KEY');
    if (dup) {
      const found = findDuplicateKey(doc.contents, lineOf, 0);
      if (found) throw new ConfigError(found, { source });
    }
    const e = doc.errors[0]!;
    const pos = lineCounter.linePos(e.pos[0]);
    const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const label = e.code === 'DUPLICATE_KEY' ? 'duplicate key' : 'YAML syntax error';
    throw new ConfigError(`${label} at line ${pos.line}, column ${pos.col}: ${what}`, { source });
  }
  for (const w of doc.warnings) {
    const pos = lineCounter.linePos(w.pos[0]);
    warnings.push(`${source}: line ${pos.line}: ${w.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(`YAML cannot be loaded: ${(err as Error).message}`, { source, cause: err });
  }
  return { data, locate: (path) => locateInDoc(doc, path, lineOf) };
}

function keyText(key: unknown): string | undefined {
  if (yamlLib().isScalar(key)) return String(key.value);
  return undefined;
}

/** First duplicate key (exact spelling) in the document, as a message with both lines. */
function findDuplicateKey(node: unknown, lineOf: (offset: number) => number, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  if (yamlLib().isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items) {
      const k = keyText(pair.key);
      const range = (pair.key as YamlNode | null)?.range;
      if (k !== undefined && range) {
        const line = lineOf(range[0]);
        const first = seen.get(k);
        if (first !== undefined) return `duplicate key '${k}' at line ${line} (first defined at line ${first})`;
        seen.set(k, line);
      }
      const inner = findDuplicateKey(pair.value, lineOf, depth + 1);
      if (inner) return inner;
    }
  } else if (yamlLib().isSeq(node)) {
    for (const item of node.items) {
      const inner = findDuplicateKey(item, lineOf, depth + 1);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** Line of the key (or item) at `path`; keys as written in the source. */
function locateInDoc(doc: Document, path: PathSeg[], lineOf: (offset: number) => number): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = (node as YamlNode | null)?.range?.[0];
  for (const seg of path) {
    if (typeof seg === 'number') {
      if (!yamlLib().isSeq(node)) return undefined;
      node = node.items[seg];
      offset = (node as YamlNode | undefined)?.range?.[0] ?? offset;
    } else {
      if (!yamlLib().isMap(node)) return undefined;
      const pair = node.items.find((p) => keyText(p.key) === seg);
      if (!pair) return undefined;
      offset = (pair.key as YamlNode | null)?.range?.[0] ?? offset;
      node = pair.value;
    }
  }
  return offset === undefined ? undefined : lineOf(offset);
}

// ---------------------------------------------------------------------------------------------
// JSON

function parseJson(text: string, source: string): Parsed {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw jsonSyntaxError(err, text, source);
  }
  // JSON is YAML: the YAML parser gives line numbers and catches duplicate keys, which
  // JSON.parse silently resolves to the last one.
  const lineCounter = new (yamlLib().LineCounter)();
  let doc: Document | undefined;
  try {
    doc = yamlLib().parseDocument(text, { lineCounter, uniqueKeys: true });
  } catch {
    doc = undefined;
  }
  if (!doc) return { data };
  const lineOf = (offset: number): number => lineCounter.linePos(offset).line;
  if (doc.errors.some((e) => e.code === 'DUPLICATE_KEY')) {
    const found = findDuplicateKey(doc.contents, lineOf, 0);
    if (found) throw new ConfigError(found, { source });
  }
  if (doc.errors.length > 0) return { data };
  const parsed = doc;
  return { data, locate: (path) => locateInDoc(parsed, path, lineOf) };
}

function jsonSyntaxError(err: unknown, text: string, source: string): ConfigError {
  const message = (err as Error).message ?? String(err);
  const m = /at position (\d+)/.exec(message);
  let where = '';
  if (m) {
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const col = pos - before.lastIndexOf('\n');
    where = ` at line ${line}, column ${col}`;
  } else if (/end of JSON input/i.test(message)) {
    const lines = text.split('\n');
    where = ` at line ${lines.length}, column ${lines[lines.length - 1]!.length + 1} (unexpected end of input; a closing bracket is missing)`;
  }
  const what = message.replace(/ in JSON at position \d+.*$/s, '').replace(/^JSON\.parse: /, '');
  return new ConfigError(`JSON syntax error${where}: ${what}`, { source, cause: err });
}

// ---------------------------------------------------------------------------------------------
// default file, overrides

/** The first gost.yaml / gost.yml / gost.json in `dirs`, or undefined. */
export async function findDefaultConfig(dirs: string[]): Promise<string | undefined> {
  for (const dir of dirs) {
    for (const name of DEFAULT_NAMES) {
      const p = join(dir, name);
      try {
        if ((await stat(p)).isFile()) return p;
      } catch {
        // not there
      }
    }
  }
  return undefined;
}
