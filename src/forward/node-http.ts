/**
 * A forwarder node's HTTP settings (gost's `forwarder.nodes[].http`, reverse-proxy docs), applied
 * to each sniffed HTTP request that goes to the node: the Host header rewritten, request and
 * response headers set, Basic authentication asked of the client, and the URL path rewritten by
 * the first matching rule. And the node's `tls`: the connection to the node is TLS.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { HTTPNodeConfig, TLSConfig } from '../core/config';
import { ConfigError } from '../core/errors';
import { Metadata } from '../core/metadata';
import { silentLogger } from '../observe/logger';
import { dialTcp } from '../transport/dial';

export interface NodeHttp {
  host?: string;
  requestHeader?: Array<[string, string]>;
  responseHeader?: Array<[string, string]>;
  /** sha256 of "user:pass", compared in constant time. */
  authDigest?: Buffer;
  /** Path rewrites: global regexps (tested with `search`, which keeps no state). */
  rewriteURL?: Array<{ re: RegExp; replacement: string }>;
  /** Body rewrites: global regexps, for the media types listed ("*" = all). */
  rewriteBody?: Array<{ re: RegExp; replacement: string; types: string[] }>;
}

/** Responses larger than this are passed on as they are (with a warning), not rewritten. */
export const REWRITE_BODY_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Go's regexp replacement syntax in JavaScript's: `${1}` / `${name}` become `$1` / `$<name>`
 * (`$1` and `$$` mean the same in both).
 */
export function goReplacement(r: string): string {
  return r.replace(/\$\{(\w+)\}/g, (_m, g: string) => (/^\d+$/.test(g) ? `$${g}` : `$<${g}>`));
}

/** Compiles a node's http settings; a bad regular expression is a ConfigError naming it. */
export function compileNodeHttp(cfg: HTTPNodeConfig | undefined): NodeHttp | undefined {
  if (!cfg) return undefined;
  const out: NodeHttp = {};
  if (cfg.host) out.host = cfg.host;
  const req = { ...(cfg.header ?? {}), ...(cfg.requestHeader ?? {}) };
  if (Object.keys(req).length) out.requestHeader = Object.entries(req);
  if (cfg.responseHeader && Object.keys(cfg.responseHeader).length) out.responseHeader = Object.entries(cfg.responseHeader);
  if (cfg.auth && (cfg.auth.username || cfg.auth.password)) {
    out.authDigest = createHash('sha256').update(`${cfg.auth.username}:${cfg.auth.password}`).digest();
  }
  if (cfg.rewriteURL?.length) {
    out.rewriteURL = cfg.rewriteURL.map((r, i) => {
      try {
        return { re: new RegExp(r.match, 'g'), replacement: goReplacement(r.replacement) };
      } catch (err) {
        throw new ConfigError(`rewriteURL[${i}].match: "${r.match}" is not a regular expression: ${(err as Error).message}`);
      }
    });
  }
  if (cfg.rewriteBody?.length) {
    out.rewriteBody = cfg.rewriteBody.map((r, i) => {
      let re: RegExp;
      try {
        re = new RegExp(r.match, 'g');
      } catch (err) {
        throw new ConfigError(`rewriteBody[${i}].match: "${r.match}" is not a regular expression: ${(err as Error).message}`);
      }
      const types = (r.type || 'text/html')
        .split(',')
        .map((t) => t.trim().toLowerCase())
        .filter(Boolean);
      return { re, replacement: goReplacement(r.replacement), types };
    });
  }
  return Object.keys(out).length ? out : undefined;
}

/**
 * The body rewrite for a response, or undefined: rules whose types include the response's
 * media type (Content-Type before ";"), for bodies that are not content-encoded (a compressed
 * body is passed on as it is).
 */
export function bodyRewriter(nh: NodeHttp | undefined, headers: http.IncomingHttpHeaders): ((body: Buffer) => Buffer) | undefined {
  if (!nh?.rewriteBody) return undefined;
  const enc = String(headers['content-encoding'] ?? '').trim().toLowerCase();
  if (enc !== '' && enc !== 'identity') return undefined;
  const media = String(headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const rules = nh.rewriteBody.filter((r) => r.types.includes('*') || (media !== '' && r.types.includes(media)));
  if (rules.length === 0) return undefined;
  return (body) => {
    let text = body.toString('utf8');
    for (const r of rules) text = text.replace(r.re, r.replacement);
    return Buffer.from(text, 'utf8');
  };
}

/** True when the request carries the node's Basic credentials. */
export function basicAuthOk(req: http.IncomingMessage, digest: Buffer): boolean {
  const h = req.headers.authorization;
  if (!h) return false;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(h);
  if (!m) return false;
  const given = createHash('sha256').update(Buffer.from(m[1]!, 'base64').toString('utf8')).digest();
  return timingSafeEqual(given, digest);
}

/** The request URL (path and query) after the first matching rewrite rule, applied to the path. */
export function rewriteUrl(url: string, rules: NodeHttp['rewriteURL']): string {
  if (!rules) return url;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  for (const r of rules) {
    if (path.search(r.re) < 0) continue;
    return path.replace(r.re, r.replacement) + query;
  }
  return url;
}

/**
 * Dials a node: plain TCP, or through the `tls` dialer when the node has `tls` (server name:
 * `serverName`, else the node's host; certificate checked only with `secure` or a `caFile`, as
 * gost; handshake within 10 s).
 */
export async function dialNode(target: string, tlsCfg: TLSConfig | undefined): Promise<Duplex> {
  if (!tlsCfg) return dialTcp(target);
  // The TLS transport (and node:tls) is loaded only for nodes that use it (start-up time).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { TlsDialer } = require('../transport/tls/dialer') as typeof import('../transport/tls/dialer');
  return (await new TlsDialer({ metadata: new Metadata(), tls: tlsCfg, logger: silentLogger }).dial(target)).stream;
}
