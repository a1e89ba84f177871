/** smux settings (`mux.*`), read by the tunnel handler and connector and by the mtls/mws/mwss transports. */
import { bool, duration, gostOnly, int } from './options';

const MUX_DOC =
  'smux settings; the version must match the peers\'. Version 2: a stream\'s receive window starts at gost\'s 1 MiB ' +
  'and doubles with each window update while its reader keeps up, to at most `mux.maxStreamBuffer`; all streams\' growth ' +
  'together comes from `mux.maxReceiveBuffer` less 1 MiB. Set `mux.maxStreamBuffer=1048576` for gost\'s fixed window. ' +
  'A zero value means the default.';

/** The session multiplexer of the tunnel (between a tunnel client and the server). */
export const TUNNEL_MUX_OPTIONS = {
  muxVersion: int('mux.version', { default: 2, min: 0, max: 2, zeroIsDefault: true, doc: `smux protocol version (1 or 2). ${MUX_DOC}` }),
  muxKeepaliveInterval: duration('mux.keepaliveInterval', { default: 10_000, zeroIsDefault: true, doc: 'smux keepalive (NOP frame) interval' }),
  muxKeepaliveTimeout: duration('mux.keepaliveTimeout', { default: 30_000, zeroIsDefault: true, doc: 'smux session closes when nothing arrives for this long' }),
  muxKeepaliveDisabled: bool('mux.keepaliveDisabled', { default: false, doc: 'no smux keepalives' }),
  muxMaxFrameSize: int('mux.maxFrameSize', { default: 32_768, min: 0, max: 65_535, zeroIsDefault: true, doc: 'largest smux frame payload' }),
  muxMaxReceiveBuffer: int('mux.maxReceiveBuffer', { default: 4_194_304, min: 0, max: 0x7fffffff, zeroIsDefault: true, doc: 'receive buffer of a session (bytes)' }),
  muxMaxStreamBuffer: int('mux.maxStreamBuffer', {
    default: 4_194_304,
    defaultText: '4194304 ★ (gost: 1048576)',
    burrow: true,
    min: 0,
    max: 0x7fffffff,
    zeroIsDefault: true,
    doc: 'largest receive window of a stream (bytes, version 2)',
  }),
  muxType: gostOnly('mux.type', 'multiplexer type; burrow speaks smux only (the newest gost also has yamux)'),
  muxMaxStreamWindow: gostOnly('mux.maxStreamWindow', 'yamux only'),
};

/** The outer session of mtls/mws/mwss: gost's generic mux defaults (version 1, 64 KiB stream buffer). */
export const TRANSPORT_MUX_OPTIONS = {
  ...TUNNEL_MUX_OPTIONS,
  muxVersion: int('mux.version', { default: 1, min: 0, max: 2, zeroIsDefault: true, doc: 'smux version of the outer session (1 or 2)' }),
  muxMaxStreamBuffer: int('mux.maxStreamBuffer', { default: 65_536, min: 0, max: 0x7fffffff, zeroIsDefault: true, doc: 'receive window of an outer stream (bytes)' }),
};
