/**
 * gost-style metadata: a free-form map whose keys are matched case-insensitively and whose
 * values are coerced as spec/config.md §1.1 describes (strings from the CLI, typed values from
 * YAML/JSON). Getters take alias keys; the first present key wins.
 */
import { isGoTrue } from './bool';

export type MetadataInput = Record<string, unknown> | undefined | null;

export class Metadata {
  readonly #map = new Map<string, unknown>();

  constructor(input?: MetadataInput) {
    if (input) for (const [k, v] of Object.entries(input)) this.#map.set(k.toLowerCase(), v);
  }

  /** Raw value of the first present key, or undefined. */
  get(...keys: string[]): unknown {
    for (const k of keys) {
      const lk = k.toLowerCase();
      if (this.#map.has(lk)) return this.#map.get(lk);
    }
    return undefined;
  }

  has(...keys: string[]): boolean {
    return keys.some((k) => this.#map.has(k.toLowerCase()));
  }

  keys(): string[] {
    return [...this.#map.keys()];
  }

  getString(...keys: string[]): string | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
    return undefined;
  }

  getBool(...keys: string[]): boolean | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    return coerceBool(v);
  }

  getInt(...keys: string[]): number | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    return coerceInt(v);
  }

  getFloat(...keys: string[]): number | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number') return v;
    if (typeof v === 'string') {
      const n = Number(v.trim());
      return Number.isFinite(n) ? n : 0;
    }
    if (typeof v === 'boolean') return v ? 1 : 0;
    return 0;
  }

  /** Duration in milliseconds: Go duration text ("500ms", "1m30s") or a number of seconds. */
  getDurationMs(...keys: string[]): number | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    return coerceDurationMs(v);
  }

  /** A list from a YAML sequence or a comma-separated string. */
  getStrings(...keys: string[]): string[] | undefined {
    const v = this.get(...keys);
    if (v === undefined || v === null) return undefined;
    if (Array.isArray(v)) return v.map((x) => String(x));
    if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
    return [String(v)];
  }

  /** A string map (e.g. ws `header`). */
  getStringMap(...keys: string[]): Record<string, string> | undefined {
    const v = this.get(...keys);
    if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) out[k] = String(val);
    return out;
  }

  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.#map);
  }
}

/** Go strconv.ParseBool semantics; ints ≠ 0 are true; anything else false. */
export function coerceBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') {
    return isGoTrue(v.trim());
  }
  return false;
}

/** Decimal integer; bools as 0/1; invalid → 0 (as gost). */
export function coerceInt(v: unknown): number {
  if (typeof v === 'number') return Math.trunc(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const s = v.trim();
    if (!/^[+-]?\d+$/.test(s)) return 0;
    return Number.parseInt(s, 10);
  }
  return 0;
}

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration string ("1h2m3.5s", "500ms", "-1s"). Returns undefined if it is not one.
 */
export function parseGoDurationMs(s: string): number | undefined {
  const str = s.trim();
  if (str === '0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(str);
  if (!m) return undefined;
  const sign = m[1] === '-' ? -1 : 1;
  let total = 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;
  let part: RegExpExecArray | null;
  while ((part = re.exec(str)) !== null) total += Number(part[1]) * UNIT_MS[part[2]!]!;
  return sign * total;
}

/** gost duration getter: Go duration text, else an integer number of seconds. */
export function coerceDurationMs(v: unknown): number {
  if (typeof v === 'number') return v * 1000;
  if (typeof v === 'string') {
    const d = parseGoDurationMs(v);
    if (d !== undefined) return d;
    const n = coerceInt(v);
    return n * 1000;
  }
  return 0;
}

/** Renders milliseconds as a Go duration string ("1m30s", "500ms"). */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  let rest = ms / 1000;
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  rest -= m * 60;
  let out = '';
  if (h) out += `${h}h`;
  if (m || h) out += `${m}m`;
  out += `${Number(rest.toFixed(3))}s`;
  return out;
}
