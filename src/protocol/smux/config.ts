/**
 * smux session settings (spec/protocol.md §5.1, spec/config.md §3.1). Defaults are the gost
 * tunnel's (version 2, the rest as xtaci/smux v1.5.x), except the per-stream window: a stream
 * starts at gost's 1 MiB and may grow to 4 MiB (see maxStreamBuffer).
 */
import { ConfigError } from '../../core/errors';
import type { Metadata } from '../../core/metadata';
import { MAX_FRAME_LENGTH } from './frame';
import { TUNNEL_MUX_OPTIONS } from '../../core/options/mux';
import { TUNNEL_CONNECTOR_OPTIONS } from '../../core/options/tunnel';
import { parseOption, parseOptions } from '../../core/options/options';

export interface SmuxConfig {
  /** Version byte of every frame; both ends must agree (no negotiation). 2 adds UPD windows. */
  version: 1 | 2;
  /** No NOPs and no silence check. */
  keepAliveDisabled: boolean;
  /** A NOP is sent this often (ms). */
  keepAliveIntervalMs: number;
  /** The session closes when no frame at all arrived during a whole window this long (ms). */
  keepAliveTimeoutMs: number;
  /** Largest PSH payload we send (bytes, ≤ 65535). */
  maxFrameSize: number;
  /**
   * Session-wide budget of received-but-unread bytes (bytes). Version 1: beyond it the conn is
   * paused. Version 2: what the streams' windows above their base window may add up to, less
   * one base window (so a lone stream can reach the whole budget).
   */
  maxReceiveBuffer: number;
  /**
   * Largest per-stream window advertised in UPD (version 2, bytes). A stream starts at
   * `baseStreamWindow` and doubles its window with each UPD it sends after that first read,
   * as far as maxReceiveBuffer leaves room; windows never shrink while the stream lives.
   */
  maxStreamBuffer: number;
  /** Concurrent streams per session, both directions together. Local: not on the wire. */
  maxStreams: number;
  /** Accepted streams held while nobody listens for 'stream'; beyond it SYNs get a FIN. */
  acceptBacklog: number;
  /**
   * The session closes when the connection has taken no bytes for this long while frames wait
   * to be sent (a peer that stopped reading); 0 = never. Local: not on the wire (ms).
   */
  sendTimeoutMs: number;
}

export const DEFAULT_SMUX_CONFIG: Readonly<SmuxConfig> = Object.freeze({
  version: 2,
  keepAliveDisabled: false,
  keepAliveIntervalMs: 10_000,
  keepAliveTimeoutMs: 30_000,
  maxFrameSize: 32_768,
  maxReceiveBuffer: 4_194_304,
  maxStreamBuffer: 4_194_304,
  maxStreams: 65_536,
  acceptBacklog: 1024,
  sendTimeoutMs: 60_000,
});

const INT32_MAX = 0x7fffffff;

/** The gost tunnel's fixed per-stream window: where every stream's window starts. */
export const BASE_STREAM_WINDOW = 1_048_576;

/**
 * The window a stream advertises first, and keeps unless it grows (version 2): gost's 1 MiB,
 * or maxStreamBuffer if that is smaller.
 */
export function baseStreamWindow(c: Readonly<SmuxConfig>): number {
  return Math.min(c.maxStreamBuffer, BASE_STREAM_WINDOW);
}

function fail(path: string, message: string): never {
  throw new ConfigError(message, { path });
}

function isPositiveInt(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

/**
 * Checks xtaci/smux's VerifyConfig rules (plus integer checks for our local limits).
 * @throws ConfigError naming the offending `mux.*` key
 */
export function verifySmuxConfig(c: SmuxConfig): void {
  if (c.version !== 1 && c.version !== 2) fail('mux.version', `unsupported smux version ${String(c.version)}, expected 1 or 2`);
  if (!c.keepAliveDisabled) {
    if (!(c.keepAliveIntervalMs > 0)) fail('mux.keepaliveInterval', 'keep-alive interval must be positive');
    if (!(c.keepAliveTimeoutMs >= c.keepAliveIntervalMs)) {
      fail('mux.keepaliveTimeout', 'keep-alive timeout must be larger than keep-alive interval');
    }
  }
  if (!isPositiveInt(c.maxFrameSize)) fail('mux.maxFrameSize', 'max frame size must be positive');
  if (c.maxFrameSize > MAX_FRAME_LENGTH) fail('mux.maxFrameSize', 'max frame size must not be larger than 65535');
  if (!isPositiveInt(c.maxReceiveBuffer)) fail('mux.maxReceiveBuffer', 'max receive buffer must be positive');
  if (!isPositiveInt(c.maxStreamBuffer)) fail('mux.maxStreamBuffer', 'max stream buffer must be positive');
  if (c.maxStreamBuffer > c.maxReceiveBuffer) {
    fail('mux.maxStreamBuffer', 'max stream buffer must not be larger than max receive buffer');
  }
  if (c.maxReceiveBuffer > INT32_MAX) fail('mux.maxReceiveBuffer', 'max receive buffer must not be larger than 2147483647');
  if (!isPositiveInt(c.maxStreams)) fail('mux.maxStreams', 'max streams must be a positive integer');
  if (!Number.isInteger(c.acceptBacklog) || c.acceptBacklog < 0) {
    fail('mux.acceptBacklog', 'accept backlog must be a non-negative integer');
  }
}

/** Defaults overlaid with `partial` (undefined fields keep the default), then verified. */
export function resolveSmuxConfig(partial?: Partial<SmuxConfig>): SmuxConfig {
  const c: SmuxConfig = { ...DEFAULT_SMUX_CONFIG };
  if (partial) {
    for (const k of Object.keys(partial) as (keyof SmuxConfig)[]) {
      const v = partial[k];
      if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
    }
  }
  verifySmuxConfig(c);
  return c;
}

/**
 * Reads the `mux.*` keys of a tunnel handler/connector (spec/config.md §3.1) as declared in
 * core/options/mux.ts (or the outer session's `shape`). As gost's mux wrapper does, a missing or
 * zero number means "the default"; a negative one is a config error. The result is then
 * verified with smux's rules. `mux.type` other than smux is not ours to handle here.
 * @throws ConfigError for an invalid combination (e.g. timeout < interval, frame size > 65535)
 */
export function smuxConfigFromMetadata(md: Metadata, shape: typeof TUNNEL_MUX_OPTIONS = TUNNEL_MUX_OPTIONS): SmuxConfig {
  const o = parseOptions(shape, md);
  const send = parseOption(TUNNEL_CONNECTOR_OPTIONS.sendTimeout, md);
  const c: SmuxConfig = {
    ...DEFAULT_SMUX_CONFIG,
    version: o.muxVersion as 1 | 2,
    keepAliveDisabled: o.muxKeepaliveDisabled,
    keepAliveIntervalMs: o.muxKeepaliveInterval,
    keepAliveTimeoutMs: o.muxKeepaliveTimeout,
    maxFrameSize: o.muxMaxFrameSize,
    maxReceiveBuffer: o.muxMaxReceiveBuffer,
    maxStreamBuffer: o.muxMaxStreamBuffer,
    // The handler's/connector's `sendTimeout`, which also bounds its spliced connections.
    sendTimeoutMs: send,
  };
  verifySmuxConfig(c);
  return c;
}
