/**
 * An incremental scanner for HTTP/1.1 chunked bodies (RFC 9112 §7.1): it finds where a chunked
 * message ends in a byte stream that arrives in arbitrary pieces, and tells which ranges are
 * chunk data, without copying anything. The entry point forwards chunked bodies as they are
 * (framing included) and only needs to know where one message stops and the next begins.
 *
 * ```
 * chunked-body = *chunk last-chunk trailer-section CRLF
 * chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * last-chunk   = 1*("0") [ chunk-ext ] CRLF
 * ```
 *
 * Strict where leniency breeds request smuggling: lines end in CRLF, sizes are hex digits
 * (at most 12, so under 2^48), extensions and trailers are bounded.
 */
import { ProtocolError } from '../../core/errors';

const enum S {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  Trailer,
  TrailerLf,
  FinalLf,
  Done,
}

/** Longest chunk-size line (size and extensions) accepted. */
const MAX_SIZE_LINE = 4096;
/** Largest trailer section accepted. */
const MAX_TRAILERS = 16 * 1024;
const MAX_SIZE_DIGITS = 12;

function bad(message: string): never {
  throw new ProtocolError('bad_header', `chunked body: ${message}`);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export class ChunkedScanner {
  #s = S.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;

  get done(): boolean {
    return this.#s === S.Done;
  }

  /**
   * Scans `buf[start, end)`. Calls `onData(from, to)` for every range of chunk data (for
   * callers that decode). Returns the offset just past the end of the message when it ends in
   * this range, else -1 (everything up to `end` belongs to the message). Throws ProtocolError
   * on malformed framing.
   */
  scan(buf: Uint8Array, start: number, end: number, onData?: (from: number, to: number) => void): number {
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.#s) {
        case S.Size: {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) bad('chunk size too large');
            this.#size = this.#size * 16 + v;
            i++;
            continue;
          }
          if (this.#digits === 0) bad('missing chunk size');
          if (c === 0x0d) this.#s = S.SizeLf;
          else if (c === 0x3b || c === 0x20 || c === 0x09) this.#s = S.Ext;
          else bad('malformed chunk size');
          this.#lineBytes = this.#digits + 1;
          i++;
          continue;
        }
        case S.Ext: {
          if (c === 0x0d) this.#s = S.SizeLf;
          else if (c === 0x0a || c < 0x09 || (c > 0x09 && c < 0x20) || c === 0x7f) bad('control character in chunk extension');
          if (++this.#lineBytes > MAX_SIZE_LINE) bad('chunk extension too long');
          i++;
          continue;
        }
        case S.SizeLf: {
          if (c !== 0x0a) bad('chunk size line not ended by CRLF');
          i++;
          if (this.#size === 0) {
            this.#s = S.TrailerStart;
          } else {
            this.#s = S.Data;
          }
          continue;
        }
        case S.Data: {
          const n = Math.min(this.#size, end - i);
          if (onData) onData(i, i + n);
          this.#size -= n;
          i += n;
          if (this.#size === 0) this.#s = S.DataCr;
          continue;
        }
        case S.DataCr:
          if (c !== 0x0d) bad('chunk data not followed by CRLF');
          this.#s = S.DataLf;
          i++;
          continue;
        case S.DataLf:
          if (c !== 0x0a) bad('chunk data not followed by CRLF');
          this.#s = S.Size;
          this.#digits = 0;
          this.#size = 0;
          i++;
          continue;
        case S.TrailerStart:
          if (c === 0x0d) {
            this.#s = S.FinalLf;
            i++;
            continue;
          }
          this.#s = S.Trailer;
          continue;
        case S.Trailer:
          if (c === 0x0d) this.#s = S.TrailerLf;
          else if (c === 0x0a || c === 0) bad('malformed trailer line');
          if (++this.#trailerBytes > MAX_TRAILERS) bad('trailer section too large');
          i++;
          continue;
        case S.TrailerLf:
          if (c !== 0x0a) bad('trailer line not ended by CRLF');
          this.#s = S.TrailerStart;
          i++;
          continue;
        case S.FinalLf:
          if (c !== 0x0a) bad('chunked body not ended by CRLF');
          this.#s = S.Done;
          return i + 1;
        case S.Done:
          return i;
      }
    }
    return -1;
  }
}

/** The chunked framing of one data chunk: its size line (the data and a CRLF follow). */
export function chunkSizeLine(n: number): string {
  return `${n.toString(16)}\r\n`;
}

export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
export const CRLF = Buffer.from('\r\n', 'latin1');
