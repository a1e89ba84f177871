/**
 * A hand-written splitter for gost's service (-L) and node (-F) URLs (spec/config.md §4.2):
 *
 *   [handler[+listener]://][user:pass@][host]:port[/target1,target2,…][?k=v&…]
 *   [connector[+dialer]://][user:pass@]host:port[,host2:port2,…][?k=v&…]
 *
 * `new URL()` is not used: it rewrites "$", refuses empty hosts and ":0", and lower-cases hosts.
 * The splitting follows Go's net/url as gost uses it: the fragment is dropped, the query is split
 * on "&" and decoded ("+" is a space, %XX escapes), the first value of each key wins, userinfo is
 * everything before the last "@" of the authority, and the path is kept as written.
 * Pure; throws ConfigError only.
 */
import { ConfigError } from '../core/errors';

export type UrlFlag = '-L' | '-F';

export interface GostUrl {
  /** The argument as given. */
  raw: string;
  /** Lower-cased scheme after gost's rewrites (no scheme → "auto", "https" → "http+tls"). */
  scheme: string;
  /** First scheme part: handler (-L) or connector (-F). */
  first: string;
  /** Second scheme part: listener (-L) or dialer (-F); equals `first` for a one-part scheme. */
  second: string;
  /** True when the scheme was written as "a+b". */
  twoPart: boolean;
  user?: { username: string; password?: string };
  /** Authority without userinfo: "host:port", ":0", "", "[::1]:80", "a:1,b:2" (-F). */
  host: string;
  /** Path as written, including the leading "/" ("" when there is none). */
  path: string;
  /** Decoded query parameters, first value of each key, in order of first appearance. */
  query: Array<[string, string]>;
}

const SCHEME_RE = /^[a-z][a-z0-9+.-]*$/;
// Go's url.Parse refuses ASCII control characters anywhere in a URL.
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const BAD_HOST_RE = /[\s"<>\\^`{|}]/;

/** Splits one -L/-F value. Throws ConfigError naming the flag and the value. */
export function parseGostUrl(raw: string, flag: UrlFlag): GostUrl {
  const source = `${flag} ${JSON.stringify(raw)}`;
  const fail = (msg: string): never => {
    throw new ConfigError(msg, { source });
  };
  let s = raw.trim();
  if (s === '') fail('empty value (expected a URL such as tunnel://:8443)');
  if (CONTROL_RE.test(s)) fail('the value contains a control character');
  if (s.startsWith(':') || !s.includes('://')) s = `auto://${s}`;

  const sep = s.indexOf('://');
  let scheme = s.slice(0, sep).toLowerCase();
  if (!SCHEME_RE.test(scheme)) {
    fail(`bad scheme "${s.slice(0, sep)}" (expected letters, digits, "+", "-" or ".", starting with a letter)`);
  }
  if (scheme === 'https') scheme = 'http+tls';
  const parts = scheme.split('+');
  if (parts.length > 2) fail(`scheme "${scheme}" has more than two parts (expected ${flag === '-L' ? 'handler+listener' : 'connector+dialer'})`);
  if (parts.some((p) => p === '')) fail(`scheme "${scheme}" has an empty part`);

  let rest = s.slice(sep + 3);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  let rawQuery = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    rawQuery = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash) : '';

  let user: GostUrl['user'];
  let host = authority;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const info = authority.slice(0, at);
    host = authority.slice(at + 1);
    const colon = info.indexOf(':');
    const username = unescapeOrFail(colon >= 0 ? info.slice(0, colon) : info, false, 'user name', fail);
    user = colon >= 0 ? { username, password: unescapeOrFail(info.slice(colon + 1), false, 'password', fail) } : { username };
  }
  if (BAD_HOST_RE.test(host)) fail(`bad character in host "${host}"`);
  if (path !== '') checkEscapes(path, 'path', fail);

  return {
    raw,
    scheme,
    first: parts[0]!,
    second: parts[1] ?? parts[0]!,
    twoPart: parts.length === 2,
    ...(user ? { user } : {}),
    host,
    path,
    query: parseQuery(rawQuery, fail),
  };
}

/** Go's url.ParseQuery, keeping the first value of each key; refuses ";" and bad escapes. */
function parseQuery(raw: string, fail: (msg: string) => never): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const piece of raw.split('&')) {
    if (piece === '') continue;
    if (piece.includes(';')) fail(`";" in query parameter "${piece}" (separate parameters with "&")`);
    const eq = piece.indexOf('=');
    const key = unescapeOrFail(eq >= 0 ? piece.slice(0, eq) : piece, true, 'query key', fail);
    const value = unescapeOrFail(eq >= 0 ? piece.slice(eq + 1) : '', true, `value of "${piece.slice(0, eq >= 0 ? eq : undefined)}"`, fail);
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    out.push([key, value]);
  }
  return out;
}

function checkEscapes(s: string, what: string, fail: (msg: string) => never): void {
  const bad = /%(?![0-9a-fA-F]{2})/.exec(s);
  if (bad) fail(`bad escape "${s.slice(bad.index, bad.index + 3)}" in ${what} (expected %XX with two hex digits)`);
}

/** Percent-decodes like Go's url unescape; `plusIsSpace` for query components. */
export function unescape(s: string, plusIsSpace: boolean): string {
  if (!s.includes('%') && !(plusIsSpace && s.includes('+'))) return s;
  const chunks: Buffer[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`bad escape "%${hex}" (expected %XX with two hex digits)`);
      chunks.push(Buffer.of(Number.parseInt(hex, 16)));
      i += 3;
    } else if (c === '+' && plusIsSpace) {
      chunks.push(Buffer.of(0x20));
      i += 1;
    } else {
      let j = i + 1;
      while (j < s.length && s[j] !== '%' && !(plusIsSpace && s[j] === '+')) j++;
      chunks.push(Buffer.from(s.slice(i, j), 'utf8'));
      i = j;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

function unescapeOrFail(s: string, plusIsSpace: boolean, what: string, fail: (msg: string) => never): string {
  try {
    return unescape(s, plusIsSpace);
  } catch (err) {
    return fail(`${(err as Error).message} in ${what}`);
  }
}
