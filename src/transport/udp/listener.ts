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
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Conn, ListenerOptions, StreamListener } from '../../core/transport';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { DEFAULTS } from '../../core/config';
import { drainQueued, type DatagramPort } from '../../io/datagram';

/** Kernel receive/send buffer asked for on UDP sockets (bytes). */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Datagrams waiting to be sent on a UDP socket, beyond which more are dropped (UDP has no backpressure). */
export const UDP_SEND_QUEUE_LIMIT = 1024;

export interface UdpSessionOptions {
  keepalive: boolean;
  ttlMs: number;
  readQueueSize: number;
  readBufferBytes: number;
}

export function udpSessionOptions(md: ListenerOptions['metadata']): UdpSessionOptions {
  return {
    keepalive: md.getBool('keepalive') ?? false,
    ttlMs: md.getDurationMs('ttl', 'keepalive.ttl') || DEFAULTS.udpTtlMs,
    readQueueSize: md.getInt('readQueueSize', 'recvQueueSize') || DEFAULTS.udpReadQueueSize,
    readBufferBytes: md.getInt('readBufferSize', 'udp.bufferSize', 'bufferSize') || 65535,
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

  constructor(
    send: (buf: Buffer, cb: (err?: Error | null) => void) => void,
    sendNow: (buf: Buffer) => void,
    opts: UdpSessionOptions,
    logger: Logger,
  ) {
    super({ objectMode: true, allowHalfOpen: false, highWaterMark: opts.readQueueSize });
    this.#send = send;
    this.#sendNow = sendNow;
    this.#opts = opts;
    this.#logger = logger;
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
    this.push(data);
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

/**
 * Replies go to the address a datagram came from, always an IP literal: it is answered at
 * once, where dns.lookup would answer it a tick later, once per datagram sent.
 */
function literalLookup(
  address: string,
  family: number | dns.LookupOneOptions,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const f = isIP(address);
  if (f !== 0) cb(null, address, f);
  else if (typeof family === 'number') dns.lookup(address, family, cb);
  else dns.lookup(address, family, cb);
}

export function createUdpListener(opts: ListenerOptions): StreamListener {
  const { host, port } = splitHostPort(opts.addr);
  const sessOpts = udpSessionOptions(opts.metadata);
  const backlog = opts.metadata.getInt('backlog') || DEFAULTS.udpBacklog;
  const type = isIP(host) === 4 ? 'udp4' : 'udp6';
  // Large kernel buffers absorb bursts while the tunnel catches up (capped by net.core.rmem_max).
  const socket = dgram.createSocket({
    type,
    reuseAddr: false,
    recvBufferSize: UDP_SOCKET_BUFFER_BYTES,
    sendBufferSize: UDP_SOCKET_BUFFER_BYTES,
    lookup: literalLookup,
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
      return new Promise((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port, address: host === '' ? (type === 'udp6' ? '::' : '0.0.0.0') : host }, () => {
          socket.off('error', reject);
          socket.on('error', (err) => opts.logger.error({ err }, `udp listener: ${err.message}`));
          const a = socket.address();
          bound = joinHostPort(a.address, a.port);
          ttlTimer = setInterval(checkIdle, sessOpts.ttlMs);
          ttlTimer.unref();
          socket.on('message', (msg, rinfo) => {
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
              const session = new UdpSession(
                (buf, cb) => {
                  if (closed) return cb();
                  socket.send(buf, rinfo.port, rinfo.address, (err) => cb(err));
                },
                (buf) => {
                  // No callback: a failed send comes as the socket's 'error'. UDP has no
                  // backpressure, so a send queue the kernel does not empty drops instead.
                  if (!closed && socket.getSendQueueCount() < UDP_SEND_QUEUE_LIMIT) socket.send(buf, rinfo.port, rinfo.address);
                },
                sessOpts,
                opts.logger,
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
          resolve();
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
      await new Promise<void>((r) => {
        try {
          socket.close(() => r());
        } catch {
          r();
        }
      });
    },
  };
}
