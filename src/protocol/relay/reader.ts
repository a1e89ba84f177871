/**
 * Incremental reader for one relay message on a byte stream (spec/protocol.md §1.1, §1.2).
 *
 * ```
 * +-----+------------------+---------+----------+---------------------------
 * | VER | CMD/FLAGS|STATUS | FEALEN  | FEATURES | next layer (smux, raw data, …)
 * |  1  |        1         | 2 (BE)  |  FEALEN  |
 * +-----+------------------+---------+----------+---------------------------
 * ```
 *
 * Feed chunks of any size with `push`; once 4 + FEALEN bytes are there it returns the decoded
 * message, the exact message bytes (`raw`, for replaying) and the bytes that followed it in
 * the last chunk (`rest`, belonging to the next protocol layer). The version byte is checked
 * as soon as it arrives. Memory is bounded by 4 + FEALEN ≤ 65539 bytes (lower with
 * `maxFeaturesBytes`) and only bytes actually received are ever held; the length field never
 * drives an allocation.
 */
import { ProtocolError } from '../../core/errors';
import { HEADER_LEN, MAX_FEATURES_LEN } from './constants';
import { decodeRequest, decodeResponse, messageLength, type RelayRequest, type RelayResponse } from './message';

export interface RelayReaderOptions {
  /** Largest FEALEN accepted (default and maximum 65535); larger → ProtocolError('too_large'). */
  maxFeaturesBytes?: number;
}

export interface RelayReadResult<M> {
  message: M;
  /** The message bytes exactly as received. */
  raw: Buffer;
  /** Bytes after the message in the pushed data (zero-copy view, possibly empty). */
  rest: Buffer;
}

export class RelayReader<M> {
  readonly #decode: (buf: Buffer) => M;
  readonly #maxTotal: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #total: number | undefined;
  #header = Buffer.alloc(HEADER_LEN);
  #done = false;
  #failed: ProtocolError | undefined;

  /** A reader for a request (server side). */
  static forRequest(opts?: RelayReaderOptions): RelayReader<RelayRequest> {
    return new RelayReader(decodeRequest, opts);
  }

  /** A reader for a response (client side, and per-stream headers). */
  static forResponse(opts?: RelayReaderOptions): RelayReader<RelayResponse> {
    return new RelayReader(decodeResponse, opts);
  }

  private constructor(decode: (buf: Buffer) => M, opts: RelayReaderOptions = {}) {
    const max = opts.maxFeaturesBytes ?? MAX_FEATURES_LEN;
    if (!Number.isInteger(max) || max < 0 || max > MAX_FEATURES_LEN) {
      throw new RangeError(`maxFeaturesBytes must be 0..${MAX_FEATURES_LEN}`);
    }
    this.#decode = decode;
    this.#maxTotal = HEADER_LEN + max;
  }

  /** Bytes held so far (never more than the message length). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** True once a message has been returned. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Adds a chunk. Returns the message once complete, else undefined. Throws ProtocolError on
   * malformed input (and again on every later push); throws Error if called after completion.
   */
  push(chunk: Buffer): RelayReadResult<M> | undefined {
    if (this.#failed) throw this.#failed;
    if (this.#done) throw new Error('RelayReader: message already complete');
    try {
      return this.#push(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.#failed = err;
        this.#chunks = [];
      }
      throw err;
    }
  }

  #push(chunk: Buffer): RelayReadResult<M> | undefined {
    if (chunk.length === 0) return undefined;
    let off = 0;
    // Header bytes are copied into a fixed 4-byte buffer, so they are checked as they arrive.
    while (this.#total === undefined && off < chunk.length) {
      this.#header[this.#buffered + off] = chunk[off]!;
      off++;
      const have = this.#buffered + off;
      this.#total = messageLength(this.#header.subarray(0, have));
    }
    if (this.#total !== undefined && this.#total > this.#maxTotal) {
      throw new ProtocolError('too_large', `relay features of ${this.#total - HEADER_LEN} bytes exceed the limit`);
    }
    const need = (this.#total ?? HEADER_LEN) - this.#buffered;
    if (chunk.length < need) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      return undefined;
    }
    const rest = chunk.subarray(need);
    const tail = chunk.subarray(0, need);
    const raw = this.#chunks.length === 0 ? tail : Buffer.concat([...this.#chunks, tail], this.#buffered + need);
    this.#chunks = [];
    this.#buffered += need;
    this.#done = true;
    return { message: this.#decode(raw), raw, rest };
  }
}
