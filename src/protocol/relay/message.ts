/**
 * Relay v1 request and response messages (spec/protocol.md §1.1, §1.2), plus the tunnel's
 * reading of a request (§1.5) and builders for the messages burrow sends (§2.1, §2.2, §3.1).
 *
 * ```
 * Request                                     Response
 * +-----+-----------+--------+----------+     +-----+--------+--------+----------+
 * | VER | CMD/FLAGS | FEALEN | FEATURES |     | VER | STATUS | FEALEN | FEATURES |
 * |  1  |     1     | 2 (BE) |  FEALEN  |     |  1  |   1    | 2 (BE) |  FEALEN  |
 * +-----+-----------+--------+----------+     +-----+--------+--------+----------+
 * CMD: low nibble (1 CONNECT, 2 BIND, 3 ASSOCIATE); flags: high nibble (0x80 UDP).
 * ```
 *
 * `decodeRequest` / `decodeResponse` take exactly one complete message; use RelayReader
 * (reader.ts) on a byte stream.
 */
import { ProtocolError } from '../../core/errors';
import {
  CMD_BIND,
  CMD_CONNECT,
  CMD_MASK,
  FLAG_CONNECTOR_UDP,
  FLAG_CONNECTOR_HTTPS,
  FLAG_UDP,
  FLAGS_MASK,
  HEADER_LEN,
  NETWORK_IP,
  NETWORK_SERIAL,
  NETWORK_TCP,
  NETWORK_UDP,
  NETWORK_UNIX,
  STATUS_OK,
  VERSION1,
} from './constants';
import {
  addrFeature,
  decodeFeatures,
  encodeFeatures,
  formatAddr,
  type AddrFeature,
  type Feature,
} from './feature';
import { makeTunnelId, type TunnelId } from './tunnel-id';

export interface RelayRequest {
  /** Command, low nibble of byte 1 (CMD_CONNECT, CMD_BIND, …; not validated on decode). */
  cmd: number;
  /** Flags, high nibble of byte 1 (FLAG_UDP). */
  flags: number;
  features: Feature[];
}

export interface RelayResponse {
  status: number;
  features: Feature[];
}

export interface RequestInit {
  cmd: number;
  flags?: number;
  features?: readonly Feature[];
}

export interface ResponseInit {
  status: number;
  features?: readonly Feature[];
}

function encodeMessage(second: number, features: readonly Feature[]): Buffer {
  const block = encodeFeatures(features);
  const out = Buffer.alloc(HEADER_LEN + block.length);
  out[0] = VERSION1;
  out[1] = second;
  out.writeUInt16BE(block.length, 2);
  block.copy(out, HEADER_LEN);
  return out;
}

/**
 * Encodes a request. `cmd` must be 0..15 and `flags` a high-nibble mask; throws RangeError
 * otherwise, ProtocolError for unencodable features (see encodeFeatures).
 */
export function encodeRequest(req: RequestInit): Buffer {
  const flags = req.flags ?? 0;
  if (!Number.isInteger(req.cmd) || req.cmd < 0 || req.cmd > CMD_MASK) throw new RangeError(`relay: bad command ${req.cmd}`);
  if (!Number.isInteger(flags) || (flags & ~FLAGS_MASK) !== 0) throw new RangeError(`relay: bad flags ${flags}`);
  return encodeMessage(req.cmd | flags, req.features ?? []);
}

/** Encodes a response; `status` must be a byte (RangeError otherwise). */
export function encodeResponse(resp: ResponseInit): Buffer {
  if (!Number.isInteger(resp.status) || resp.status < 0 || resp.status > 0xff) {
    throw new RangeError(`relay: bad status ${resp.status}`);
  }
  return encodeMessage(resp.status, resp.features ?? []);
}

/**
 * Total length (4 + FEALEN) of the message whose header starts `buf`, or undefined if fewer
 * than 4 bytes are there. Throws ProtocolError('bad_version') once byte 0 is known.
 */
export function messageLength(buf: Uint8Array): number | undefined {
  if (buf.length >= 1 && buf[0] !== VERSION1) {
    throw new ProtocolError('bad_version', `bad relay version 0x${buf[0]!.toString(16).padStart(2, '0')}`);
  }
  if (buf.length < HEADER_LEN) return undefined;
  return HEADER_LEN + ((buf[2]! << 8) | buf[3]!);
}

function splitMessage(buf: Buffer): { second: number; features: Feature[] } {
  const total = messageLength(buf);
  if (total === undefined) throw new ProtocolError('truncated', `relay message of ${buf.length} bytes has no complete header`);
  if (buf.length < total) throw new ProtocolError('truncated', `relay message needs ${total} bytes, got ${buf.length}`);
  if (buf.length > total) {
    throw new ProtocolError('bad_length', `${buf.length - total} bytes after the relay message (use RelayReader on streams)`);
  }
  return { second: buf[1]!, features: decodeFeatures(buf.subarray(HEADER_LEN, total)) };
}

/** Decodes exactly one complete request. Throws ProtocolError. */
export function decodeRequest(buf: Buffer): RelayRequest {
  const m = splitMessage(buf);
  return { cmd: m.second & CMD_MASK, flags: m.second & FLAGS_MASK, features: m.features };
}

/** Decodes exactly one complete response. Throws ProtocolError. */
export function decodeResponse(buf: Buffer): RelayResponse {
  const m = splitMessage(buf);
  return { status: m.second, features: m.features };
}

// ---------------------------------------------------------------------------------------------
// The tunnel's view of a request (§1.5)

export type NetworkName = 'tcp' | 'udp' | 'ip' | 'unix' | 'serial';

const NETWORK_NAMES: ReadonlyMap<number, NetworkName> = new Map([
  [NETWORK_TCP, 'tcp'],
  [NETWORK_UDP, 'udp'],
  [NETWORK_IP, 'ip'],
  [NETWORK_UNIX, 'unix'],
  [NETWORK_SERIAL, 'serial'],
]);

const NETWORK_IDS: ReadonlyMap<NetworkName, number> = new Map([...NETWORK_NAMES].map(([k, v]) => [v, k]));

/** Name of a Network feature value; unknown values read as "tcp" (gost's NetworkID.String). */
export function networkName(id: number): NetworkName {
  return NETWORK_NAMES.get(id) ?? 'tcp';
}

export function networkId(name: NetworkName): number {
  return NETWORK_IDS.get(name) ?? NETWORK_TCP;
}

export interface ParsedRequest {
  cmd: number;
  /** The deprecated FLAG_UDP bit; the tunnel server decides by `network`, not by this. */
  udpFlag: boolean;
  network: NetworkName;
  username?: string;
  password?: string;
  /** First Addr feature, "host:port". */
  srcAddr?: string;
  /** Last of the later Addr features, "host:port". */
  dstAddr?: string;
  tunnelId?: TunnelId;
}

/**
 * Reads a request as the tunnel handler does: the first Addr is the source, every later Addr
 * overwrites the destination, the last UserAuth / Tunnel / Network wins, unknown features are
 * ignored, network defaults to tcp.
 */
export function parseRequest(req: RelayRequest): ParsedRequest {
  const out: ParsedRequest = { cmd: req.cmd, udpFlag: (req.flags & FLAG_UDP) !== 0, network: 'tcp' };
  for (const f of req.features) {
    switch (f.kind) {
      case 'userAuth':
        out.username = f.username;
        out.password = f.password;
        break;
      case 'addr':
        if (out.srcAddr === undefined) out.srcAddr = formatAddr(f);
        else out.dstAddr = formatAddr(f);
        break;
      case 'tunnel':
        out.tunnelId = f.id;
        break;
      case 'network':
        out.network = networkName(f.network);
        break;
      default:
        break;
    }
  }
  return out;
}

/** Every Addr feature of a message as "host:port", in order. */
export function addrsOf(features: readonly Feature[]): string[] {
  return features.filter((f): f is AddrFeature => f.kind === 'addr').map(formatAddr);
}

// ---------------------------------------------------------------------------------------------
// Builders for what burrow sends

export interface UserAuth {
  username: string;
  password: string;
}

function leadingFeatures(udp: boolean, auth: UserAuth | undefined): Feature[] {
  const fs: Feature[] = [];
  if (udp) fs.push({ kind: 'network', network: NETWORK_UDP });
  if (auth) fs.push({ kind: 'userAuth', username: auth.username, password: auth.password });
  return fs;
}

/**
 * The address a client asks to bind, in the form gost 3.2.6 sends: an unspecified host
 * ("", 0.0.0.0, ::) becomes the empty domain, so ":0" is `03 00 00 00`. Newer gost sends
 * IPv4 0.0.0.0, which gost ≤ 3.2.6 servers with an ingress do not treat as unspecified.
 */
function bindAddrFeature(bindAddr: string): AddrFeature {
  const f = addrFeature(bindAddr);
  if (f.host === '' || f.host === '0.0.0.0' || f.host === '::') return { kind: 'addr', atyp: 3, host: '', port: f.port };
  return f;
}

export interface BindRequestInit {
  /** Local address of the transport connection to the server ("192.168.1.10:54321"). */
  srcAddr: string;
  /** Requested bind address: ":0", ":8080", "hello", "dash:8081". */
  bindAddr: string;
  tunnelId: TunnelId;
  /** tunnel.weight; values ≤ 0 send 0, others are truncated to a byte as gost does (256 → 0). */
  weight?: number;
  udp: boolean;
  auth?: UserAuth;
}

/**
 * BIND request as the gost client sends it (§2.1): CMD 0x02 (0x82 for udp), then
 * [Network udp] [UserAuth] Addr(src) Addr(bind) Tunnel(id, flag 0, weight).
 */
export function buildBindRequest(init: BindRequestInit): Buffer {
  const weight = init.weight !== undefined && init.weight > 0 ? Math.trunc(init.weight) & 0xff : 0;
  return encodeRequest({
    cmd: CMD_BIND,
    flags: init.udp ? FLAG_UDP : 0,
    features: [
      ...leadingFeatures(init.udp, init.auth),
      addrFeature(init.srcAddr),
      bindAddrFeature(init.bindAddr),
      { kind: 'tunnel', id: makeTunnelId(init.tunnelId.uuid, 0, weight) },
    ],
  });
}

export interface ConnectRequestInit {
  /** The visitor's own client address ("127.0.0.1:50000"). */
  srcAddr: string;
  /** Target: "ssh.srv-2.local:0", "example.com:443", ":0" (direct mode). */
  dstAddr: string;
  tunnelId: TunnelId;
  udp: boolean;
  auth?: UserAuth;
}

/**
 * CONNECT request as the gost visitor sends it (§3.1): CMD 0x01 (0x81 for udp), then
 * [Network udp] [UserAuth] Addr(src) Addr(dst) Tunnel(id, flag 0, weight 0).
 */
export function buildConnectRequest(init: ConnectRequestInit): Buffer {
  return encodeRequest({
    cmd: CMD_CONNECT,
    flags: init.udp ? FLAG_UDP : 0,
    features: [
      ...leadingFeatures(init.udp, init.auth),
      addrFeature(init.srcAddr),
      addrFeature(init.dstAddr),
      { kind: 'tunnel', id: makeTunnelId(init.tunnelId.uuid, 0, 0) },
    ],
  });
}

export interface BindResponseInit {
  /** The endpoint (16 hex chars) or the accepted custom host. */
  host: string;
  port: number;
  /** Connector ID with FLAG_CONNECTOR_UDP and the weight already set. */
  connectorId: TunnelId;
}

/** Successful BIND response (§2.2 step 4): OK, Addr(host:port), Tunnel(connector ID). */
export function buildBindResponse(init: BindResponseInit): Buffer {
  const addr: AddrFeature = { kind: 'addr', host: init.host, port: init.port };
  return encodeResponse({ status: STATUS_OK, features: [addr, { kind: 'tunnel', id: init.connectorId }] });
}

/** A feature-less response `01 ss 00 00` (OK to CONNECT, or any error status). */
export function statusResponse(status: number): Buffer {
  return encodeResponse({ status });
}

export interface ParsedBindResponse {
  status: number;
  /** "host:port" the server registered (endpoint or custom host). */
  bindAddr?: string;
  /** Host part of bindAddr: the public endpoint name. */
  endpoint?: string;
  connectorId?: TunnelId;
  /** FLAG_CONNECTOR_UDP set on the connector ID. */
  udp: boolean;
  /** FLAG_CONNECTOR_HTTPS set on the connector ID: the server terminates TLS for the answered name. */
  https?: boolean;
}

/** Reads a BIND response as the gost client does (§2.3): last Addr and last Tunnel win. */
export function parseBindResponse(resp: RelayResponse): ParsedBindResponse {
  const out: ParsedBindResponse = { status: resp.status, udp: false };
  for (const f of resp.features) {
    if (f.kind === 'addr') {
      out.bindAddr = formatAddr(f);
      out.endpoint = f.host;
    } else if (f.kind === 'tunnel') {
      out.connectorId = f.id;
      out.udp = (f.id.flag & FLAG_CONNECTOR_UDP) !== 0;
      if ((f.id.flag & FLAG_CONNECTOR_HTTPS) !== 0) out.https = true;
      else delete out.https;
    }
  }
  return out;
}
