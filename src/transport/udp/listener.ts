/**
 * UDP listener: one datagram socket demultiplexed into sessions by client ip:port, as gost's
 * udp listener does (behavior.md §7.2). Each session is a `Conn` with `datagram: true` whose
 * stream is an objectMode Duplex: every chunk read is one datagram from the client, every chunk
 * written is one datagram sent back to it.
 *
 * - keepalive=false (default): the session ends right after the first datagram is sent back.
 * - ttl (default 5 s): a session with no traffic either way between two checks is closed.
 * - readQueueSize (default 128): datagrams queued per session beyond it are dropped.
 * - readBufferSize: gost truncates datagrams to 4096 bytes by default; burrow reads whole
 *   datagrams (up to 65535) unless `readBufferSize` is set explicitly.
 * - backlog (default 128) bounds sessions not yet handed to the handler; beyond it new clients
 *   are dropped.
 */
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn, ListenerOptions, StreamListener } from '../../core/transport';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { parseOptions, type ParsedOptions } from '../../core/options/options';
import { UDP_LISTENER_OPTIONS } from '../../core/options/transport';
import { drainQueued, type DatagramPort } from '../../io/datagram';
import { createUdpSocket, udpIoLogLine, type FramedSent, type UdpPeer } from './socket';
import { MAX_DATAGRAM_BYTES } from '../../protocol/udp-frame';

/** Kernel receive/send buffer asked for on UDP sockets (bytes; capped by net.core.rmem_max/wmem_max). */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Datagrams a listener's socket reads per system call with native I/O. */
const LISTENER_BATCH = 64;

let announced = false;
/** Logs, once per process, which UDP I/O is in use (native batches or node:dgram). */
export function announceUdpIo(logger: Logger): void {
  if (announced) return;
  announced = true;
  logger.info(udpIoLogLine());
}

export interface UdpSessionOptions {
  keepalive: boolean;
  ttlMs: number;
  readQueueSize: number;
  readBufferBytes: number;
}

function udpSessionOptions(o: ParsedOptions<typeof UDP_LISTENER_OPTIONS>): UdpSessionOptions {
  return {
    keepalive: o.udpKeepalive,
    ttlMs: o.ttl,
    readQueueSize: o.readQueueSize,
    readBufferBytes: o.readBufferSize,
  };
}

class UdpSession extends Duplex implements DatagramPort {
  activeSinceCheck = true;
  #dropWarned = false;
  #sink: ((datagram: Buffer) => void) | undefined;
  readonly #send: (buf: Buffer, cb: (err?: Error | null) => void) => void;
  readonly #sendNow: (buf: Buffer) => void;
  readonly #opts: UdpSessionOptions;
  readonly #logger: Logger;
  /** Datagrams delivered are reused by the socket after delivery: a queued one is copied. */
  readonly #transient: boolean;

  constructor(
    send: (buf: Buffer, cb: (err?: Error | null) => void) => void,
    sendNow: (buf: Buffer) => void,
    opts: UdpSessionOptions,
    logger: Logger,
    transient: boolean,
    sendFramed: ((buf: Buffer, start: number, end: number) => FramedSent) | undefined,
  ) {
    super({ objectMode: true, allowHalfOpen: false, highWaterMark: opts.readQueueSize });
    this.#send = send;
    this.#sendNow = sendNow;
    this.#opts = opts;
    this.#logger = logger;
    this.#transient = transient;
    // Only a keepalive session sends every datagram it is given; one without sends one reply.
    if (sendFramed && opts.keepalive) this.#sendFramed = sendFramed;
  }

  readonly #sendFramed: ((buf: Buffer, start: number, end: number) => FramedSent) | undefined;

  sendFramed(buf: Buffer, start: number, end: number): FramedSent | undefined {
    if (!this.#sendFramed) return undefined;
    this.activeSinceCheck = true;
    return this.#sendFramed(buf, start, end);
  }

  deliver(datagram: Buffer): void {
    this.activeSinceCheck = true;
    const data = datagram.length > this.#opts.readBufferBytes ? datagram.subarray(0, this.#opts.readBufferBytes) : datagram;
    if (this.#sink) {
      this.#sink(data);
      return;
    }
    // objectMode: readableLength counts queued datagrams.
    if (this.readableLength >= this.#opts.readQueueSize) {
      this.dropped();
      return;
    }
    this.push(this.#transient ? Buffer.from(data) : data);
  }

  get queueLimit(): number {
    return this.#opts.readQueueSize;
  }

  dropped(): void {
    if (this.#dropWarned) return;
    this.#dropWarned = true;
    this.#logger.warn(`udp: read queue full (${this.#opts.readQueueSize}), dropping datagrams`);
  }

  attachSink(sink: (datagram: Buffer) => void): void {
    drainQueued(this, sink);
    this.#sink = sink;
  }

  sendDatagram(datagram: Buffer): void {
    this.activeSinceCheck = true;
    if (!this.#opts.keepalive) {
      if (this.#replied) return;
      this.#replied = true;
      this.#sendNow(datagram);
      this.destroy();
      return;
    }
    this.#sendNow(datagram);
  }

  override _read(): void {
    // Datagrams are pushed as they arrive; the count below mirrors what is still queued.
  }

  #replied = false;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.activeSinceCheck = true;
    if (!this.#opts.keepalive) {
      // gost closes a non-keepalive session right after the first reply: exactly one reply
      // reaches the client, later ones are dropped.
      if (this.#replied) {
        cb();
        return;
      }
      this.#replied = true;
      this.#send(chunk, (err) => {
        cb(err);
        this.destroy();
      });
      return;
    }
    this.#send(chunk, (err) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    this.destroy();
  }
}

export function createUdpListener(opts: ListenerOptions): StreamListener {
  const { host, port } = splitHostPort(opts.addr);
  const o = parseOptions(UDP_LISTENER_OPTIONS, opts.metadata);
  const sessOpts = udpSessionOptions(o);
  const backlog = o.backlog;
  const type = isIP(host) === 4 ? 'udp4' : 'udp6';
  // Large kernel buffers absorb bursts while the tunnel catches up (capped by net.core.rmem_max).
  const socket = createUdpSocket({
    ipv6: type === 'udp6',
    recvBufferSize: UDP_SOCKET_BUFFER_BYTES,
    sendBufferSize: UDP_SOCKET_BUFFER_BYTES,
    batch: LISTENER_BATCH,
  });
  const sessions = new Map<string, UdpSession>();
  let ttlTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let bound = '';
  /** The session of the latest datagram, and its client's address. */
  let last: UdpSession | undefined;
  let lastPort = 0;
  let lastAddress = '';

  const checkIdle = (): void => {
    for (const s of sessions.values()) {
      if (!s.activeSinceCheck) s.destroy();
      else s.activeSinceCheck = false;
    }
  };

  return {
    listen(onConn: (conn: Conn) => void): Promise<void> {
      announceUdpIo(opts.logger);
      return socket.bind(host === '' ? (type === 'udp6' ? '::' : '0.0.0.0') : host, port).then(() => {
          socket.onError((err) => opts.logger.error({ err }, `udp listener: ${err.message}`));
          const a = socket.address();
          bound = joinHostPort(a.address, a.port);
          ttlTimer = setInterval(checkIdle, sessOpts.ttlMs);
          ttlTimer.unref();
          socket.onMessage((msg, rinfo) => {
            // A burst comes from one client: its session is found without building its key.
            if (last && rinfo.port === lastPort && rinfo.address === lastAddress && !last.destroyed) {
              last.deliver(msg);
              return;
            }
            const key = `${rinfo.address}|${rinfo.port}`;
            const s = sessions.get(key);
            if (s) {
              last = s;
              lastPort = rinfo.port;
              lastAddress = rinfo.address;
            } else {
              if (closed) return;
              if (sessions.size >= backlog * 64) return; // hard cap on live sessions
              const remote = joinHostPort(rinfo.address, rinfo.port);
              const peer: UdpPeer = rinfo;
              const session = new UdpSession(
                (buf, cb) => {
                  if (!closed) socket.send(buf, peer);
                  cb();
                },
                (buf) => {
                  if (!closed) socket.send(buf, peer);
                },
                sessOpts,
                opts.logger,
                socket.transient,
                socket.sendFramed ? (buf, start, end) => socket.sendFramed!(buf, start, end, MAX_DATAGRAM_BYTES, peer) : undefined,
              );
              sessions.set(key, session);
              session.once('close', () => {
                if (sessions.get(key) === session) sessions.delete(key);
                if (last === session) last = undefined;
              });
              session.deliver(msg);
              onConn({ stream: session, local: bound, remote, datagram: true });
              return;
            }
            s.deliver(msg);
          });
        });
    },
    address: () => bound,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      if (ttlTimer) clearInterval(ttlTimer);
      for (const s of sessions.values()) s.destroy();
      sessions.clear();
      socket.close();
    },
  };
}
