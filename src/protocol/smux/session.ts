/**
 * An smux session over any Node Duplex (spec/protocol.md §5): a TCP or TLS socket, a WebSocket
 * stream, or a stream of another session (smux inside smux, as mws/mtls do).
 *
 * Ownership: the session owns `conn` from the constructor on. It destroys `conn` when it
 * closes, and it closes when `conn` ends, errors or closes. Every stream dies with it.
 *
 * Parts, as smux names them:
 * - receive: `conn` 'data' → FrameDecoder → handleSyn/Fin/Psh/Upd/Nop. Version 1 has no
 *   windows: receiving is paused while the bytes queued in streams exceed `maxReceiveBuffer`
 *   (smux's token bucket). Version 2 bounds every stream by its window instead (a peer that
 *   sends past it loses that stream), and never pauses the whole session for one stream's slow
 *   reader: smux's shared bucket lets a few unread streams stall every other stream of the
 *   connection (head-of-line blocking), which is the failure a tunnel must not have.
 *   Windows start at the base window (gost's 1 MiB) and grow for streams that keep reading;
 *   the growth of all streams together comes from `maxReceiveBuffer` less one base window,
 *   so v2 memory stays within streams × base window + that budget.
 * - send (sender.ts): one corked batch per event-loop turn, control frames first, then data
 *   frames round-robin over the streams, held while `conn` wants a 'drain'.
 * - keepalive: a NOP every interval; the session dies if a whole timeout window passed with no
 *   frame received (unless it is our own receive pause that keeps the peer quiet).
 * - send timeout: the session dies if `conn` took no bytes for `sendTimeoutMs` while frames
 *   waited (a peer that keeps sending, NOPs included, but stopped reading).
 * - 'violation' (err, limit): the peer broke the protocol on one stream (sent past its window, claimed
 *   more consumed than sent) or opened a stream past `maxStreams`; that stream is closed and the
 *   session goes on. For the owner to log.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { BurrowError } from '../../core/errors';
import { baseStreamWindow, resolveSmuxConfig, type SmuxConfig } from './config';
import { FrameDecoder } from './decoder';
import { CMD_FIN, CMD_NOP, CMD_PSH, CMD_SYN, CMD_UPD, encodeFrame } from './frame';
import { Sender } from './sender';
import { Stream, kData, kFin, kSessionDied, kUpdate, type StreamHost } from './stream';

export interface SessionOptions {
  /**
   * smux client role: opens odd stream ids 3, 5, 7 … (the gost tunnel *server* is the smux
   * client on tunnel connections). Server role opens 2, 4, 6 …
   */
  client: boolean;
  /** Overrides of DEFAULT_SMUX_CONFIG; verified (ConfigError) in the constructor. */
  config?: Partial<SmuxConfig>;
}

/** How long a graceful close() waits for `conn` to flush before destroying it (ms). */
const CLOSE_FLUSH_TIMEOUT_MS = 5_000;
const MAX_STREAM_ID = 0xffffffff;

/** The session's events and their arguments. */
interface SessionEvents {
  stream: [stream: Stream];
  close: [err?: Error];
  violation: [err: Error, limit: string];
  /** EventEmitter's own, used to hand over the backlog when a 'stream' listener comes. */
  newListener: [event: string | symbol, listener: (...args: never[]) => void];
}

/**
 * Events: 'stream' (an incoming stream; held in a backlog of `acceptBacklog` while nobody
 * listens), 'close' (err?) exactly once; no 'error' event.
 */
export class Session extends EventEmitter<SessionEvents> {
  readonly #conn: Duplex;
  readonly #config: Readonly<SmuxConfig>;
  readonly #decoder: FrameDecoder;
  readonly #streams = new Map<number, Stream>();
  readonly #host: StreamHost;
  #nextId: number;
  #backlog: Stream[] = [];

  readonly #sender: Sender;
  #bytesReceived = 0;

  // receive budget
  #buffered = 0;
  #paused = false;
  /** What streams' receive windows hold above the base window, together (version 2). */
  #windowGrowth = 0;

  // keepalive
  #frameSeen = false;
  /** When the silence check last saw that frames had arrived (ms). */
  #aliveAt = Date.now();
  #pingTimer: NodeJS.Timeout | undefined;
  #deadTimer: NodeJS.Timeout | undefined;
  #nop: Buffer;

  #closed = false;
  #closeError: Error | undefined;

  /** @throws ConfigError for an invalid `config` */
  constructor(conn: Duplex, opts: SessionOptions) {
    super();
    this.#config = Object.freeze(resolveSmuxConfig(opts.config));
    this.#conn = conn;
    this.#nextId = opts.client ? 1 : 0;
    this.#nop = encodeFrame(this.#config.version, CMD_NOP, 0);
    this.#decoder = new FrameDecoder(this.#config.version, this.#onFrame, { splitPayloads: true });
    this.#sender = new Sender(conn, this.#config, (err) => this.#teardown(err, false));
    this.#host = {
      config: this.#config,
      writeControl: (frame) => this.#writeControl(frame),
      wantSend: (s) => this.#sender.wantSend(s),
      charge: (n) => {
        this.#buffered += n;
      },
      release: (n) => this.#release(n),
      growWindow: (current) => this.#growWindow(current),
      forget: (s) => this.#forget(s),
      violation: (err, limit) => this.emit('violation', err, limit),
    };

    conn.on('data', this.#onConnData);
    conn.on('end', this.#onConnEnd);
    conn.on('error', this.#onConnError);
    conn.on('close', this.#onConnClose);
    this.on('newListener', this.#onNewListener);

    if (!this.#config.keepAliveDisabled) {
      this.#pingTimer = setInterval(() => this.#writeControl(this.#nop), this.#config.keepAliveIntervalMs);
      this.#pingTimer.unref();
      // Checked several times per timeout window, so a silent peer is dropped about
      // keepAliveTimeout after its last frame (smux checks once per window: up to twice that).
      const tick = Math.max(1, Math.min(this.#config.keepAliveIntervalMs, Math.floor(this.#config.keepAliveTimeoutMs / 10)));
      this.#deadTimer = setInterval(this.#checkAlive, tick);
      this.#deadTimer.unref();
    }
    if (conn.destroyed || conn.readableEnded) {
      process.nextTick(() => this.#teardown(new BurrowError('BURROW_ERR_CLOSED', 'smux: connection already closed'), false));
    }
  }

  /** The resolved, verified settings. */
  get config(): Readonly<SmuxConfig> {
    return this.#config;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  /** Open streams, including accepted ones not yet taken from the backlog. */
  get numStreams(): number {
    return this.#streams.size;
  }

  /** Received bytes queued in streams, not yet read (the receive budget in use). */
  get receiveBufferedBytes(): number {
    return this.#buffered;
  }

  /** The error the session died with, if any. */
  /** Payload bytes received in PSH frames (stream data from the peer). */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** Payload bytes sent in PSH frames (stream data to the peer). */
  get bytesSent(): number {
    return this.#sender.bytesSent;
  }

  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /**
   * Opens a stream and writes its SYN now.
   * @throws BurrowError 'BURROW_ERR_CLOSED' when the session is closed, 'BURROW_ERR_LIMIT'
   *   at `maxStreams` open streams or when stream ids are exhausted
   */
  openStream(): Stream {
    if (this.#closed) throw new BurrowError('BURROW_ERR_CLOSED', 'smux: session closed');
    if (this.#streams.size >= this.#config.maxStreams) {
      throw new BurrowError('BURROW_ERR_LIMIT', `smux: ${this.#config.maxStreams} streams already open`);
    }
    let id = this.#nextId;
    do {
      id += 2;
      if (id > MAX_STREAM_ID) {
        throw new BurrowError('BURROW_ERR_LIMIT', 'smux: stream ids exhausted, start a new session');
      }
    } while (this.#streams.has(id));
    this.#nextId = id;
    const stream = new Stream(id, this.#host);
    this.#streams.set(id, stream);
    this.#writeControl(encodeFrame(this.#config.version, CMD_SYN, id));
    return stream;
  }

  /**
   * Closes the session: every stream is destroyed with BURROW_ERR_CLOSED, what is already
   * queued on `conn` is flushed, then `conn` is destroyed. Idempotent.
   */
  close(): void {
    this.#teardown(undefined, true);
  }

  /**
   * Closes at once. `err` (if any) is the 'close' event's argument and the `cause` of the
   * BURROW_ERR_CLOSED every open stream is destroyed with. Idempotent.
   */
  destroy(err?: Error): void {
    this.#teardown(err, false);
  }

  // ---- receive ---------------------------------------------------------------------------

  #onConnData = (chunk: Buffer): void => {
    if (this.#closed) return;
    try {
      this.#decoder.push(chunk);
    } catch (err) {
      // Bad bytes from the peer end the session. Anything else was thrown by a listener we
      // called (a 'stream' or 'data' handler): the rest of the chunk is lost, so the session
      // cannot go on either, and the error is not ours to swallow.
      this.#teardown(err as Error, false);
      if (err !== this.#decoder.failure) throw err;
      return;
    }
    if (this.#config.version === 1 && !this.#paused && this.#buffered >= this.#config.maxReceiveBuffer && !this.#closed) {
      this.#paused = true;
      this.#conn.pause();
    }
  };

  #onFrame = (cmd: number, sid: number, data: Buffer): void => {
    this.#frameSeen = true;
    switch (cmd) {
      case CMD_PSH:
        this.#handlePsh(sid, data);
        break;
      case CMD_UPD:
        this.#handleUpd(sid, data);
        break;
      case CMD_SYN:
        this.#handleSyn(sid);
        break;
      case CMD_FIN:
        this.#handleFin(sid);
        break;
      case CMD_NOP:
        break;
    }
    if (this.#closed) this.#decoder.halt();
  };

  #handlePsh(sid: number, data: Buffer): void {
    if (data.length === 0) return;
    this.#bytesReceived += data.length;
    // Unknown or already closed stream: the payload is dropped (smux does the same).
    this.#streams.get(sid)?.[kData](data);
  }

  #handleUpd(sid: number, data: Buffer): void {
    this.#streams.get(sid)?.[kUpdate](data.readUInt32LE(0), data.readUInt32LE(4));
  }

  #handleSyn(sid: number): void {
    if (this.#streams.has(sid)) return;
    const listening = this.listenerCount('stream') > 0;
    if (this.#streams.size >= this.#config.maxStreams || (!listening && this.#backlog.length >= this.#config.acceptBacklog)) {
      // Refused: the peer sees EOF at once. Later frames for the id are dropped as unknown.
      this.#writeControl(encodeFrame(this.#config.version, CMD_FIN, sid));
      const full = this.#streams.size >= this.#config.maxStreams;
      this.emit(
        'violation',
        new BurrowError(
          'BURROW_ERR_LIMIT',
          full
            ? `smux: stream ${sid} refused: ${this.#config.maxStreams} streams open (mux.maxStreams)`
            : `smux: stream ${sid} refused: ${this.#config.acceptBacklog} streams waiting to be accepted`,
        ),
        full ? 'mux.maxStreams' : 'smux protocol',
      );
      return;
    }
    const stream = new Stream(sid, this.#host);
    this.#streams.set(sid, stream);
    if (listening) this.emit('stream', stream);
    else this.#backlog.push(stream);
  }

  #handleFin(sid: number): void {
    this.#streams.get(sid)?.[kFin]();
  }

  #onNewListener = (event: string | symbol): void => {
    if (event === 'stream' && this.#backlog.length > 0) process.nextTick(this.#drainBacklog);
  };

  #drainBacklog = (): void => {
    while (this.#backlog.length > 0 && !this.#closed && this.listenerCount('stream') > 0) {
      const s = this.#backlog.shift()!;
      if (!s.destroyed) this.emit('stream', s);
    }
  };

  #release(n: number): void {
    this.#buffered -= n;
    if (this.#paused && this.#buffered < this.#config.maxReceiveBuffer && !this.#closed) {
      this.#paused = false;
      this.#conn.resume();
    }
  }

  #growWindow(current: number): number {
    const c = this.#config;
    const room = c.maxReceiveBuffer - baseStreamWindow(c) - this.#windowGrowth;
    const add = Math.max(0, Math.min(current, c.maxStreamBuffer - current, room));
    this.#windowGrowth += add;
    return current + add;
  }

  #checkAlive = (): void => {
    const now = Date.now();
    // A peer kept quiet by our own receive pause is not dead.
    if (this.#frameSeen || this.#buffered >= this.#config.maxReceiveBuffer) {
      this.#frameSeen = false;
      this.#aliveAt = now;
      return;
    }
    if (now - this.#aliveAt < this.#config.keepAliveTimeoutMs) return;
    this.#teardown(
      new BurrowError('BURROW_ERR_TIMEOUT', `smux: no frame received for ${this.#config.keepAliveTimeoutMs} ms`),
      false,
    );
  };

  #writeControl(frame: Buffer): void {
    if (!this.#closed) this.#sender.writeControl(frame);
  }

  // ---- lifetime --------------------------------------------------------------------------

  #forget(s: Stream): void {
    if (this.#streams.get(s.id) !== s) return;
    this.#streams.delete(s.id);
    this.#windowGrowth -= s.receiveWindow - baseStreamWindow(this.#config);
  }

  #onConnEnd = (): void => {
    this.#teardown(new BurrowError('BURROW_ERR_CLOSED', 'smux: connection closed by peer'), false);
  };

  #onConnError = (err: Error): void => {
    this.#teardown(err, false);
  };

  #onConnClose = (): void => {
    this.#teardown(new BurrowError('BURROW_ERR_CLOSED', 'smux: connection closed'), false);
  };

  #teardown(err: Error | undefined, graceful: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeError = err;
    clearInterval(this.#pingTimer);
    clearInterval(this.#deadTimer);
    this.#decoder.halt();
    const control = this.#sender.stop();

    const conn = this.#conn;
    conn.off('data', this.#onConnData);
    // 'error' stays handled: the conn may still report one while it goes away.
    if (graceful && !conn.destroyed && !conn.writableEnded) {
      // Control frames still queued (a FIN of a stream ended just before) go out first.
      for (const frame of control) conn.write(frame);
      const timer = setTimeout(() => conn.destroy(), CLOSE_FLUSH_TIMEOUT_MS);
      timer.unref();
      conn.end(() => {
        clearTimeout(timer);
        conn.destroy();
      });
    } else {
      conn.destroy();
    }

    // Streams always see BURROW_ERR_CLOSED ("peer gone" to the relay); the reason is its cause.
    const streamErr =
      err instanceof BurrowError && err.code === 'BURROW_ERR_CLOSED'
        ? err
        : new BurrowError('BURROW_ERR_CLOSED', err ? `smux: session closed: ${err.message}` : 'smux: session closed', {
            cause: err,
          });
    const backlog = this.#backlog;
    this.#backlog = [];
    for (const s of backlog) s[kSessionDied]();
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    for (const s of streams) s[kSessionDied](streamErr);
    this.#buffered = 0;
    this.#windowGrowth = 0;
    process.nextTick(() => this.emit('close', err));
  }
}
