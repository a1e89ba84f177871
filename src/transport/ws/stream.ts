/**
 * A WebSocket as one byte stream, the way gost's ws conn behaves (protocol.md §8.2):
 * - every write() goes out as one binary message (masked by the client side, as RFC 6455
 *   requires), and so does a writev() batch, cut into messages of at most
 *   WS_MAX_SEND_BYTES;
 * - received messages, binary or text, are concatenated into the readable side; message
 *   boundaries carry no meaning;
 * - a close frame or a closed socket is EOF. A WebSocket has no half-close, so ending the
 *   writable side sends a close frame, which ends the connection both ways;
 * - destroy() drops the TCP connection at once (no close handshake).
 *
 * Backpressure: a message push that fills the readable buffer pauses the WebSocket (and so its
 * socket) until the consumer reads; a write completes only when the socket has taken it.
 *
 * Masking (client → server) and unmasking run in `bufferutil` when it is installed (a
 * dependency of burrow, picked up by ws); the plain-JS fallback is about ten times slower.
 */
import { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { BurrowError } from '../../core/errors';

/** Readable/writable buffer of a WsStream before backpressure applies. */
export const WS_STREAM_HIGH_WATER_MARK_BYTES = 256 * 1024;

/**
 * Largest message accepted from a peer; a larger one closes that connection (close code 1009).
 * ws buffers a whole message before delivering it, so this bounds the memory one connection
 * can make us hold. gost writes one smux frame (at most 65,535 + 8 bytes) or one copy buffer
 * (32 KiB) per message (gorilla's WriteMessage per Write); twice the frame leaves room for a
 * peer that batches a little, without the 64 MiB per connection a flood of open connections
 * could otherwise pin.
 */
export const WS_MAX_MESSAGE_BYTES = 128 * 1024;

/** Largest message we send: what gost itself sends at most (one full smux frame's payload). */
export const WS_MAX_SEND_BYTES = 64 * 1024;

function closedError(): Error {
  return Object.assign(new Error('websocket is closed'), { code: 'EPIPE' });
}

export class WsStream extends Duplex {
  readonly #ws: WebSocket;
  #keepaliveTimer: NodeJS.Timeout | undefined;

  /** Wraps an open WebSocket. Call synchronously from the 'open' / upgrade callback. */
  constructor(ws: WebSocket) {
    super({
      allowHalfOpen: false,
      readableHighWaterMark: WS_STREAM_HIGH_WATER_MARK_BYTES,
      writableHighWaterMark: WS_STREAM_HIGH_WATER_MARK_BYTES,
    });
    this.#ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => {
      if (!this.push(data)) ws.pause();
    });
    ws.on('close', () => {
      this.#stopKeepalive();
      if (!this.destroyed) this.push(null);
    });
    ws.on('error', (err: Error) => this.destroy(err));
  }

  /** The underlying WebSocket (for tests and diagnostics). */
  get webSocket(): WebSocket {
    return this.#ws;
  }

  override _read(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#ws.readyState !== WebSocket.OPEN) {
      cb(closedError());
      return;
    }
    this.#send(chunk, cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (this.#ws.readyState !== WebSocket.OPEN) {
      cb(closedError());
      return;
    }
    // One message per batch: a multiplexer writes a frame header and its payload as two
    // chunks, and they belong in one message (gost sends one message per frame; its reader,
    // like ours, treats messages as one byte stream, so several frames per message are fine).
    const data = chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk));
    this.#send(data, cb);
  }

  /** Sends `data` as messages of at most WS_MAX_SEND_BYTES; `cb` once the last one is taken. */
  #send(data: Buffer, cb: (err?: Error | null) => void): void {
    let at = 0;
    while (data.length - at > WS_MAX_SEND_BYTES) {
      // A failed send also surfaces as the socket's 'error', which destroys this stream.
      this.#ws.send(data.subarray(at, at + WS_MAX_SEND_BYTES), { binary: true });
      at += WS_MAX_SEND_BYTES;
    }
    this.#ws.send(at === 0 ? data : data.subarray(at), { binary: true }, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#stopKeepalive();
    if (this.#ws.readyState !== WebSocket.CLOSED) this.#ws.terminate();
    cb(err);
  }

  /**
   * Sends a ping every `intervalMs` and destroys the stream with BURROW_ERR_TIMEOUT when no
   * pong has arrived for twice that long (gost's ws dialer `keepalive`).
   */
  startKeepalive(intervalMs: number): void {
    if (intervalMs <= 0 || this.#keepaliveTimer) return;
    let lastPong = Date.now();
    this.#ws.on('pong', () => {
      lastPong = Date.now();
    });
    this.#keepaliveTimer = setInterval(() => {
      if (Date.now() - lastPong > 2 * intervalMs) {
        this.destroy(new BurrowError('BURROW_ERR_TIMEOUT', `websocket keepalive: no pong for ${2 * intervalMs}ms`));
        return;
      }
      if (this.#ws.readyState === WebSocket.OPEN) this.#ws.ping();
    }, intervalMs);
    this.#keepaliveTimer.unref();
  }

  #stopKeepalive(): void {
    if (this.#keepaliveTimer) clearInterval(this.#keepaliveTimer);
    this.#keepaliveTimer = undefined;
  }
}
