/**
 * A datagram view of a byte stream that carries 2-byte length framing (protocol.md §7):
 * an objectMode Duplex whose chunks are whole datagrams. Writes are framed (one write of
 * header + payload), reads are decoded from whatever chunking the stream delivers.
 * Backpressure passes through: a full byte stream holds the datagram writer, a slow datagram
 * reader pauses the byte stream. Destroying either side destroys the other.
 *
 * The byte stream is corked from the first datagram written in an event-loop turn until the
 * turn's I/O is done (setImmediate): the datagrams a UDP socket delivered in one poll leave in
 * one write instead of one write (and one TCP segment) each.
 */
import { Duplex } from 'node:stream';
import { DATAGRAM_HEADER_LEN, encodeDatagram, encodeDatagramHeader, MAX_DATAGRAM_BYTES, UdpFrameDecoder } from '../protocol/udp-frame';
import { DEFAULTS } from '../core/config';
import { SendTimeoutError } from '../core/errors';
import { destroy, errorsBeforeRelay, type RelayResult } from './pipe';

class FramedDatagrams extends Duplex {
  readonly #inner: Duplex;
  readonly #decoder = new UdpFrameDecoder();
  #corked = false;

  constructor(inner: Duplex) {
    super({ objectMode: true, allowHalfOpen: true, highWaterMark: 64 });
    this.#inner = inner;
    inner.on('data', (chunk: Buffer) => {
      let dgs: Buffer[];
      try {
        dgs = this.#decoder.push(chunk);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      let more = true;
      for (const d of dgs) more = this.push(d) && more;
      if (!more) inner.pause();
    });
    inner.once('end', () => this.push(null));
    inner.once('error', (err) => this.destroy(err));
    inner.once('close', () => {
      if (!this.destroyed && !this.readableEnded) this.destroy();
    });
  }

  override _read(): void {
    if (this.#inner.isPaused()) this.#inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let framed: Buffer;
    try {
      framed = encodeDatagram(chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    this.#send(framed, cb);
  }

  /** Writes framed bytes within this turn's cork; `cb` once the byte stream takes more. */
  #send(framed: Buffer, cb: (err?: Error | null) => void): void {
    this.#corkForTurn();
    if (this.#inner.write(framed)) cb();
    else this.#inner.once('drain', () => cb());
  }

  #corkForTurn(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#inner.cork();
    setImmediate(this.#uncork);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#inner.uncork();
  };

  /** Datagrams queued together go out as one write (one multiplexer frame, not one each). */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    const parts: Buffer[] = [];
    try {
      for (const { chunk } of chunks) parts.push(encodeDatagramHeader(chunk.length), chunk);
    } catch (err) {
      cb(err as Error);
      return;
    }
    this.#send(Buffer.concat(parts), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#inner.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.#inner.destroyed) this.#inner.destroy(err ?? undefined);
    cb(err);
  }
}

export function framedDatagrams(byteStream: Duplex): Duplex {
  return new FramedDatagrams(byteStream);
}

/**
 * A datagram socket side (a UDP listener's session, a dialed UDP socket) that can hand its
 * datagrams to a function and send datagrams without the objectMode stream between: the
 * fast path of `relayDatagrams`. It stays a Duplex for everything else (its 'close' and
 * 'error', `destroy()`).
 */
export interface DatagramPort extends Duplex {
  /** From now on every datagram received goes to `sink`, those already queued first. */
  attachSink(sink: (datagram: Buffer) => void): void;
  /** Sends one datagram, as a write would (dropped when the socket's send queue is full). */
  sendDatagram(datagram: Buffer): void;
  /** Datagrams held for a tunnel stream that does not take more, beyond which they are dropped. */
  readonly queueLimit: number;
  /** Called for every datagram dropped because the tunnel stream was full (a session warns once). */
  dropped(): void;
  /**
   * Sends the whole length-framed datagrams of `buf[start, end)` straight from `buf`, as
   * `sendDatagram` would each, when the port can (native batched I/O); undefined when it
   * cannot, and the caller decodes and sends them one by one.
   */
  sendFramed?(buf: Buffer, start: number, end: number): { bytes: number; datagrams: number; payload: number } | undefined;
}

/** Hands `sink` the datagrams an objectMode stream still holds, in order (for `attachSink`). */
export function drainQueued(s: Duplex, sink: (datagram: Buffer) => void): void {
  for (let d = s.read() as Buffer | null; d !== null; d = s.read() as Buffer | null) sink(d);
}

export function isDatagramPort(s: Duplex): s is DatagramPort {
  return typeof (s as Partial<DatagramPort>).attachSink === 'function';
}

export interface DatagramRelayOptions {
  /** Longest wait for the tunnel stream to take more bytes (no 'drain'); 0 = none. */
  sendTimeoutMs?: number;
}

/**
 * Framed datagrams are written into one shared slab, as Buffer.allocUnsafe does with its
 * pool: a datagram costs a header write and a copy, no Buffer of its own, and the datagrams a
 * relay framed in one turn lie side by side, so they leave as one write.
 */
const SLAB_BYTES = 64 * 1024;
/** Datagrams libuv reads from a socket per poll at most (uv__udp_recvmsg). */
const FULL_POLL = 32;
/** Turns a write may be put off by while full polls keep coming (the batch stays ≤ queueLimit). */
const MAX_DEFERRED_TURNS = 3;
let slab = Buffer.allocUnsafe(0);
let slabOff = 0;

/**
 * Relays datagrams between `port` and `stream`, a byte stream that carries them with 2-byte
 * length framing (a tunnel stream): what `relay(port, framedDatagrams(stream))` does, without
 * two objectMode streams and a relay's bookkeeping per datagram.
 *
 * - port → stream: each datagram is framed into the slab; the datagrams of one event-loop
 *   turn are written once, after the turn's I/O (setImmediate). A turn that brought a full
 *   poll (32 datagrams, libuv's most per wake-up: more are waiting in the socket) puts the write
 *   off by a turn, up to 3 turns or `queueLimit` datagrams: at 1 Gbit/s of 1400-byte datagrams
 *   that is a third of the TCP writes, and of the CPU they cost. While the stream wants a
 *   'drain', up to `port.queueLimit` datagrams wait and later ones are dropped (UDP has no
 *   backpressure; memory stays bounded).
 * - stream → port: decoded datagrams are sent at once; a malformed frame ends the relay
 *   with its error.
 * - Either side closing ends the relay: the port is destroyed, the stream is ended (its
 *   queued bytes still leave) and destroyed once it has flushed, or at once after an error.
 *
 * `done` is called once, with the bytes each way (datagram payloads) and the first error.
 */
export function relayDatagrams(port: DatagramPort, stream: Duplex, opts: DatagramRelayOptions, done: (r: RelayResult) => void): void {
  new DatagramRelay(port, stream, opts.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs, done).start();
}

class DatagramRelay {
  readonly #port: DatagramPort;
  readonly #stream: Duplex;
  readonly #sendTimeoutMs: number;
  readonly #done: (r: RelayResult) => void;
  readonly #decoder = new UdpFrameDecoder();
  aToB = 0;
  bToA = 0;
  #error: Error | undefined;
  #settled = false;
  /** Framed bytes not yet written: [buffer, start, end] triples (the arrays are reused). */
  readonly #bufs: Buffer[] = [];
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];
  #queued = 0;
  /** Of those, the ones queued before the last turn; turns a flush was put off by. */
  #queuedBefore = 0;
  #deferred = 0;
  #flushScheduled = false;
  /** Since when the stream has wanted a 'drain' (0 = it takes more). */
  #waitingSince = 0;
  #sendTimer: NodeJS.Timeout | undefined;

  constructor(port: DatagramPort, stream: Duplex, sendTimeoutMs: number, done: (r: RelayResult) => void) {
    this.#port = port;
    this.#stream = stream;
    this.#sendTimeoutMs = sendTimeoutMs;
    this.#done = done;
  }

  start(): void {
    const port = this.#port;
    const stream = this.#stream;
    for (const s of [port, stream]) {
      s.removeListener('error', errorsBeforeRelay);
      s.on('error', this.#onError);
      s.once('close', this.#onClose);
    }
    stream.once('end', this.#onClose);
    stream.on('data', this.#onStreamData);
    if (port.destroyed || stream.destroyed || stream.readableEnded) {
      process.nextTick(this.#onClose);
      return;
    }
    port.attachSink(this.#onDatagram);
    // A stream paused before the relay (one that was sniffed) flows only on resume().
    stream.resume();
  }

  readonly #onError = (err: Error): void => {
    this.#error ??= err;
    this.#settle();
  };

  readonly #onClose = (): void => {
    this.#settle();
  };

  readonly #onStreamData = (chunk: Buffer): void => {
    if (this.#settled) return;
    const port = this.#port;
    if (port.sendFramed && !this.#decoder.partial) {
      // The whole frames go from the chunk to the socket without a Buffer each; what is left
      // (a frame cut by the chunk's end) goes through the decoder.
      const sent = port.sendFramed(chunk, 0, chunk.length);
      if (sent) {
        this.bToA += sent.payload;
        if (sent.bytes === chunk.length || port.destroyed) return;
        chunk = chunk.subarray(sent.bytes);
      }
    }
    let dgs: Buffer[];
    try {
      dgs = this.#decoder.push(chunk);
    } catch (err) {
      this.#error ??= err as Error;
      this.#settle();
      return;
    }
    for (const d of dgs) {
      if (port.destroyed) return;
      this.bToA += d.length;
      port.sendDatagram(d);
    }
  };

  readonly #onDatagram = (dg: Buffer): void => {
    if (this.#settled) return;
    const len = dg.length;
    if (len > MAX_DATAGRAM_BYTES) return; // cannot be framed; UDP itself tops out at 65507
    if (this.#waitingSince !== 0 && this.#queued >= this.#port.queueLimit) {
      this.#port.dropped();
      return;
    }
    const need = DATAGRAM_HEADER_LEN + len;
    let buf: Buffer;
    let at: number;
    if (need > SLAB_BYTES / 4) {
      buf = Buffer.allocUnsafe(need);
      at = 0;
    } else {
      if (need > slab.length - slabOff) {
        slab = Buffer.allocUnsafe(SLAB_BYTES);
        slabOff = 0;
      }
      buf = slab;
      at = slabOff;
      slabOff += need;
    }
    buf[at] = len >>> 8;
    buf[at + 1] = len & 0xff;
    dg.copy(buf, at + DATAGRAM_HEADER_LEN);
    this.aToB += len;
    this.#queued++;
    const n = this.#bufs.length;
    if (n > 0 && this.#bufs[n - 1] === buf && this.#ends[n - 1] === at) this.#ends[n - 1] = at + need;
    else {
      this.#bufs.push(buf);
      this.#starts.push(at);
      this.#ends.push(at + need);
    }
    if (!this.#flushScheduled && this.#waitingSince === 0) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  };

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    if (this.#waitingSince !== 0 || this.#bufs.length === 0) return;
    const turn = this.#queued - this.#queuedBefore;
    if (turn >= FULL_POLL && this.#deferred < MAX_DEFERRED_TURNS && this.#queued < this.#port.queueLimit) {
      // A full poll's worth came in this turn: more are likely waiting in the socket. They
      // are read in the next turn and leave with these, in one write instead of two.
      this.#deferred++;
      this.#queuedBefore = this.#queued;
      this.#flushScheduled = true;
      setImmediate(this.#flush);
      return;
    }
    this.#writeQueued();
  };

  /** Writes what is queued; waits for 'drain' when the stream takes no more. */
  #writeQueued(): void {
    const stream = this.#stream;
    const bufs = this.#bufs;
    const n = bufs.length;
    if (n === 0 || stream.destroyed || stream.writableEnded) return;
    let ok = true;
    if (n > 1) stream.cork();
    for (let i = 0; i < n; i++) ok = stream.write(bufs[i]!.subarray(this.#starts[i], this.#ends[i])) && ok;
    if (n > 1) stream.uncork();
    bufs.length = 0;
    this.#starts.length = 0;
    this.#ends.length = 0;
    this.#queued = 0;
    this.#queuedBefore = 0;
    this.#deferred = 0;
    if (!ok) {
      this.#waitingSince = Date.now();
      stream.once('drain', this.#onDrain);
      if (this.#sendTimeoutMs > 0 && !this.#sendTimer) this.#armSendTimer(this.#sendTimeoutMs);
    }
  }

  readonly #onDrain = (): void => {
    this.#waitingSince = 0;
    if (!this.#settled) this.#flush();
  };

  #armSendTimer(ms: number): void {
    this.#sendTimer = setTimeout(this.#checkSend, ms);
    this.#sendTimer.unref?.();
  }

  readonly #checkSend = (): void => {
    this.#sendTimer = undefined;
    if (this.#settled || this.#waitingSince === 0) return;
    const left = this.#waitingSince + this.#sendTimeoutMs - Date.now();
    if (left > 0) {
      this.#armSendTimer(left);
      return;
    }
    this.#error ??= new SendTimeoutError('b', `send timeout: the far side took no bytes for ${this.#sendTimeoutMs} ms`);
    this.#settle();
  };

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#sendTimer) clearTimeout(this.#sendTimer);
    const stream = this.#stream;
    const port = this.#port;
    stream.off('data', this.#onStreamData);
    stream.off('drain', this.#onDrain);
    destroy(port);
    if (this.#error) destroy(stream);
    else if (!stream.destroyed) {
      // What the port sent before it went away still leaves, then the stream goes.
      this.#waitingSince = 0;
      this.#writeQueued();
      if (!stream.writableEnded) stream.end();
      if (stream.writableFinished) destroy(stream);
      else {
        const t = setTimeout(() => destroy(stream), DEFAULTS.halfCloseReadTimeoutMs);
        t.unref?.();
        stream.once('finish', () => {
          clearTimeout(t);
          destroy(stream);
        });
        stream.once('close', () => clearTimeout(t));
      }
    }
    const result: RelayResult = { aToB: this.aToB, bToA: this.bToA };
    if (this.#error) result.error = this.#error;
    this.#done(result);
  }
}

/**
 * Relays datagrams between two datagram sockets (a UDP listener's session and a dialed UDP
 * socket: port forwarding without a chain), each datagram handed straight to the other
 * side's send. UDP has no backpressure, so there is nothing to wait for; either side closing
 * or failing ends both. `done` gets the payload bytes each way and the first error.
 */
export function relayDatagramPorts(a: DatagramPort, b: DatagramPort, done: (r: RelayResult) => void): void {
  const r: RelayResult = { aToB: 0, bToA: 0 };
  let settled = false;
  const settle = (err?: Error): void => {
    if (settled) return;
    settled = true;
    if (err) r.error = err;
    destroy(a);
    destroy(b);
    done(r);
  };
  const onError = (err: Error): void => settle(err);
  const onClose = (): void => settle();
  for (const s of [a, b]) {
    s.removeListener('error', errorsBeforeRelay);
    s.on('error', onError);
    s.once('close', onClose);
  }
  if (a.destroyed || b.destroyed) {
    process.nextTick(onClose);
    return;
  }
  b.attachSink((d) => {
    if (settled) return;
    r.bToA += d.length;
    a.sendDatagram(d);
  });
  a.attachSink((d) => {
    if (settled) return;
    r.aToB += d.length;
    b.sendDatagram(d);
  });
}
