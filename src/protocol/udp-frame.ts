/**
 * UDP datagram framing inside a tunnel stream (spec/protocol.md §7), end to end between the
 * visitor's connector and the client's rudp handler.
 *
 * ```
 * +------------+------------------+
 * | LEN (2,BE) | DATAGRAM (LEN)   |     "hello" → 00 05 68 65 6c 6c 6f
 * +------------+------------------+
 * ```
 *
 * One datagram per frame, LEN 0..65535 (empty datagrams are legal). Frame boundaries are
 * unrelated to smux frame or TCP read boundaries.
 */
import { ProtocolError } from '../core/errors';

/** The largest datagram a 16-bit length can describe. */
export const MAX_DATAGRAM_BYTES = 65535;
export const DATAGRAM_HEADER_LEN = 2;

/** The 2-byte length prefix alone (for writers that send header and payload separately). */
export function encodeDatagramHeader(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > MAX_DATAGRAM_BYTES) {
    throw new ProtocolError('too_large', `datagram of ${length} bytes cannot be framed (max ${MAX_DATAGRAM_BYTES})`);
  }
  const out = Buffer.alloc(DATAGRAM_HEADER_LEN);
  out.writeUInt16BE(length);
  return out;
}

/** LEN + payload in one buffer. Throws ProtocolError('too_large') above 65535 bytes. */
export function encodeDatagram(payload: Uint8Array): Buffer {
  const hdr = encodeDatagramHeader(payload.length);
  const out = Buffer.allocUnsafe(DATAGRAM_HEADER_LEN + payload.length);
  hdr.copy(out, 0);
  out.set(payload, DATAGRAM_HEADER_LEN);
  return out;
}

export interface UdpFrameDecoderOptions {
  /** Largest datagram delivered (1..65535, default 65535). */
  maxDatagramBytes?: number;
  /**
   * What to do with a frame longer than maxDatagramBytes: 'error' (default) throws
   * ProtocolError('too_large') on its length field, before buffering any of it; 'truncate'
   * delivers the first maxDatagramBytes bytes and drops the rest, as gost's reader does.
   */
  oversize?: 'error' | 'truncate';
}

/**
 * Turns stream chunks of any size into whole datagrams. A datagram that lies in one chunk is
 * returned as a zero-copy view of it (valid as long as the caller does not reuse the chunk);
 * others are copied once. Holds at most one partial datagram (≤ maxDatagramBytes).
 */
export class UdpFrameDecoder {
  readonly #max: number;
  readonly #truncate: boolean;
  #hdr = Buffer.alloc(DATAGRAM_HEADER_LEN);
  #hdrFill = 0;
  #inBody = false;
  /** Bytes of the current datagram still to deliver. */
  #keep = 0;
  /** Bytes of the current frame to drop after the delivered part (truncate mode). */
  #skip = 0;
  #keepTotal = 0;
  #parts: Buffer[] = [];
  #failed: ProtocolError | undefined;

  constructor(opts: UdpFrameDecoderOptions = {}) {
    const max = opts.maxDatagramBytes ?? MAX_DATAGRAM_BYTES;
    if (!Number.isInteger(max) || max < 1 || max > MAX_DATAGRAM_BYTES) {
      throw new RangeError(`maxDatagramBytes must be 1..${MAX_DATAGRAM_BYTES}`);
    }
    this.#max = max;
    this.#truncate = opts.oversize === 'truncate';
  }

  /** True when the bytes so far end inside a frame (its length field or its datagram). */
  get partial(): boolean {
    return this.#hdrFill > 0 || this.#inBody;
  }

  /** Adds a chunk; returns the datagrams it completed, in order. Throws ProtocolError. */
  push(chunk: Buffer): Buffer[] {
    if (this.#failed) throw this.#failed;
    const out: Buffer[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (!this.#inBody) {
        let len: number;
        if (this.#hdrFill === 0 && chunk.length - off >= DATAGRAM_HEADER_LEN) {
          len = chunk.readUInt16BE(off);
          off += DATAGRAM_HEADER_LEN;
        } else {
          this.#hdr[this.#hdrFill++] = chunk[off++]!;
          if (this.#hdrFill < DATAGRAM_HEADER_LEN) continue;
          this.#hdrFill = 0;
          len = this.#hdr.readUInt16BE(0);
        }
        this.#startFrame(len, out);
        continue;
      }
      const avail = chunk.length - off;
      if (this.#keep > 0) {
        const take = Math.min(this.#keep, avail);
        if (this.#parts.length === 0 && take === this.#keepTotal) {
          out.push(chunk.subarray(off, off + take));
        } else {
          this.#parts.push(chunk.subarray(off, off + take));
          if (take === this.#keep) {
            out.push(Buffer.concat(this.#parts, this.#keepTotal));
            this.#parts = [];
          }
        }
        this.#keep -= take;
        off += take;
      } else {
        const drop = Math.min(this.#skip, avail);
        this.#skip -= drop;
        off += drop;
      }
      if (this.#keep === 0 && this.#skip === 0) this.#inBody = false;
    }
    return out;
  }

  #startFrame(len: number, out: Buffer[]): void {
    if (len > this.#max && !this.#truncate) {
      this.#failed = new ProtocolError('too_large', `datagram of ${len} bytes exceeds the ${this.#max}-byte limit`);
      throw this.#failed;
    }
    if (len === 0) {
      out.push(Buffer.alloc(0));
      return;
    }
    this.#keepTotal = Math.min(len, this.#max);
    this.#keep = this.#keepTotal;
    this.#skip = len - this.#keepTotal;
    this.#inBody = true;
  }

  /**
   * Call at end of stream: throws ProtocolError('truncated') if a frame was cut off.
   */
  finish(): void {
    if (this.partial) throw new ProtocolError('truncated', 'stream ended inside a datagram frame');
  }
}
