/**
 * smux frame layout (xtaci/smux v1.5.x, spec/protocol.md §5.2).
 *
 * ```
 *  0     1     2           4                       8
 * +-----+-----+-----------+-----------------------+----------------+
 * | VER | CMD | LENGTH    | STREAM ID             | DATA (LENGTH)  |
 * |  1  |  1  | u16 LE    | u32 LE                |                |
 * +-----+-----+-----------+-----------------------+----------------+
 * ```
 *
 * UPD data (version 2 only), always 8 bytes:
 *
 * ```
 * +-----------------------+-----------------------+
 * | CONSUMED (u32 LE)     | WINDOW (u32 LE)       |
 * +-----------------------+-----------------------+
 * ```
 */
import { ProtocolError } from '../../core/errors';

/** Opens stream `sid`. No data. */
export const CMD_SYN = 0;
/** The sender has closed stream `sid` (EOF). No data. */
export const CMD_FIN = 1;
/** Stream data, 0..65535 bytes (0-length frames are read and ignored). */
export const CMD_PSH = 2;
/** Keepalive, stream id 0. No data. */
export const CMD_NOP = 3;
/** Version 2 window update: consumed + window, 8 bytes. */
export const CMD_UPD = 4;

export const HEADER_SIZE = 8;
export const UPD_SIZE = 8;
/** The LENGTH field is a u16. */
export const MAX_FRAME_LENGTH = 0xffff;

/** A decoded frame header. */
export interface FrameHeader {
  /** Protocol version byte (1 or 2); must equal the session's configured version. */
  version: number;
  /** One of CMD_SYN … CMD_UPD. */
  cmd: number;
  /** Number of data bytes after the header (u16). */
  length: number;
  /** Stream id (u32); 0 only for NOP. */
  sid: number;
}

/** The data of an UPD frame. Both fields are u32 and wrap around. */
export interface WindowUpdate {
  /** Total bytes of PSH data the receiver's application has read on this stream (mod 2^32). */
  consumed: number;
  /** The receiver's per-stream buffer size. */
  window: number;
}

const CMD_NAMES = ['SYN', 'FIN', 'PSH', 'NOP', 'UPD'] as const;

/** "SYN", "PSH", … or "CMD(0x07)" for an unknown command. */
export function cmdName(cmd: number): string {
  return CMD_NAMES[cmd] ?? `CMD(0x${cmd.toString(16).padStart(2, '0')})`;
}

export function isKnownCmd(cmd: number): boolean {
  return cmd >= CMD_SYN && cmd <= CMD_UPD;
}

/** Writes a header into `buf` at `offset` without allocating (the send path uses this). */
export function writeHeader(
  buf: Buffer,
  offset: number,
  version: number,
  cmd: number,
  length: number,
  sid: number,
): void {
  buf[offset] = version;
  buf[offset + 1] = cmd;
  buf.writeUInt16LE(length, offset + 2);
  buf.writeUInt32LE(sid >>> 0, offset + 4);
}

/** Encodes a header into a new 8-byte buffer. Throws RangeError on out-of-range fields. */
export function encodeHeader(h: FrameHeader): Buffer {
  if (h.length < 0 || h.length > MAX_FRAME_LENGTH) {
    throw new RangeError(`smux frame length ${h.length} out of range 0..65535`);
  }
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  writeHeader(buf, 0, h.version, h.cmd, h.length, h.sid);
  return buf;
}

/**
 * Decodes the header at `offset`. Checks the version (when `expectedVersion` is given) before
 * the command, and the command before anything reads the length.
 * @throws ProtocolError 'truncated' | 'bad_version' | 'bad_command'
 */
export function decodeHeader(buf: Buffer, offset = 0, expectedVersion?: number): FrameHeader {
  if (buf.length - offset < HEADER_SIZE) {
    throw new ProtocolError('truncated', `smux header needs ${HEADER_SIZE} bytes`);
  }
  const version = buf[offset]!;
  if (expectedVersion !== undefined ? version !== expectedVersion : version !== 1 && version !== 2) {
    throw new ProtocolError('bad_version', `smux: unexpected version ${version}`);
  }
  const cmd = buf[offset + 1]!;
  if (!isKnownCmd(cmd)) throw new ProtocolError('bad_command', `smux: unknown command ${cmd}`);
  return { version, cmd, length: buf.readUInt16LE(offset + 2), sid: buf.readUInt32LE(offset + 4) };
}

/** Encodes a whole frame (header + data) into one buffer. */
export function encodeFrame(version: number, cmd: number, sid: number, data?: Buffer): Buffer {
  const length = data ? data.length : 0;
  if (length > MAX_FRAME_LENGTH) throw new RangeError(`smux frame length ${length} exceeds 65535`);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + length);
  writeHeader(buf, 0, version, cmd, length, sid);
  if (data) data.copy(buf, HEADER_SIZE);
  return buf;
}

/** Encodes a whole UPD frame (16 bytes). */
export function encodeUpdFrame(version: number, sid: number, consumed: number, window: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + UPD_SIZE);
  writeHeader(buf, 0, version, CMD_UPD, UPD_SIZE, sid);
  buf.writeUInt32LE(consumed >>> 0, HEADER_SIZE);
  buf.writeUInt32LE(window >>> 0, HEADER_SIZE + 4);
  return buf;
}

/** Encodes UPD data (8 bytes). */
export function encodeWindowUpdate(u: WindowUpdate): Buffer {
  const buf = Buffer.allocUnsafe(UPD_SIZE);
  buf.writeUInt32LE(u.consumed >>> 0, 0);
  buf.writeUInt32LE(u.window >>> 0, 4);
  return buf;
}

/**
 * Decodes UPD data.
 * @throws ProtocolError 'bad_length' unless `data` is exactly 8 bytes
 */
export function decodeWindowUpdate(data: Buffer): WindowUpdate {
  if (data.length !== UPD_SIZE) {
    throw new ProtocolError('bad_length', `smux: UPD data must be ${UPD_SIZE} bytes, got ${data.length}`);
  }
  return { consumed: data.readUInt32LE(0), window: data.readUInt32LE(4) };
}
