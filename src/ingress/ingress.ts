/**
 * Ingress: host name → tunnel ID rules (behavior.md §1).
 *
 * Lookup follows gost's GetRule: strip a port, try the exact key, then "." + host (so a
 * ".example.com" rule also matches the apex), then walk up the labels so the most specific
 * wildcard wins. Keys are stored with one leading "*" removed ("*.example.com" → ".example.com").
 *
 * Deliberate deviations from gost (documented in the README):
 * - matching is case-insensitive and ignores one trailing dot (DNS names are case-insensitive;
 *   gost compares bytes, so "EXAMPLE.org" gets no route there);
 * - blank or malformed lines of a rule file are skipped instead of producing empty rules.
 *
 * Sources: inline `rules`, a `file` (reloaded when it changes, and every `reload` period), a
 * `redis` key (a hash of hostname → endpoint, or a set of "hostname endpoint" lines) and an
 * `http` URL (a body in the file format), the last two read at start and every `reload` period;
 * merged in gost's order (inline, file, redis, http; later wins). A source that fails is logged
 * as a warning and contributes nothing for that round.
 */
import { FilePoller } from '../loader/file-watch';
import type { Logger } from 'pino';
import { splitHostPort } from '../core/addr';
import { domainToASCII } from 'node:url';
import { LoaderSources, coalesced, type HttpSourceConfig, type RedisData, type RedisSourceConfig } from '../loader/sources';
import { parseTunnelRules } from '../core/options/tunnel-rules';

export interface IngressRule {
  hostname: string;
  endpoint: string;
}

/** Where a host leads: the tunnel ID text (lowercase UUID) and whether the rule is private. */
export interface Route {
  tunnelId: string;
  private: boolean;
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/;

/**
 * Parses a rule endpoint: an optional "$" (private) and a UUID. Returns undefined for text that
 * is not a UUID (gost turns it into the zero ID, i.e. "no route").
 */
export function parseEndpoint(endpoint: string): Route | undefined {
  let text = endpoint.trim();
  let priv = false;
  if (text.startsWith('$')) {
    priv = true;
    text = text.slice(1);
  }
  text = text.toLowerCase();
  if (text.startsWith('urn:uuid:')) text = text.slice(9);
  if (text.startsWith('{') && text.endsWith('}')) text = text.slice(1, -1);
  if (!UUID_RE.test(text)) return undefined;
  const hex = text.replace(/-/g, '');
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  if (id === '00000000-0000-0000-0000-000000000000') return undefined;
  return { tunnelId: id, private: priv };
}

/**
 * Internationalised names compare in their ASCII (punycode) form, which is what browsers send:
 * a rule or a Host written in Unicode matches its punycode twin. A name that has no valid ASCII
 * form matches nothing (rather than falling through to a wildcard as raw bytes).
 */
function toAscii(name: string): string {
  if (/^[\x00-\x7f]*$/.test(name)) return name.toLowerCase();
  // HTTP header values arrive as latin1 text, so the raw UTF-8 bytes of a Host come as mojibake:
  // read them back as UTF-8 when they are valid UTF-8 (a name typed in Unicode is not).
  if (!/[^\x00-\xff]/.test(name)) {
    const utf8 = Buffer.from(name, 'latin1').toString('utf8');
    if (!utf8.includes('\ufffd')) name = utf8;
  }
  const leadingDot = name.startsWith('.');
  const a = domainToASCII(leadingDot ? name.slice(1) : name);
  if (!a) return '\u0000invalid';
  return (leadingDot ? '.' : '') + a;
}

/** Canonical lookup key of a host: port stripped, lower-cased, one trailing dot removed. */
export function normalizeHost(host: string): string {
  let h = host.trim();
  try {
    h = splitHostPort(h).host;
  } catch {
    /* keep as is */
  }
  h = toAscii(h);
  if (h.endsWith('.') && h.length > 1) h = h.slice(0, -1);
  return h;
}

function ruleKey(hostname: string): string {
  let k = hostname.trim();
  if (k.startsWith('*')) k = k.slice(1);
  k = toAscii(k);
  if (k.endsWith('.') && k.length > 1) k = k.slice(0, -1);
  return k;
}

/** Parses the rule file format: "hostname endpoint" per line, "#" comments. */
export function parseRuleText(text: string): IngressRule[] {
  const rules: IngressRule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    rules.push({ hostname: fields[0]!, endpoint: fields[1]! });
  }
  return rules;
}

/** Parses the `tunnel=` shorthand: "host:uuid,host2:$uuid" split at the first ':' (§1.3). */
export function parseTunnelShorthand(value: string): IngressRule[] {
  return parseTunnelRules(value).rules;
}

export interface IngressOptions {
  name: string;
  rules?: IngressRule[];
  filePath?: string;
  redis?: RedisSourceConfig;
  http?: HttpSourceConfig;
  reloadMs?: number;
  logger: Logger;
}

/** Rules from a Redis key: hash fields are host names, set members are rule lines. */
export function rulesFromRedis(data: RedisData): IngressRule[] {
  if (data.kind === 'set') return parseRuleText(data.lines.join('\n'));
  return data.entries.map(([hostname, endpoint]) => ({ hostname: hostname.trim(), endpoint: endpoint.trim() }));
}

export class Ingress {
  readonly name: string;
  #table = new Map<string, Route | null>();
  #inline: IngressRule[];
  /** The rules of the file, Redis and HTTP sources as last read. */
  #external: IngressRule[][] = [];
  readonly #reloadMs: number;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  readonly #poller: FilePoller | undefined;
  readonly #sources: LoaderSources<IngressRule>;
  /** Reloads run one at a time (a slow source must not let an older table win). */
  readonly #reload = coalesced(() => this.#reloadNow());

  constructor(opts: IngressOptions) {
    this.name = opts.name;
    this.#inline = opts.rules ?? [];
    this.#reloadMs = opts.reloadMs && opts.reloadMs > 0 ? Math.max(opts.reloadMs, 1000) : 0;
    this.#logger = opts.logger.child({ kind: 'ingress', ingress: opts.name });
    this.#sources = new LoaderSources({
      prefix: `ingress ${this.name}`,
      logger: this.#logger,
      filePath: opts.filePath,
      redis: opts.redis,
      http: opts.http,
      parse: parseRuleText,
      fromRedis: rulesFromRedis,
      beforeFile: async () => this.#poller?.mark(),
    });
    this.#table = this.#build(this.#inline, []);
    this.#poller = opts.filePath ? new FilePoller(opts.filePath, () => this.reload()) : undefined;
  }

  /** Loads external sources and starts watching them. */
  async start(): Promise<void> {
    await this.reload();
    this.#poller?.start();
    if (this.#reloadMs) {
      this.#timer = setInterval(() => this.reload().catch((err: Error) => this.#logger.warn(`ingress ${this.name}: reload: ${err.message}`)), this.#reloadMs);
      this.#timer.unref();
    }
  }

  reload(): Promise<void> {
    return this.#reload();
  }

  /** Every source read again; one that fails gives no rules this round (gost's rule). */
  async #reloadNow(): Promise<void> {
    const s = this.#sources;
    const [fileRules, redisRules, httpRules] = await Promise.all([s.file(), s.redis(), s.http()]);
    this.#external = [fileRules ?? [], redisRules ?? [], httpRules ?? []];
    this.#table = this.#build(this.#inline, ...this.#external);
    this.#logger.debug(`ingress ${this.name}: ${this.#table.size} rules loaded`);
  }

  /** Replaces the inline rules (a reload); the other sources' rules stay as last read. */
  setRules(rules: IngressRule[]): void {
    this.#inline = rules;
    this.#table = this.#build(this.#inline, ...this.#external);
  }

  #build(...lists: IngressRule[][]): Map<string, Route | null> {
    const table = new Map<string, Route | null>();
    for (const list of lists) {
      for (const r of list) {
        if (!r.hostname || !r.endpoint) continue;
        const route = parseEndpoint(r.endpoint);
        if (!route) this.#logger.warn(`ingress ${this.name}: rule ${r.hostname}: endpoint "${r.endpoint}" is not a tunnel ID`);
        // An unparsable endpoint still claims the host (gost maps it to the zero ID: no route).
        table.set(ruleKey(r.hostname), route ?? null);
      }
    }
    return table;
  }

  get size(): number {
    return this.#table.size;
  }

  /** The rule for a host, or undefined (no rule, or a rule whose endpoint is not a tunnel ID). */
  lookup(host: string): Route | undefined {
    if (!host) return undefined;
    const h = normalizeHost(host);
    if (!h) return undefined;
    const t = this.#table;
    if (t.has(h)) return t.get(h) ?? undefined;
    if (t.has('.' + h)) return t.get('.' + h) ?? undefined;
    let rest = h;
    for (;;) {
      const dot = rest.indexOf('.', 1);
      if (dot < 0) break;
      rest = rest.slice(dot);
      if (t.has(rest)) return t.get(rest) ?? undefined;
      rest = rest.slice(1);
    }
    return undefined;
  }

  /** True when some rule claims the host (used by BIND's hijack check). */
  hasRule(host: string): boolean {
    return this.#table.has(normalizeHost(host));
  }

  /** True when some rule routes to the tunnel (a lowercase tunnel ID). */
  routesTo(tunnelId: string): boolean {
    for (const r of this.#table.values()) if (r?.tunnelId === tunnelId) return true;
    return false;
  }

  /** The exact rule for a host key (no wildcard walk). */
  exact(host: string): Route | null | undefined {
    return this.#table.get(normalizeHost(host));
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#poller?.stop();
    this.#sources.close();
    this.#timer = undefined;
  }
}
