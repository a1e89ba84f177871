/**
 * Incremental smux frame decoder (spec/protocol.md §5.2): chunks of any size in, whole frames
 * out through a callback, no object per frame.
 *
 * - A payload that sits inside one chunk is handed out as a `subarray` of that chunk (no copy).
 *   A payload split across chunks is joined, once, when its last byte arrives, unless
 *   `splitPayloads` is set: then PSH data is handed out piece by piece as it arrives (still no
 *   copy), which is what a byte stream needs and what the session uses.
 * - The version is checked first, then the command, and only then the length; the length is a
 *   u16, so no frame can ask for more than 65535 bytes.
 * - Control frames must carry exactly the data smux gives them: SYN/FIN/NOP 0 bytes, UPD 8
 *   bytes. xtaci/smux never sends anything else; it ignores the field on SYN/FIN/NOP and reads
 *   8 bytes for UPD whatever it says, so any other value would desynchronise it. We reject such
 *   a frame instead of guessing where the next header starts.
 */
import { ProtocolError } from '../../core/errors';
import { CMD_PSH, CMD_UPD, HEADER_SIZE, UPD_SIZE, cmdName, isKnownCmd } from './frame';

/**
 * Receives each decoded frame. `data` is empty for SYN/FIN/NOP and 0-length PSH; it may be a
 * view into a chunk passed to `push`, so keep it only as long as that chunk may be kept.
 */
export type FrameHandler = (cmd: number, sid: number, data: Buffer) => void;

export interface FrameDecoderOptions {
  /** Hand PSH data out in pieces as it arrives instead of joining split payloads. */
  splitPayloads?: boolean;
}

const EMPTY = Buffer.alloc(0);

export class FrameDecoder {
  readonly #version: number;
  readonly #onFrame: FrameHandler;
  /** Partial header bytes when a header straddles chunks. */
  readonly #hdr = Buffer.alloc(HEADER_SIZE);
  #hdrLen = 0;
  /** Current frame while its payload is being collected; #need > 0 means "in payload". */
  #cmd = 0;
  #sid = 0;
  #len = 0;
  #need = 0;
  #parts: Buffer[] = [];
  #partsLen = 0;
  #halted = false;
  #failure: ProtocolError | undefined;
  #frames = 0;
  readonly #split: boolean;

  /**
   * @param version the session's version byte (1 or 2); any other version is a ProtocolError.
   * @param onFrame called synchronously for every frame (or PSH piece), in order.
   */
  constructor(version: number, onFrame: FrameHandler, opts: FrameDecoderOptions = {}) {
    this.#version = version;
    this.#onFrame = onFrame;
    this.#split = opts.splitPayloads === true;
  }

  /** Frames decoded so far. */
  get frames(): number {
    return this.#frames;
  }

  /** Bytes of an incomplete frame seen so far (header included). */
  get pendingBytes(): number {
    return this.#need > 0 ? HEADER_SIZE + this.#len - this.#need : this.#hdrLen;
  }

  /** Payload bytes still expected for the frame in progress. */
  get payloadRemaining(): number {
    return this.#need;
  }

  /** True between frames (no partial header or payload held). */
  get idle(): boolean {
    return this.#hdrLen === 0 && this.#need === 0;
  }

  /** Stops decoding: the rest of the current chunk and all later chunks are ignored. */
  halt(): void {
    this.#halted = true;
    this.#parts = [];
    this.#partsLen = 0;
  }

  get halted(): boolean {
    return this.#halted;
  }

  /** The ProtocolError this decoder threw, if any (to tell it from a handler's own throw). */
  get failure(): ProtocolError | undefined {
    return this.#failure;
  }

  #fail(err: ProtocolError): never {
    this.#failure = err;
    this.halt();
    throw err;
  }

  /**
   * Decodes as many frames as `chunk` completes. The handler may call `halt()`.
   * @throws ProtocolError 'bad_version' | 'bad_command' | 'bad_length' (the decoder halts)
   */
  push(chunk: Buffer): void {
    const len = chunk.length;
    let off = 0;
    while (off < len && !this.#halted) {
      if (this.#need > 0) {
        off = this.#takePayload(chunk, off);
        continue;
      }
      let h: Buffer;
      let ho: number;
      if (this.#hdrLen === 0 && len - off >= HEADER_SIZE) {
        h = chunk;
        ho = off;
        off += HEADER_SIZE;
      } else {
        const take = Math.min(HEADER_SIZE - this.#hdrLen, len - off);
        chunk.copy(this.#hdr, this.#hdrLen, off, off + take);
        this.#hdrLen += take;
        off += take;
        if (this.#hdrLen < HEADER_SIZE) return;
        this.#hdrLen = 0;
        h = this.#hdr;
        ho = 0;
      }
      const length = this.#header(h, ho);
      if (length === 0) {
        this.#emit(this.#cmd, this.#sid, EMPTY);
      } else {
        this.#len = length;
        this.#need = length;
      }
    }
  }

  /** Validates a header; returns the payload length. */
  #header(h: Buffer, o: number): number {
    const version = h[o]!;
    if (version !== this.#version) {
      this.#fail(new ProtocolError('bad_version', `smux: version ${version}, expected ${this.#version}`));
    }
    const cmd = h[o + 1]!;
    if (!isKnownCmd(cmd)) this.#fail(new ProtocolError('bad_command', `smux: unknown command ${cmd}`));
    const length = h[o + 2]! | (h[o + 3]! << 8);
    const sid = h.readUInt32LE(o + 4);
    if (cmd !== CMD_PSH) {
      const want = cmd === CMD_UPD ? UPD_SIZE : 0;
      if (length !== want) {
        this.#fail(new ProtocolError('bad_length', `smux: ${cmdName(cmd)} frame with length ${length}, expected ${want}`));
      }
    }
    this.#cmd = cmd;
    this.#sid = sid;
    return length;
  }

  #takePayload(chunk: Buffer, off: number): number {
    const avail = chunk.length - off;
    const need = this.#need;
    if (this.#partsLen === 0 && avail >= need) {
      this.#need = 0;
      this.#emit(this.#cmd, this.#sid, chunk.subarray(off, off + need));
      return off + need;
    }
    const take = avail < need ? avail : need;
    if (this.#split && this.#cmd === CMD_PSH) {
      this.#need = need - take;
      if (this.#need === 0) this.#frames++;
      this.#onFrame(CMD_PSH, this.#sid, chunk.subarray(off, off + take));
      return off + take;
    }
    this.#parts.push(chunk.subarray(off, off + take));
    this.#partsLen += take;
    this.#need = need - take;
    if (this.#need === 0) {
      const data = Buffer.concat(this.#parts, this.#partsLen);
      this.#parts = [];
      this.#partsLen = 0;
      this.#emit(this.#cmd, this.#sid, data);
    }
    return off + take;
  }

  #emit(cmd: number, sid: number, data: Buffer): void {
    this.#frames++;
    this.#onFrame(cmd, sid, data);
  }
}

/** A decoded frame, for tests and tools (the session uses the callback form). */
export interface DecodedFrame {
  cmd: number;
  sid: number;
  data: Buffer;
}

/**
 * Decodes a complete byte sequence of frames. Bytes of a trailing incomplete frame are
 * reported in `rest`.
 * @throws ProtocolError as FrameDecoder.push
 */
export function decodeFrames(
  version: number,
  chunks: Buffer | Iterable<Buffer>,
): { frames: DecodedFrame[]; rest: number } {
  const frames: DecodedFrame[] = [];
  const dec = new FrameDecoder(version, (cmd, sid, data) => frames.push({ cmd, sid, data }));
  if (Buffer.isBuffer(chunks)) dec.push(chunks);
  else for (const c of chunks) dec.push(c);
  return { frames, rest: dec.pendingBytes };
}
