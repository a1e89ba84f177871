/**
 * Option declarations: each key a part reads from its metadata is declared once, with its
 * aliases, type, default, range and documentation. `parseOptions` turns a part's metadata into
 * a typed object (a config error for a malformed or out-of-range value, naming the key and the
 * range); `nearestKey` finds the declared key closest to a misspelled one. Each declaration
 * carries its value parser over gost's metadata values: strings from the command line, typed
 * values from YAML or JSON. Keys match case-insensitively, as gost's metadata getters do.
 *
 * The parsers are a few lines each rather than zod schemas: this module is loaded on every start
 * (every part reads its options through it), and loading zod costs about as much as the rest of
 * a command-line start; zod stays with the config file schema (config/schema.ts), which is loaded
 * only when a file is given.
 */
import { ConfigError } from '../errors';
import { Metadata, formatDurationMs, parseGoDurationMs } from '../metadata';
import { parseGoBool } from '../bool';

export type OptionType = 'bool' | 'int' | 'number' | 'duration' | 'string' | 'list' | 'map' | 'entries' | 'any';

export interface OptionDecl<T = unknown> {
  /** The key as documented (gost's spelling). */
  readonly key: string;
  /** Other spellings gost accepts for the same setting; the key itself wins when several are given. */
  readonly aliases: readonly string[];
  readonly type: OptionType;
  readonly doc: string;
  readonly default: T;
  /** The default as the reference shows it. */
  readonly defaultText: string;
  /** What a valid value is ("an integer from 0 to 255"), used in errors. */
  readonly expect: string;
  /** The same, short, for the reference's tables ("integer 0–255"). */
  readonly valueText: string;
  /** The value, or an `Invalid` (with what was expected when more precise than `expect`). */
  readonly parse: (raw: unknown) => T | Invalid;
  /** A zero value means the default (gost's `if v <= 0 { v = default }`). */
  readonly zeroIsDefault: boolean;
  /** A burrow addition or a burrow default that differs from gost's (★ in the reference). */
  readonly burrow: boolean;
  /** False for gost keys burrow does not implement: given, they get a warning and are ignored. */
  readonly implemented: boolean;
  /** False for gost keys that gost itself ignores in this place: accepted silently. */
  readonly warn: boolean;
}

/** A value that does not fit; `expect` overrides the declaration's when set. */
export class Invalid {
  constructor(readonly expect?: string) {}
}
const INVALID = new Invalid();

export type OptionShape = Record<string, OptionDecl<unknown>>;
export type ParsedOptions<S extends OptionShape> = { [K in keyof S]: S[K] extends OptionDecl<infer T> ? T : never };

interface Common<T> {
  aliases?: readonly string[];
  doc: string;
  default: T;
  defaultText?: string;
  burrow?: boolean;
  zeroIsDefault?: boolean;
}

function decl<T>(
  key: string,
  type: OptionType,
  parse: (raw: unknown) => T | Invalid,
  expect: string,
  o: Common<T>,
  defaultText: string,
  valueText: string = type,
): OptionDecl<T> {
  return {
    key,
    aliases: o.aliases ?? [],
    type,
    doc: o.doc,
    default: o.default,
    defaultText: o.defaultText ?? defaultText,
    expect,
    valueText,
    parse,
    zeroIsDefault: o.zeroIsDefault ?? false,
    burrow: o.burrow ?? false,
    implemented: true,
    warn: true,
  };
}

const DECIMAL = /^[+-]?\d+$/;

function rangeText(min: number | undefined, max: number | undefined, fmt: (n: number) => string): string {
  if (min !== undefined && max !== undefined) return ` from ${fmt(min)} to ${fmt(max)}`;
  if (min !== undefined) return ` of at least ${fmt(min)}`;
  if (max !== undefined) return ` of at most ${fmt(max)}`;
  return '';
}

function shortRange(min: number | undefined, max: number | undefined, fmt: (n: number) => string = String): string {
  if (min !== undefined && max !== undefined) return ` ${fmt(min)}–${fmt(max)}`;
  if (min !== undefined) return ` ≥ ${fmt(min)}`;
  if (max !== undefined) return ` ≤ ${fmt(max)}`;
  return '';
}

function inRange(n: number, min: number | undefined, max: number | undefined): number | Invalid {
  if (!Number.isFinite(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) return INVALID;
  return n;
}

export interface NumberOpts<T> extends Common<T> {
  min?: number;
  max?: number;
}

/** A whole number (decimal text or a YAML number). */
export function int<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const parse = (raw: unknown): number | Invalid => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL.test(raw.trim()) ? Number(raw.trim()) : NaN;
    return Number.isInteger(n) ? inRange(n, o.min, o.max) : INVALID;
  };
  const expect = `an integer${rangeText(o.min, o.max, String)}`;
  return decl(key, 'int', parse as (raw: unknown) => number | T | Invalid, expect, o, o.default === undefined ? '—' : String(o.default), `integer${shortRange(o.min, o.max)}`);
}

/** A number, fractions allowed. */
export function num<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const parse = (raw: unknown): number | Invalid => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^[+-]?(\d+\.?\d*|\.\d+)$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    return inRange(n, o.min, o.max);
  };
  const expect = `a number${rangeText(o.min, o.max, String)}`;
  return decl(key, 'number', parse as (raw: unknown) => number | T | Invalid, expect, o, o.default === undefined ? '—' : String(o.default), `number${shortRange(o.min, o.max)}`);
}

/** A duration in milliseconds: Go duration text ("500ms", "1m30s") or a whole number of seconds. */
export function duration<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const parse = (raw: unknown): number | Invalid => {
    let ms = NaN;
    if (typeof raw === 'number') ms = raw * 1000;
    else if (typeof raw === 'string') ms = parseGoDurationMs(raw) ?? (DECIMAL.test(raw.trim()) ? Number(raw.trim()) * 1000 : NaN);
    return inRange(ms, o.min ?? 0, o.max);
  };
  const expect = `a duration such as 500ms, 15s or 1m30s, or a number of seconds${rangeText(o.min ?? 0, o.max, formatDurationMs)}`;
  const range = o.min || o.max !== undefined ? shortRange(o.min, o.max, formatDurationMs) : '';
  return decl(key, 'duration', parse as (raw: unknown) => number | T | Invalid, expect, o, o.default === undefined ? '—' : formatDurationMs(o.default), `duration${range}`);
}

/** Go's strconv.ParseBool spellings, or a YAML boolean or number. */
export function bool<T extends boolean | undefined>(key: string, o: Common<T>): OptionDecl<boolean | T> {
  const parse = (raw: unknown): boolean | Invalid => {
    if (typeof raw === 'boolean') return raw;
    if (typeof raw === 'number') return raw !== 0;
    if (typeof raw === 'string') {
      const b = parseGoBool(raw.trim());
      if (b !== undefined) return b;
    }
    return INVALID;
  };
  return decl(key, 'bool', parse as (raw: unknown) => boolean | T | Invalid, 'true or false', o, String(o.default ?? '—'), 'bool');
}

export interface StringOpts<T> extends Common<T> {
  /** A further check; returns what was expected when the value does not fit. */
  check?: (s: string) => string | undefined;
  expect?: string;
}

export function str<T extends string | undefined>(key: string, o: StringOpts<T>): OptionDecl<string | T> {
  const parse = (raw: unknown): string | Invalid => {
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') return INVALID;
    const v = String(raw);
    const wrong = v !== '' && o.check ? o.check(v) : undefined;
    return wrong === undefined ? v : new Invalid(wrong);
  };
  const d = o.default === undefined || o.default === '' ? '—' : String(o.default);
  return decl(key, 'string', parse as (raw: unknown) => string | T | Invalid, o.expect ?? 'a string', o, d, o.expect ?? 'string');
}

/** A list: a YAML sequence or a comma-separated string. */
export function list(key: string, o: Omit<Common<string[] | undefined>, 'default'>): OptionDecl<string[] | undefined> {
  const parse = (raw: unknown): string[] | Invalid => {
    if (typeof raw === 'string') return raw.split(',').map((x) => x.trim()).filter(Boolean);
    if (Array.isArray(raw) && raw.every((x) => typeof x === 'string' || typeof x === 'number')) return raw.map(String);
    return INVALID;
  };
  return decl(key, 'list', parse, 'a list (YAML sequence or comma-separated)', { ...o, default: undefined }, '—', 'list (a,b,…)');
}

/** A string map (YAML mapping), e.g. HTTP headers. */
export function map(key: string, o: Omit<Common<Record<string, string> | undefined>, 'default'>): OptionDecl<Record<string, string> | undefined> {
  const parse = (raw: unknown): Record<string, string> | Invalid => {
    if (!isPlainObject(raw)) return INVALID;
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') return INVALID;
      out[k] = String(v);
    }
    return out;
  };
  return decl(key, 'map', parse, 'a mapping of names to values', { ...o, default: undefined }, '—', 'map (YAML)');
}

/** A list of objects (YAML only), kept as given; the part reads the fields. */
export function entries(key: string, o: Omit<Common<Record<string, unknown>[] | undefined>, 'default'>): OptionDecl<Record<string, unknown>[] | undefined> {
  const parse = (raw: unknown): Record<string, unknown>[] | Invalid =>
    Array.isArray(raw) && raw.every(isPlainObject) ? (raw as Record<string, unknown>[]) : INVALID;
  return decl(key, 'entries', parse, 'a list of mappings', { ...o, default: undefined }, '—', 'list of maps (YAML)');
}

/**
 * A gost key burrow does not implement. `warn: false` for keys gost itself ignores in this place
 * (so a config written for gost starts without noise).
 */
export function gostOnly(key: string, doc: string, o: { aliases?: readonly string[]; warn?: boolean } = {}): OptionDecl<unknown> {
  return {
    key,
    aliases: o.aliases ?? [],
    type: 'any',
    doc,
    default: undefined,
    defaultText: '—',
    expect: 'any value',
    valueText: 'any',
    parse: (raw) => raw,
    zeroIsDefault: false,
    burrow: false,
    implemented: false,
    warn: o.warn ?? true,
  };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Where options were given, for error messages (a ConfigError's source and path). */
export interface OptionsAt {
  source?: string;
  /** Path of the metadata map, e.g. "services[0].handler.metadata". */
  path?: string;
}

function shown(raw: unknown): string {
  if (typeof raw === 'string') return `'${raw}'`;
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch {
    return String(raw);
  }
}

/** Parses one option from `md`; undefined (or '' for non-strings) means "not given". */
export function parseOption<T>(d: OptionDecl<T>, md: Metadata, at: OptionsAt = {}): T {
  const raw = md.get(d.key, ...d.aliases);
  if (raw === undefined || raw === null) return d.default;
  if (!d.implemented) return d.default;
  if (raw === '' && d.type !== 'string') return d.default;
  const v = d.parse(raw);
  if (v instanceof Invalid) {
    const given = md.keys().find((k) => [d.key, ...d.aliases].some((a) => a.toLowerCase() === k)) ?? d.key;
    const key = [d.key, ...d.aliases].find((a) => a.toLowerCase() === given) ?? d.key;
    throw new ConfigError(`expected ${v.expect ?? d.expect}, found ${shown(raw)}`, {
      source: at.source,
      path: at.path ? `${at.path}.${key}` : key,
    });
  }
  if (d.zeroIsDefault && v === 0) return d.default;
  return v;
}

/** All options of a shape from `md`, typed; throws ConfigError for the first bad value. */
export function parseOptions<S extends OptionShape>(shape: S, md: Metadata, at: OptionsAt = {}): ParsedOptions<S> {
  const out: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(shape)) out[name] = parseOption(d, md, at);
  return out as ParsedOptions<S>;
}

/** Every spelling of every option in the shapes, lower-cased, to its declaration. */
export function keyIndex(shapes: readonly OptionShape[]): Map<string, OptionDecl<unknown>> {
  const m = new Map<string, OptionDecl<unknown>>();
  for (const s of shapes) {
    for (const d of Object.values(s)) for (const k of [d.key, ...d.aliases]) if (!m.has(k.toLowerCase())) m.set(k.toLowerCase(), d);
  }
  return m;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The declared key closest to `key` (case ignored), if one is close enough to be a likely typo. */
export function nearestKey(key: string, shapes: readonly OptionShape[]): string | undefined {
  const lk = key.toLowerCase();
  let best: { key: string; dist: number } | undefined;
  for (const s of shapes) {
    for (const d of Object.values(s)) {
      for (const k of [d.key, ...d.aliases]) {
        const dist = editDistance(lk, k.toLowerCase());
        if (!best || dist < best.dist) best = { key: k, dist };
      }
    }
  }
  if (!best) return undefined;
  return best.dist <= Math.max(2, Math.floor(lk.length / 4)) ? best.key : undefined;
}
