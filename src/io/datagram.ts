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
import { encodeDatagram, encodeDatagramHeader, UdpFrameDecoder } from '../protocol/udp-frame';

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
