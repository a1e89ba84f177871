/**
 * One smux stream as a Node Duplex (spec/protocol.md §5.3, §5.4).
 *
 * Close semantics follow xtaci/smux:
 * - `end()` sends FIN after everything written before it. Our readable side stays open until
 *   the peer's FIN arrives (smux itself would drop that late data; keeping it costs nothing).
 * - A FIN from the peer ends the readable side once buffered data has been read. Our writable
 *   side stays open until we end it: that is a half-close, so a client that shuts down its write
 *   side still receives the whole response. (smux's Write fails after the peer's FIN; a gost
 *   peer that has sent FIN has forgotten the stream and discards later data, which is harmless.
 *   Against such a peer a write can wait for window that never comes; the owner's half-close
 *   idle timeout bounds that.)
 * - The session forgets the stream when FIN went both ways, or when the stream is destroyed;
 *   `destroy()` sends FIN first if we have not sent one. Later frames for the id are dropped.
 * - When the session dies every stream is destroyed with BURROW_ERR_CLOSED, whose `cause` is
 *   the session's own error (protocol error, keepalive timeout, socket error). Like every
 *   Duplex, listen for 'error'.
 *
 * Flow control, version 2, as smux: the sender may have at most `peerWindow` bytes in flight
 * (initially 262144, replaced by each UPD) and holds the Writable callback until UPD frames
 * open the window. The receiver counts a byte as read when it is handed to the Readable
 * (`push`), which happens only while the consumer keeps asking (`_read`), and sends
 * `UPD(consumed, window)` after the first read and whenever ≥ half a base window more bytes
 * were read. A reader that stops therefore stops the UPDs and, one window later, the sender.
 * Bytes waiting in our own queue count against the session's receive budget.
 *
 * The window (ours; smux's is fixed at MaxStreamBuffer) starts at the base window, gost's
 * 1 MiB, and doubles with every UPD after the first, up to maxStreamBuffer, as far as the
 * session grants it: one window per RTT is all a stream can move, and 1 MiB caps it at about
 * 168 Mbit/s at 50 ms. Any window is wire-compatible, since a sender (smux's too) takes the
 * window of each UPD as it comes. A peer may send up to the largest `consumed + window` we have
 * advertised; one that sends past it loses the stream.
 */
import { Duplex } from 'node:stream';
import { BurrowError, ProtocolError } from '../../core/errors';
import { baseStreamWindow, type SmuxConfig } from './config';
import { CMD_FIN, HEADER_SIZE, encodeFrame, encodeUpdFrame } from './frame';

/** smux's starting guess of the peer's window (initialPeerWindow in stream.go). */
export const INITIAL_PEER_WINDOW = 262_144;

/** What a stream needs from its session. Implemented inside Session; not public API. */
export interface StreamHost {
  readonly config: Readonly<SmuxConfig>;
  /** Writes a complete control frame (SYN/FIN/UPD/NOP) right away, ahead of queued data. */
  writeControl(frame: Buffer): void;
  /** Puts the stream in the send rotation (it has data and window). */
  wantSend(stream: Stream): void;
  /** Bytes queued in a stream (received, not yet handed to its reader). */
  charge(n: number): void;
  /** Bytes leaving a stream's queue. */
  release(n: number): void;
  /**
   * A stream whose receive window is `current` asks for twice that (at most maxStreamBuffer);
   * returns the window granted (≥ `current`). The session takes back what was granted above
   * the base window when it forgets the stream.
   */
  growWindow(current: number): number;
  /** The stream is finished with: remove it from the session. Idempotent. */
  forget(stream: Stream): void;
  /**
   * The peer broke the protocol on this stream (the stream is closed, the session goes on);
   * `limit` names the rule, as users know it.
   */
  violation(err: Error, limit: string): void;
}

// Entry points the session calls; symbols keep them off the public surface.
export const kData = Symbol('smux.data');
export const kFin = Symbol('smux.fin');
export const kUpdate = Symbol('smux.update');
export const kSessionDied = Symbol('smux.sessionDied');
export const kSendFrame = Symbol('smux.sendFrame');
export const kQueued = Symbol('smux.queued');

// Stream.#bits.
/** smux version 2: windows and UPD frames. */
const F_V2 = 1;
/** The reader asked for more (push() said yes, or _read came). */
const F_WANT_DATA = 2;
const F_FIN_RECEIVED = 4;
/** push(null) done: the readable side has its end. */
const F_EOF_PUSHED = 8;
/** Our first UPD went out (the window grows from the next one on). */
const F_UPD_SENT = 16;
const F_FIN_SENT = 32;
/** The session is gone: no more frames from us. */
const F_SESSION_GONE = 64;

/** Sends one data frame (header + payload). Provided by the session. */
export type DataFrameWriter = (sid: number, payload: Buffer) => void;

export class Stream extends Duplex {
  /** Stream id: odd when opened by the smux client side, even by the server side. */
  readonly id: number;
  readonly #host: StreamHost;
  /** A UPD goes out after every this many bytes read: half the base window. */
  readonly #updEvery: number;
  /** The stream's yes/no states as bits (F_*): one field instead of seven, for thousands of idle streams. */
  #bits = 0;

  // Receive side.
  /** Received, waiting for the reader; null when empty (an idle stream keeps no array). */
  #rq: Buffer[] | null = null;
  #rqBytes = 0;
  #numRead = 0;
  #incr = 0;
  /** The window our UPDs advertise. */
  #window: number;
  /**
   * How far (numRead + window, u32) the peer may send: the largest end we advertised; before
   * our first UPD, the sender's starting guess or our base window, whichever is larger.
   */
  #allowedEnd: number;

  // Send side.
  #peerWindow = INITIAL_PEER_WINDOW;
  #peerConsumed = 0;
  #numWritten = 0;
  #out: Buffer | null = null;
  #outOff = 0;
  #outCb: ((err?: Error | null) => void) | null = null;
  /** In the session's send rotation. */
  [kQueued] = false;

  /** @internal Streams are made by Session.openStream() and by incoming SYNs. */
  constructor(id: number, host: StreamHost) {
    super({ allowHalfOpen: true, emitClose: true, autoDestroy: true });
    this.id = id;
    this.#host = host;
    if (host.config.version === 2) this.#bits = F_V2;
    this.#window = baseStreamWindow(host.config);
    this.#updEvery = Math.floor(this.#window / 2);
    this.#allowedEnd = Math.max(this.#window, INITIAL_PEER_WINDOW);
  }

  #flag(bit: number, on: boolean): void {
    this.#bits = on ? this.#bits | bit : this.#bits & ~bit;
  }

  #has(bit: number): boolean {
    return (this.#bits & bit) !== 0;
  }

  /** The receive window our UPDs advertise (version 2). */
  get receiveWindow(): number {
    return this.#window;
  }

  /** Received bytes waiting in this stream for its reader (not yet in the Readable buffer). */
  get queuedBytes(): number {
    return this.#rqBytes;
  }

  /** FIN received from the peer. */
  get remoteClosed(): boolean {
    return this.#has(F_FIN_RECEIVED);
  }

  /** FIN sent to the peer. */
  get localClosed(): boolean {
    return this.#has(F_FIN_SENT);
  }

  // ---- receive side ---------------------------------------------------------------------

  override _read(): void {
    this.#flag(F_WANT_DATA, true);
    const rq = this.#rq;
    if (rq) {
      while (this.#has(F_WANT_DATA) && rq.length > 0) {
        const buf = rq.shift()!;
        this.#rqBytes -= buf.length;
        this.#host.release(buf.length);
        this.#deliver(buf);
        if (this.destroyed) return;
      }
      if (rq.length > 0) return;
      if (this.#rq === rq) this.#rq = null;
    }
    if (this.#has(F_FIN_RECEIVED)) this.#pushEof();
  }

  /** Hands bytes to the reader and does the smux read accounting. */
  #deliver(buf: Buffer): void {
    if (this.#has(F_V2)) {
      const n = buf.length;
      this.#numRead = (this.#numRead + n) >>> 0;
      this.#incr += n;
      if (this.#incr >= this.#updEvery || !this.#has(F_UPD_SENT)) {
        // A stream that keeps reading has moved a window's worth: it may use a larger one.
        const grow = this.#has(F_UPD_SENT) && this.#window < this.#host.config.maxStreamBuffer;
        this.#incr = 0;
        this.#flag(F_UPD_SENT, true);
        if (!this.#has(F_SESSION_GONE)) {
          if (grow) this.#window = this.#host.growWindow(this.#window);
          const end = (this.#numRead + this.#window) >>> 0;
          if (((end - this.#allowedEnd) | 0) > 0) this.#allowedEnd = end;
          this.#host.writeControl(encodeUpdFrame(2, this.id, this.#numRead, this.#window));
        }
      }
    }
    this.#flag(F_WANT_DATA, this.push(buf));
  }

  #pushEof(): void {
    if (this.#has(F_EOF_PUSHED)) return;
    this.#flag(F_EOF_PUSHED, true);
    this.push(null);
  }

  /** PSH payload from the session. */
  [kData](buf: Buffer): void {
    // Data after the peer's FIN breaks the protocol; smux would still buffer it, but our
    // readable side may already have ended, so it is dropped.
    if (this.#has(F_FIN_RECEIVED) || this.destroyed) return;
    if (this.#has(F_WANT_DATA) && this.#rq === null) {
      this.#deliver(buf);
    } else {
      // Received so far: numRead + rqBytes. A peer that honours our windows stays within the
      // largest end we advertised, plus one frame of slack.
      const window = (this.#allowedEnd - this.#numRead) | 0;
      if (this.#has(F_V2) && this.#rqBytes + buf.length > window + this.#host.config.maxFrameSize) {
        // The peer ignores our window: this stream goes, the session and its other streams stay.
        const err = new ProtocolError('bad_frame', `smux: stream ${this.id}: peer sent past the ${window}-byte window (mux.maxStreamBuffer)`);
        this.#host.violation(err, 'mux.maxStreamBuffer');
        this.destroy(err);
        return;
      }
      (this.#rq ??= []).push(buf);
      this.#rqBytes += buf.length;
      this.#host.charge(buf.length);
    }
  }

  /** FIN from the session. */
  [kFin](): void {
    if (this.#has(F_FIN_RECEIVED) || this.destroyed) return;
    this.#flag(F_FIN_RECEIVED, true);
    if (this.#rq === null) this.#pushEof();
    // Emitted as soon as the FIN arrives, even while earlier data still waits for our reader
    // ('end' comes only after that data is read): owners use it to bound how long a stream
    // whose consumer never reads can linger.
    this.emit('peerend');
    if (this.#has(F_FIN_SENT)) this.#host.forget(this);
  }

  // ---- send side ------------------------------------------------------------------------

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#startWrite(chunk, cb);
  }

  /**
   * Several writes were buffered (a corked writer, or one that writes faster than the window
   * opens): send them as one run of full frames. The copy matters for smux inside smux, where
   * the inner session writes each 8-byte header separately and would otherwise cost an outer
   * frame per header.
   */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    let total = 0;
    for (const c of chunks) total += c.chunk.length;
    const buf = Buffer.allocUnsafe(total);
    let off = 0;
    for (const c of chunks) off += c.chunk.copy(buf, off);
    this.#startWrite(buf, cb);
  }

  #startWrite(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.#has(F_SESSION_GONE)) {
      cb(new BurrowError('BURROW_ERR_CLOSED', 'smux: session closed'));
      return;
    }
    if (chunk.length === 0) {
      cb();
      return;
    }
    this.#out = chunk;
    this.#outOff = 0;
    this.#outCb = cb;
    if (this.#sendable() > 0) this.#host.wantSend(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#has(F_SESSION_GONE)) {
      cb(new BurrowError('BURROW_ERR_CLOSED', 'smux: session closed'));
      return;
    }
    this.#sendFin();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#has(F_SESSION_GONE)) this.#sendFin();
    if (this.#rqBytes > 0) this.#host.release(this.#rqBytes);
    this.#rq = null;
    this.#rqBytes = 0;
    if (this.#outCb) this.#failOut(err ?? new BurrowError('BURROW_ERR_CLOSED', 'smux: stream destroyed'));
    this.#host.forget(this);
    cb(err);
  }

  #sendFin(): void {
    if (this.#has(F_FIN_SENT)) return;
    this.#flag(F_FIN_SENT, true);
    this.#host.writeControl(encodeFrame(this.#host.config.version, CMD_FIN, this.id));
    if (this.#has(F_FIN_RECEIVED)) this.#host.forget(this);
  }

  #completeOut(): void {
    const cb = this.#outCb;
    if (!cb) return;
    this.#out = null;
    this.#outCb = null;
    cb();
  }

  #failOut(err: Error): void {
    const cb = this.#outCb;
    if (!cb) return;
    this.#out = null;
    this.#outCb = null;
    cb(err);
  }

  /**
   * Bytes the window lets us send now (v1: no limit). int32 arithmetic on u32 counters, as
   * smux does it, so the counters may wrap.
   */
  #sendable(): number {
    if (!this.#has(F_V2)) return Number.MAX_SAFE_INTEGER;
    const inflight = (this.#numWritten - this.#peerConsumed) | 0;
    const win = (this.#peerWindow | 0) - inflight;
    return win > 0 ? win : 0;
  }

  /**
   * Called by the session's send loop: writes at most one frame through `write` and returns
   * its size on the wire (0 if nothing could be sent). Re-enters the rotation itself when it
   * has more to send and window left.
   */
  [kSendFrame](write: DataFrameWriter, maxFrameSize: number): number {
    const out = this.#out;
    if (!out || this.destroyed) return 0;
    const room = this.#sendable();
    if (room <= 0) return 0;
    let n = out.length - this.#outOff;
    if (n > maxFrameSize) n = maxFrameSize;
    if (n > room) n = room;
    const start = this.#outOff;
    write(this.id, start === 0 && n === out.length ? out : out.subarray(start, start + n));
    this.#numWritten = (this.#numWritten + n) >>> 0;
    this.#outOff = start + n;
    if (this.#outOff >= out.length) {
      this.#completeOut();
    } else if (n < room) {
      // More to send and the window still has room; otherwise the next UPD re-queues us.
      this.#host.wantSend(this);
    }
    return n + HEADER_SIZE;
  }

  /** UPD from the session. */
  [kUpdate](consumed: number, window: number): void {
    // Version 1 has no windows; smux stores the values and never looks at them.
    if (!this.#has(F_V2) || this.destroyed) return;
    // "consumed" beyond what we sent: smux fails the stream's writes with ErrConsumed and the
    // session goes on. We do the same: this stream is destroyed (FIN sent), others are fine.
    if (((this.#numWritten - consumed) | 0) < 0) {
      const err = new ProtocolError('bad_frame', `smux: stream ${this.id}: window update claims more bytes consumed than were sent`);
      this.#host.violation(err, 'smux protocol');
      this.destroy(err);
      return;
    }
    this.#peerConsumed = consumed >>> 0;
    this.#peerWindow = window >>> 0;
    if (this.#outCb && this.#sendable() > 0) this.#host.wantSend(this);
  }

  /**
   * The session died: no more frames; fail everything that is still open with `err`.
   * Without `err` (a stream nobody has accepted yet) it is destroyed quietly.
   */
  [kSessionDied](err?: Error): void {
    this.#flag(F_SESSION_GONE, true);
    if (this.destroyed) return;
    if (!err) {
      this.destroy();
      return;
    }
    if (this.#has(F_FIN_RECEIVED) && !this.readableEnded) {
      // The peer had finished; let the reader have its last bytes, then report.
      this.once('end', () => this.destroy(err));
      return;
    }
    this.destroy(err);
  }
}
