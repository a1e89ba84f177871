/**
 * One error catalogue for burrow. Every error we raise on purpose is a BurrowError with a
 * stable `code`; codecs raise ProtocolError, config loading raises ConfigError.
 * `toRelayStatus` maps an error to the relay status byte in one place.
 */

export type ErrorCode =
  | 'BURROW_ERR_PROTOCOL'
  | 'BURROW_ERR_CONFIG'
  | 'BURROW_ERR_TUNNEL_ID'
  | 'BURROW_ERR_UNAUTHORIZED'
  | 'BURROW_ERR_FORBIDDEN'
  | 'BURROW_ERR_NO_ROUTE'
  | 'BURROW_ERR_PRIVATE_TUNNEL'
  | 'BURROW_ERR_TUNNEL_UNAVAILABLE'
  | 'BURROW_ERR_TIMEOUT'
  | 'BURROW_ERR_DIAL'
  | 'BURROW_ERR_CLOSED'
  | 'BURROW_ERR_LIMIT'
  | 'BURROW_ERR_INTERNAL';

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

/** Relay status bytes (spec/protocol.md §1.2). Kept here so the error mapping has one home. */
export const STATUS_OK = 0x00;
export const STATUS_BAD_REQUEST = 0x01;
export const STATUS_UNAUTHORIZED = 0x02;
export const STATUS_FORBIDDEN = 0x03;
export const STATUS_TIMEOUT = 0x04;
export const STATUS_SERVICE_UNAVAILABLE = 0x05;
export const STATUS_HOST_UNREACHABLE = 0x06;
export const STATUS_NETWORK_UNREACHABLE = 0x07;
export const STATUS_INTERNAL_SERVER_ERROR = 0x08;

/** Maps any error to the relay status the tunnel server answers with. */
export function toRelayStatus(err: unknown): number {
  if (!(err instanceof BurrowError)) return STATUS_SERVICE_UNAVAILABLE;
  switch (err.code) {
    case 'BURROW_ERR_PROTOCOL':
    case 'BURROW_ERR_TUNNEL_ID':
      return STATUS_BAD_REQUEST;
    case 'BURROW_ERR_UNAUTHORIZED':
      return STATUS_UNAUTHORIZED;
    case 'BURROW_ERR_FORBIDDEN':
    case 'BURROW_ERR_LIMIT':
      return STATUS_FORBIDDEN;
    case 'BURROW_ERR_PRIVATE_TUNNEL':
      return STATUS_HOST_UNREACHABLE;
    case 'BURROW_ERR_NO_ROUTE':
      return STATUS_NETWORK_UNREACHABLE;
    case 'BURROW_ERR_TIMEOUT':
      return STATUS_TIMEOUT;
    case 'BURROW_ERR_INTERNAL':
      return STATUS_INTERNAL_SERVER_ERROR;
    default:
      return STATUS_SERVICE_UNAVAILABLE;
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
