/**
 * Telling a transport mismatch from garbage: when the first bytes of a relay peer are another
 * protocol (an HTTP response or request, a TLS record), the two ends use different transports
 * (`tunnel+tls` against `tunnel+wss`, `tunnel` against `tunnel+tls`, ...). These say which one
 * the bytes are and which scheme would match.
 */
import { ProtocolError } from '../../core/errors';

export type ForeignProtocol = 'HTTP response' | 'HTTP request' | 'TLS alert' | 'TLS handshake';

const HTTP_METHODS = /^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE) /;

/** What `first` (the first bytes a peer sent) looks like, if it is a known protocol. */
export function foreignProtocol(first: Uint8Array): ForeignProtocol | undefined {
  if (first.length === 0) return undefined;
  const head = Buffer.from(first.subarray(0, 16)).toString('latin1');
  if (first[0] === 0x16 && (first.length < 2 || first[1] === 0x03)) return 'TLS handshake';
  if (first[0] === 0x15 && (first.length < 2 || first[1] === 0x03)) return 'TLS alert';
  if (head.startsWith('HTTP/') || (head.length < 5 && 'HTTP/'.startsWith(head))) return 'HTTP response';
  if (HTTP_METHODS.test(head)) return 'HTTP request';
  return undefined;
}

/**
 * For a client whose relay request got `what` back: the server's transport, and the scheme to
 * use (`tls`: the client's own transport is TLS already).
 */
export function serverMismatchHint(what: ForeignProtocol, tls: boolean): string {
  switch (what) {
    case 'HTTP response':
      return `the server answered with an HTTP response, not the relay protocol: it listens with WebSocket; use ${tls ? 'tunnel+wss://' : 'tunnel+ws://'} (-F ${tls ? 'tunnel+wss' : 'tunnel+ws'}://host:port?...)`;
    case 'TLS alert':
    case 'TLS handshake':
      return `the server answered with a ${what === 'TLS alert' ? 'TLS alert' : 'TLS handshake'}, not the relay protocol: it listens with TLS; use tunnel+tls:// (tunnel+wss:// if it is a WebSocket server)`;
    case 'HTTP request':
      return 'the server sent an HTTP request, not the relay protocol: it is not a tunnel server';
  }
}

/** For a server whose relay listener got `what` from a client: the client's transport and the scheme to use. */
export function clientMismatchHint(what: ForeignProtocol): string {
  switch (what) {
    case 'TLS handshake':
    case 'TLS alert':
      return 'the client speaks TLS (tunnel+tls:// or tunnel+wss://) but this listener expects the relay protocol directly: use the same scheme on both sides';
    case 'HTTP request':
      return 'the client sent an HTTP request (a WebSocket client, tunnel+ws://?) but this listener expects the relay protocol directly: use the same scheme on both sides';
    case 'HTTP response':
      return 'the client sent an HTTP response: it is not a tunnel client';
  }
}

/** The bytes a relay peer sent, on the ProtocolError that refused them (see withPrefix). */
const kPrefix = Symbol('burrow.foreignPrefix');

/** Keeps the first bytes on a ProtocolError, for foreignOf. */
export function withPrefix(err: unknown, prefix: Uint8Array): unknown {
  if (err instanceof ProtocolError && err.kind === 'bad_version') {
    (err as unknown as Record<symbol, Buffer>)[kPrefix] = Buffer.from(prefix.subarray(0, 16));
  }
  return err;
}

/** The protocol of the bytes that made `err` (a relay read's bad version), if known. */
export function foreignOf(err: unknown): ForeignProtocol | undefined {
  const prefix = (err as Record<symbol, Buffer | undefined> | undefined)?.[kPrefix];
  return prefix ? foreignProtocol(prefix) : undefined;
}

type NodeError = Error & { code?: string };

/** A TLS handshake (tls or wss dialer) that failed because the server does not speak TLS: the hint, else undefined. */
export function tlsDialHint(err: NodeError, plainSchemes = 'tunnel:// or tunnel+ws://'): string | undefined {
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long|http request/i.test(err.message)) {
    return `the server does not answer with TLS: it listens without it (${plainSchemes}); use that scheme`;
  }
  if (err.code === 'ECONNRESET' || /before secure TLS connection|socket hang up/i.test(err.message)) {
    return `the server closed the connection during the TLS handshake: if it listens without TLS (${plainSchemes}), use that scheme`;
  }
  return undefined;
}

/** A WebSocket handshake (ws or wss dialer) that failed because the server is not a WebSocket server: the hint, else undefined. */
export function wsDialHint(err: NodeError, tls: boolean): string | undefined {
  // (With wss the TLS handshake is over before this one starts: its failures are tlsDialHint's.)
  if (/socket hang up/i.test(err.message)) {
    return `the server closed the connection without answering the WebSocket handshake: it does not listen with WebSocket; use ${tls ? 'tunnel+tls://' : 'tunnel:// (tunnel+tls:// if it listens with TLS)'}`;
  }
  if (/parse error|expected http/i.test(err.message) || err.code?.startsWith('HPE_')) {
    return 'the server answered the WebSocket handshake with something other than HTTP (TLS?): use tunnel+wss:// (or tunnel+tls://)';
  }
  return undefined;
}

/**
 * For a TLS or WebSocket listener whose client failed its handshake (`rawPacket`: the bytes
 * Node's HTTP parser refused, when there are some): the client's transport, if it shows.
 */
export function listenerMismatchHint(err: NodeError & { rawPacket?: Buffer }): string | undefined {
  if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|http request/i.test(err.message)) {
    return 'the client does not speak TLS (a tunnel:// or tunnel+ws:// client?): use the same scheme on both sides';
  }
  const raw = err.rawPacket;
  if (raw === undefined || raw.length === 0) return undefined;
  if (raw[0] === 0x01) return 'the client speaks the relay protocol without WebSocket (a tunnel:// or tunnel+tls:// client?): use the same scheme on both sides';
  const what = foreignProtocol(raw);
  if (what === 'TLS handshake' || what === 'TLS alert') {
    return 'the client speaks TLS (a tunnel+tls:// or tunnel+wss:// client?) to a listener without TLS: use the same scheme on both sides';
  }
  return undefined;
}

/** For a client whose relay request got no answer but a close (`tls`: its transport is TLS). */
export function closedWithoutAnswerHint(tls: boolean): string {
  return tls
    ? 'the server closed the connection without answering: if it listens with WebSocket, use tunnel+wss://'
    : 'the server closed the connection without answering: if it listens with TLS or WebSocket, use tunnel+tls://, tunnel+wss:// or tunnel+ws://';
}

/** A dial error's text: the hint with the error's code (or first line) when there is a hint, else the message. */
export function withDialHint(err: NodeError, hint: string | undefined): string {
  const first = err.message.split('\n')[0]!.trim();
  if (!hint) return first;
  return `${hint} (${err.code && !/^ERR_SSL_/.test(err.code) ? `${err.code}: ` : ''}${shortSsl(first)})`;
}

/** OpenSSL's "8010…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:…" → "wrong version number". */
function shortSsl(text: string): string {
  const m = /SSL routines:[^:]*:([^:]+)/.exec(text);
  return m ? m[1]! : text;
}
