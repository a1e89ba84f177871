/**
 * One error catalogue for burrow. Every error we raise on purpose is a BurrowError with a
 * stable `code`; codecs raise ProtocolError, config loading raises ConfigError.
 *
 * Relay status bytes are not derived from errors: the place that refuses a request (routing,
 * authentication, limits) answers with its status next to the reason it logs
 * (protocol/relay/constants.ts has the bytes).
 */

export type ErrorCode =
  | 'BURROW_ERR_PROTOCOL'
  | 'BURROW_ERR_CONFIG'
  | 'BURROW_ERR_UNAUTHORIZED'
  | 'BURROW_ERR_FORBIDDEN'
  | 'BURROW_ERR_TUNNEL_UNAVAILABLE'
  | 'BURROW_ERR_TIMEOUT'
  | 'BURROW_ERR_DIAL'
  | 'BURROW_ERR_CLOSED'
  | 'BURROW_ERR_LIMIT';

export class BurrowError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'BurrowError';
  }
}

/** Sub-codes of malformed wire input, shared by the relay codec and the smux codec. */
export type ProtocolErrorKind =
  | 'truncated'
  | 'too_large'
  | 'bad_version'
  | 'bad_command'
  | 'bad_address'
  | 'bad_feature'
  | 'bad_frame'
  | 'bad_length'
  | 'bad_header'
  | 'bad_tunnel_id';

/** Malformed or oversized bytes from a peer. Thrown by pure codecs only. */
export class ProtocolError extends BurrowError {
  readonly kind: ProtocolErrorKind;
  constructor(kind: ProtocolErrorKind, message: string) {
    super('BURROW_ERR_PROTOCOL', message);
    this.kind = kind;
    this.name = 'ProtocolError';
  }
}

/**
 * A configuration mistake. `source` names the file or flag ("burrow.yaml", "-L"), `path` the
 * place inside it ("services[1].handler.type"); the message says what was found and expected.
 */
export class ConfigError extends BurrowError {
  readonly source: string | undefined;
  readonly path: string | undefined;
  constructor(message: string, opts: { source?: string; path?: string; cause?: unknown } = {}) {
    const where = [opts.source, opts.path].filter(Boolean).join(': ');
    super('BURROW_ERR_CONFIG', where ? `${where}: ${message}` : message, { cause: opts.cause });
    this.source = opts.source;
    this.path = opts.path;
    this.name = 'ConfigError';
  }
}

/**
 * A side took no bytes for its send timeout while data waited for it: one end of a relay
 * (`a` or `b`), or the peer of an smux session (`peer`).
 */
export class SendTimeoutError extends BurrowError {
  constructor(
    readonly side: 'a' | 'b' | 'peer',
    message: string,
  ) {
    super('BURROW_ERR_TIMEOUT', message);
  }
}

export function isSendTimeout(err: unknown): err is SendTimeoutError {
  return err instanceof SendTimeoutError;
}

/** Errors that mean "the peer went away", logged at debug, not error. */
export function isPeerGone(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'ERR_STREAM_PREMATURE_CLOSE' ||
    code === 'ERR_STREAM_DESTROYED' ||
    code === 'ECONNABORTED' ||
    code === 'BURROW_ERR_CLOSED'
  );
}
