/**
 * Forwarder node rules (`forwarder.nodes[].matcher.rule`), gost's Traefik-style request routing
 * (reverse-proxy docs): matchers such as Host(`example.com`) or PathPrefix(`/api`) combined
 * with `&&`, `||`, `!` and parentheses. A node with a rule is chosen when its rule matches; among
 * several, the highest `matcher.priority` wins (default: the rule's length, so the longer rule).
 *
 * What a rule can see depends on the traffic: the host (stream header, HTTP Host or TLS SNI),
 * the protocol (`http`, `tls`) and the client IP always; method, path, query and headers only
 * for sniffed HTTP requests (elsewhere those matchers do not match).
 */
import { isIP } from 'node:net';
import { stripPort } from '../core/addr';

export interface MatchInput {
  host?: string;
  /** "http" or "tls" when sniffed. */
  proto?: string;
  method?: string;
  /** Path and query ("/a/b?x=1"). */
  url?: string;
  headers?: Record<string, string | string[] | undefined>;
  clientIP?: string;
}

export type Rule = (m: MatchInput) => boolean;

export class RuleError extends Error {}

// ---- tokens ---------------------------------------------------------------------------------

type Token =
  | { t: 'id'; v: string; at: number }
  | { t: 'str'; v: string; at: number }
  | { t: '(' | ')' | ',' | '&&' | '||' | '!'; at: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')' || c === ',' || c === '!') {
      out.push({ t: c, at: i });
      i++;
    } else if (src.startsWith('&&', i) || src.startsWith('||', i)) {
      out.push({ t: src.slice(i, i + 2) as '&&' | '||', at: i });
      i += 2;
    } else if (c === '`' || c === '"') {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new RuleError(`unterminated string at ${i}`);
      out.push({ t: 'str', v: src.slice(i + 1, end), at: i });
      i = end + 1;
    } else if (/[A-Za-z]/.test(c)) {
      const m = /^[A-Za-z][A-Za-z0-9]*/.exec(src.slice(i))!;
      out.push({ t: 'id', v: m[0], at: i });
      i += m[0].length;
    } else {
      throw new RuleError(`unexpected "${c}" at ${i}`);
    }
  }
  return out;
}

// ---- matchers -------------------------------------------------------------------------------

function hostOf(m: MatchInput): string {
  return m.host ? stripPort(m.host).toLowerCase().replace(/\.$/, '') : '';
}

/** gost's filter.host semantics: "*.x" / ".x" match x and its subdomains, else exact. */
function hostIs(pattern: string, host: string): boolean {
  let p = pattern.trim().toLowerCase();
  if (p.startsWith('*')) p = p.slice(1);
  if (p.startsWith('.')) return host === p.slice(1) || host.endsWith(p);
  return host === p;
}

/** The path of a request's URL (without the query), or undefined for traffic that is not HTTP. */
export function pathOf(m: MatchInput): string | undefined {
  if (m.url === undefined) return undefined;
  const q = m.url.indexOf('?');
  return q < 0 ? m.url : m.url.slice(0, q);
}

function queryOf(m: MatchInput): URLSearchParams | undefined {
  if (m.url === undefined) return undefined;
  const q = m.url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : m.url.slice(q + 1));
}

function headerValues(m: MatchInput, name: string): string[] {
  if (!m.headers) return [];
  const v = m.headers[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function regex(src: string, what: string): RegExp {
  try {
    return new RegExp(src);
  } catch (err) {
    throw new RuleError(`${what}: "${src}" is not a regular expression (${(err as Error).message})`);
  }
}

/** An IP or CIDR test. */
function ipMatcher(spec: string): (ip: string) => boolean {
  const [addr, bitsText] = spec.split('/');
  const fam = isIP(addr ?? '');
  if (!fam) throw new RuleError(`ClientIP: "${spec}" is not an IP address or CIDR`);
  const bits = bitsText === undefined ? (fam === 4 ? 32 : 128) : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > (fam === 4 ? 32 : 128)) throw new RuleError(`ClientIP: bad prefix length in "${spec}"`);
  const want = ipBits(addr!, fam);
  return (ip: string) => {
    const a = stripPort(ip).replace(/^::ffff:(?=\d+\.)/, '');
    const f = isIP(a);
    if (f !== fam) return false;
    const got = ipBits(a, f);
    for (let i = 0; i < bits; i++) if (got[i] !== want[i]) return false;
    return true;
  };
}

function ipBits(ip: string, fam: number): number[] {
  const bytes: number[] = [];
  if (fam === 4) {
    for (const p of ip.split('.')) bytes.push(Number(p));
  } else {
    const [head, tail] = ip.split('::') as [string, string | undefined];
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    for (const g of groups) {
      const n = parseInt(g || '0', 16);
      bytes.push(n >> 8, n & 0xff);
    }
  }
  const bits: number[] = [];
  for (const b of bytes) for (let i = 7; i >= 0; i--) bits.push((b >> i) & 1);
  return bits;
}

type Builder = (args: string[]) => Rule;

function arity(name: string, args: string[], min: number, max: number): void {
  if (args.length < min || args.length > max) {
    throw new RuleError(`${name} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, found ${args.length}`);
  }
}

const MATCHERS: Record<string, Builder> = {
  Host(args) {
    if (args.length < 1) throw new RuleError('Host takes at least 1 argument');
    return (m) => {
      const h = hostOf(m);
      return h !== '' && args.some((a) => hostIs(a, h));
    };
  },
  HostRegexp(args) {
    arity('HostRegexp', args, 1, 1);
    const re = regex(args[0]!, 'HostRegexp');
    return (m) => hostOf(m) !== '' && re.test(hostOf(m));
  },
  Method(args) {
    if (args.length < 1) throw new RuleError('Method takes at least 1 argument');
    const want = args.map((a) => a.toUpperCase());
    return (m) => m.method !== undefined && want.includes(m.method.toUpperCase());
  },
  Path(args) {
    if (args.length < 1) throw new RuleError('Path takes at least 1 argument');
    return (m) => {
      const p = pathOf(m);
      return p !== undefined && args.includes(p);
    };
  },
  PathPrefix(args) {
    if (args.length < 1) throw new RuleError('PathPrefix takes at least 1 argument');
    return (m) => {
      const p = pathOf(m);
      return p !== undefined && args.some((a) => p.startsWith(a));
    };
  },
  PathRegexp(args) {
    arity('PathRegexp', args, 1, 1);
    const re = regex(args[0]!, 'PathRegexp');
    return (m) => {
      const p = pathOf(m);
      return p !== undefined && re.test(p);
    };
  },
  Query(args) {
    arity('Query', args, 1, 2);
    const [k, v] = args as [string, string | undefined];
    return (m) => {
      const q = queryOf(m);
      if (!q || !q.has(k)) return false;
      return v === undefined || q.getAll(k).includes(v);
    };
  },
  QueryRegexp(args) {
    arity('QueryRegexp', args, 2, 2);
    const re = regex(args[1]!, 'QueryRegexp');
    return (m) => (queryOf(m)?.getAll(args[0]!) ?? []).some((v) => re.test(v));
  },
  Header(args) {
    arity('Header', args, 1, 2);
    const [k, v] = args as [string, string | undefined];
    return (m) => {
      const vals = headerValues(m, k);
      return vals.length > 0 && (v === undefined || vals.includes(v));
    };
  },
  HeaderRegexp(args) {
    arity('HeaderRegexp', args, 2, 2);
    const re = regex(args[1]!, 'HeaderRegexp');
    return (m) => headerValues(m, args[0]!).some((v) => re.test(v));
  },
  ClientIP(args) {
    if (args.length < 1) throw new RuleError('ClientIP takes at least 1 argument');
    const tests = args.map(ipMatcher);
    return (m) => m.clientIP !== undefined && tests.some((t) => t(m.clientIP!));
  },
  Proto(args) {
    arity('Proto', args, 1, 1);
    const want = args[0]!.toLowerCase();
    return (m) => m.proto !== undefined && m.proto.toLowerCase() === want;
  },
};

export const RULE_MATCHERS = Object.keys(MATCHERS);

// ---- parser ---------------------------------------------------------------------------------

/** Parses a rule; a RuleError says what is wrong and where. */
export function parseRule(src: string): Rule {
  const toks = tokenize(src);
  let i = 0;
  const peek = (): Token | undefined => toks[i];
  const expect = (t: Token['t']): Token => {
    const k = toks[i];
    if (!k || k.t !== t) throw new RuleError(`expected "${t}" ${k ? `at ${k.at}` : 'at the end'}`);
    i++;
    return k;
  };
  /** Operands of `op` (left-associative), each read by `next`. */
  const chain = (op: '||' | '&&', next: () => Rule): Rule => {
    let left = next();
    while (peek()?.t === op) {
      i++;
      const l = left;
      const r = next();
      left = op === '||' ? (m) => l(m) || r(m) : (m) => l(m) && r(m);
    }
    return left;
  };
  const or = (): Rule => chain('||', and);
  const and = (): Rule => chain('&&', unary);
  const unary = (): Rule => {
    if (peek()?.t === '!') {
      i++;
      const r = unary();
      return (m) => !r(m);
    }
    return primary();
  };
  const primary = (): Rule => {
    const k = peek();
    if (!k) throw new RuleError('unexpected end of the rule');
    if (k.t === '(') {
      i++;
      const r = or();
      expect(')');
      return r;
    }
    if (k.t !== 'id') throw new RuleError(`expected a matcher such as Host(\`example.com\`) at ${k.at}`);
    i++;
    const build = MATCHERS[k.v];
    if (!build) {
      throw new RuleError(`unknown matcher ${k.v} (burrow knows ${RULE_MATCHERS.join(', ')})`);
    }
    expect('(');
    const args: string[] = [];
    if (peek()?.t !== ')') {
      for (;;) {
        const a = expect('str') as { v: string };
        args.push(a.v);
        if (peek()?.t !== ',') break;
        i++;
      }
    }
    expect(')');
    return build(args);
  };
  if (toks.length === 0) throw new RuleError('the rule is empty');
  const rule = or();
  if (i < toks.length) throw new RuleError(`unexpected "${src.slice(toks[i]!.at)}" at ${toks[i]!.at}`);
  return rule;
}
