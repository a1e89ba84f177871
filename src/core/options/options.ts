/**
 * Option declarations: each key a part reads from its metadata is declared once, with its
 * aliases, type, default, range and documentation. `parseOptions` turns a part's metadata into
 * a typed object (a config error for a malformed or out-of-range value, naming the key and the
 * range); `nearestKey` finds the declared key closest to a misspelled one. The value schemas are
 * zod schemas over gost's metadata values: strings from the command line, typed values from YAML
 * or JSON. Keys match case-insensitively, as gost's metadata getters do.
 */
import { z } from 'zod';
import { ConfigError } from '../errors';
import { GO_FALSE, GO_TRUE, Metadata, formatDurationMs, parseGoDurationMs } from '../metadata';

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
  readonly schema: z.ZodType<T>;
  /** A zero value means the default (gost's `if v <= 0 { v = default }`). */
  readonly zeroIsDefault: boolean;
  /** A burrow addition or a burrow default that differs from gost's (★ in the reference). */
  readonly burrow: boolean;
  /** False for gost keys burrow does not implement: given, they get a warning and are ignored. */
  readonly implemented: boolean;
  /** False for gost keys that gost itself ignores in this place: accepted silently. */
  readonly warn: boolean;
}

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
  schema: z.ZodType<T>,
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
    schema,
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

function bounded(min: number | undefined, max: number | undefined): z.ZodNumber {
  let n = z.number();
  if (min !== undefined) n = n.min(min);
  if (max !== undefined) n = n.max(max);
  return n;
}

export interface NumberOpts<T> extends Common<T> {
  min?: number;
  max?: number;
}

/** A whole number (decimal text or a YAML number). */
export function int<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const schema = z
    .union([z.number(), z.string().trim().regex(DECIMAL).transform(Number)])
    .pipe(bounded(o.min, o.max).int());
  const expect = `an integer${rangeText(o.min, o.max, String)}`;
  return decl(key, 'int', schema as z.ZodType<number | T>, expect, o, o.default === undefined ? '—' : String(o.default), `integer${shortRange(o.min, o.max)}`);
}

/** A number, fractions allowed. */
export function num<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const schema = z
    .union([z.number(), z.string().trim().regex(/^[+-]?(\d+\.?\d*|\.\d+)$/).transform(Number)])
    .pipe(bounded(o.min, o.max));
  const expect = `a number${rangeText(o.min, o.max, String)}`;
  return decl(key, 'number', schema as z.ZodType<number | T>, expect, o, o.default === undefined ? '—' : String(o.default), `number${shortRange(o.min, o.max)}`);
}

/** A duration in milliseconds: Go duration text ("500ms", "1m30s") or a whole number of seconds. */
export function duration<T extends number | undefined>(key: string, o: NumberOpts<T>): OptionDecl<number | T> {
  const text = z.string().transform((s, ctx) => {
    const d = parseGoDurationMs(s);
    if (d !== undefined) return d;
    if (DECIMAL.test(s.trim())) return Number(s.trim()) * 1000;
    ctx.addIssue({ code: 'custom', message: 'not a duration' });
    return z.NEVER;
  });
  const schema = z.union([z.number().transform((n) => n * 1000), text]).pipe(bounded(o.min ?? 0, o.max));
  const expect = `a duration such as 500ms, 15s or 1m30s, or a number of seconds${rangeText(o.min ?? 0, o.max, formatDurationMs)}`;
  const range = o.min || o.max !== undefined ? shortRange(o.min, o.max, formatDurationMs) : '';
  return decl(key, 'duration', schema as z.ZodType<number | T>, expect, o, o.default === undefined ? '—' : formatDurationMs(o.default), `duration${range}`);
}

/** Go's strconv.ParseBool spellings, or a YAML boolean or number. */
export function bool<T extends boolean | undefined>(key: string, o: Common<T>): OptionDecl<boolean | T> {
  const spellings = [...GO_TRUE, ...GO_FALSE];
  const schema = z.union([
    z.boolean(),
    z.number().transform((n) => n !== 0),
    z
      .string()
      .trim()
      .refine((s) => spellings.includes(s))
      .transform((s) => GO_TRUE.includes(s)),
  ]);
  return decl(key, 'bool', schema as z.ZodType<boolean | T>, 'true or false', o, String(o.default ?? '—'), 'bool');
}

export interface StringOpts<T> extends Common<T> {
  /** A further check; returns what was expected when the value does not fit. */
  check?: (s: string) => string | undefined;
  expect?: string;
}

export function str<T extends string | undefined>(key: string, o: StringOpts<T>): OptionDecl<string | T> {
  const base = z.union([z.string(), z.number().transform(String), z.boolean().transform(String)]);
  const schema = o.check
    ? base.superRefine((s, ctx) => {
        if (s !== '' && o.check!(s) !== undefined) ctx.addIssue({ code: 'custom', message: o.check!(s)! });
      })
    : base;
  const d = o.default === undefined || o.default === '' ? '—' : String(o.default);
  return decl(key, 'string', schema as z.ZodType<string | T>, o.expect ?? 'a string', o, d, o.expect ?? 'string');
}

/** A list: a YAML sequence or a comma-separated string. */
export function list(key: string, o: Omit<Common<string[] | undefined>, 'default'>): OptionDecl<string[] | undefined> {
  const schema = z.union([
    z.array(z.union([z.string(), z.number()]).transform(String)),
    z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean)),
  ]);
  return decl(key, 'list', schema, 'a list (YAML sequence or comma-separated)', { ...o, default: undefined }, '—', 'list (a,b,…)');
}

/** A string map (YAML mapping), e.g. HTTP headers. */
export function map(key: string, o: Omit<Common<Record<string, string> | undefined>, 'default'>): OptionDecl<Record<string, string> | undefined> {
  const schema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String));
  return decl(key, 'map', schema, 'a mapping of names to values', { ...o, default: undefined }, '—', 'map (YAML)');
}

/** A list of objects (YAML only), kept as given; the part reads the fields. */
export function entries(key: string, o: Omit<Common<Record<string, unknown>[] | undefined>, 'default'>): OptionDecl<Record<string, unknown>[] | undefined> {
  const schema = z.array(z.record(z.string(), z.unknown()));
  return decl(key, 'entries', schema, 'a list of mappings', { ...o, default: undefined }, '—', 'list of maps (YAML)');
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
    schema: z.unknown(),
    zeroIsDefault: false,
    burrow: false,
    implemented: false,
    warn: o.warn ?? true,
  };
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
  const r = d.schema.safeParse(raw);
  if (!r.success) {
    const given = md.keys().find((k) => [d.key, ...d.aliases].some((a) => a.toLowerCase() === k)) ?? d.key;
    const key = [d.key, ...d.aliases].find((a) => a.toLowerCase() === given) ?? d.key;
    const custom = r.error.issues.find((i) => i.code === 'custom' && i.message !== 'not a duration');
    const expect = custom ? custom.message : d.expect;
    throw new ConfigError(`expected ${expect}, found ${shown(raw)}`, {
      source: at.source,
      path: at.path ? `${at.path}.${key}` : key,
    });
  }
  const v = r.data;
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
