/**
 * What the entry point adds to each HTTP request as an HTTPS edge (docs/https.md), before the
 * request is routed: the ACME HTTP-01 answer, the redirect of plain HTTP to https
 * (`entrypoint.redirectHttps`), and the `X-Forwarded-For` / `-Proto` / `-Host` headers for the
 * origin. Pure functions over a parsed head, no sockets.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { stripPort } from '../../../../core/addr';
import { plainIp, type TrustedPeers } from '../../../../limit/trusted-peers';
import type { HttpRequestHead } from '../../../../protocol/sniff/http';
import type { RequestPlan } from './head';
import { requestLog } from './exchange';

/** The path prefix of ACME HTTP-01 challenges (RFC 8555 §8.3). */
export const ACME_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/** `entrypoint.forwardedHeaders`: on terminated requests only (default), on every request, or never. */
export type ForwardedMode = 'tls' | 'all' | 'none';

export interface HttpEdgeOptions {
  forwarded: ForwardedMode;
  /** Peers whose X-Forwarded-* are kept (appended to); anyone else's are replaced. */
  trusted: TrustedPeers;
  redirectHttps: boolean;
  /** Whether the entry point terminates TLS for a host (it has a certificate and is not passed through). */
  terminates(host: string): boolean;
  /** The key authorization of an HTTP-01 challenge for `host` and `path`, when one is pending. */
  httpChallenge?: (host: string, path: string) => string | undefined;
}

const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/**
 * The head with X-Forwarded-For, -Proto and -Host set: from a trusted peer its X-Forwarded-For
 * gets the peer's IP appended and its -Proto and -Host are kept when given; from anyone else
 * all three are replaced (a client cannot pass off a forged chain as the proxy's word).
 */
export function withForwardedHeaders(head: HttpRequestHead, peer: string, secure: boolean, trusted: TrustedPeers): HttpRequestHead {
  const ip = plainIp(stripPort(peer));
  const trust = trusted.trusts(ip);
  const prior: Record<string, string[]> = { 'x-forwarded-for': [], 'x-forwarded-proto': [], 'x-forwarded-host': [] };
  const headers: Array<[string, string]> = [];
  for (const h of head.headers) {
    const lower = h[0].toLowerCase();
    if (FORWARDED.has(lower)) prior[lower]!.push(h[1]);
    else headers.push(h);
  }
  const xff = prior['x-forwarded-for']!.join(', ');
  headers.push(['X-Forwarded-For', trust && xff !== '' ? `${xff}, ${ip}` : ip]);
  const proto = prior['x-forwarded-proto']![0];
  headers.push(['X-Forwarded-Proto', trust && proto !== undefined ? proto : secure ? 'https' : 'http']);
  const fhost = prior['x-forwarded-host']![0];
  const host = trust && fhost !== undefined ? fhost : head.host;
  if (host !== undefined) headers.push(['X-Forwarded-Host', host]);
  return { ...head, headers };
}

/** The 308 to the same URL over https (on port 443: the port of the plain request is not kept). */
export function redirectResponse(head: HttpRequestHead, host: string, close: boolean): string {
  const path = head.path.startsWith('/') ? head.path : '/';
  const location = `https://${host}${path}`;
  return (
    `HTTP/1.1 308 Permanent Redirect\r\nLocation: ${location}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: 0\r\n${close ? 'Connection: close\r\n' : ''}\r\n`
  );
}

/** The answer to an HTTP-01 challenge. */
export function challengeResponse(body: string, close: boolean): string {
  const bytes = Buffer.byteLength(body);
  return `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`;
}

/**
 * What the edge does with a request: a whole response to answer it with (a challenge, a
 * redirect), or the head to send on (with the forwarded headers when they apply).
 */
export function edgeRequest(
  edge: HttpEdgeOptions,
  head: HttpRequestHead,
  peer: string,
  secure: boolean,
  close: boolean,
): { answer: string } | { head: HttpRequestHead } {
  const host = (head.hostname ?? '').toLowerCase();
  if (!secure && host !== '') {
    const acme = head.path.startsWith(ACME_CHALLENGE_PREFIX);
    if (acme && edge.httpChallenge !== undefined) {
      const body = edge.httpChallenge(host, head.path);
      if (body !== undefined) return { answer: challengeResponse(body, close) };
    }
    if (!acme && edge.redirectHttps && edge.terminates(host)) {
      return { answer: redirectResponse(head, host, close) };
    }
  }
  const on = edge.forwarded === 'all' || (edge.forwarded === 'tls' && secure);
  return { head: on ? withForwardedHeaders(head, peer, secure, edge.trusted) : head };
}

/** What edgeStep needs of a visitor connection (connection.ts). */
export interface EdgeConnection {
  readonly peer: string;
  readonly secure: boolean;
  readonly log: Logger;
  readonly socket: net.Socket;
  readonly draining: boolean;
  readonly clientEnded: boolean;
  answer(response: string, keep: boolean, onEnd?: () => void): void;
}

/**
 * The edge's part of a request: undefined when the edge answered it (a challenge, a redirect;
 * the connection goes on only for a request without a body), else the head to send on.
 */
export function edgeStep(edge: HttpEdgeOptions, c: EdgeConnection, head: HttpRequestHead, plan: RequestPlan): HttpRequestHead | undefined {
  const keep = plan.keepClient && !c.draining && plan.body.kind === 'none' && !c.clientEnded;
  const e = edgeRequest(edge, head, c.peer, c.secure, !keep);
  if ('head' in e) return e.head;
  c.answer(e.answer, keep, requestLog(c.log, c.socket, c.peer, plan.dst));
  return undefined;
}
