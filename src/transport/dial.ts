/**
 * Direct dials to targets (the last step of a forward): TCP with TCP_NODELAY and half-close
 * support, and "connected" UDP sockets wrapped as objectMode Duplexes (one chunk = one datagram).
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { Duplex } from 'node:stream';
import { splitHostPort } from '../core/addr';
import { BurrowError } from '../core/errors';
import { dialHost, dialTcp as transportDialTcp } from './tcp/socket';
import { UDP_SEND_QUEUE_LIMIT, UDP_SOCKET_BUFFER_BYTES } from './udp/listener';
import { DEFAULTS } from '../core/config';
import { drainQueued, type DatagramPort } from '../io/datagram';

/** A TCP dial to a forward target; a target without a port is refused before dialing. */
export function dialTcp(addr: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<net.Socket> {
  try {
    if (splitHostPort(addr).port === 0) {
      return Promise.reject(new BurrowError('BURROW_ERR_DIAL', `dial ${addr}: missing port`));
    }
  } catch (err) {
    return Promise.reject(new BurrowError('BURROW_ERR_DIAL', `dial ${addr}: ${(err as Error).message}`));
  }
  return transportDialTcp(addr, opts);
}

/** A connected UDP socket as an objectMode Duplex. Ends when destroyed. */
export class UdpDialConn extends Duplex implements DatagramPort {
  readonly #socket: dgram.Socket;
  #sink: ((datagram: Buffer) => void) | undefined;
  readonly queueLimit = DEFAULTS.udpReadQueueSize;

  constructor(socket: dgram.Socket) {
    super({ objectMode: true, allowHalfOpen: false, highWaterMark: 128 });
    this.#socket = socket;
    socket.on('message', (msg) => {
      if (this.#sink) this.#sink(msg);
      // Drop when the reader is far behind: UDP has no backpressure.
      else if (this.readableLength < 1024) this.push(msg);
    });
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.push(null));
  }

  get localAddress(): string {
    try {
      const a = this.#socket.address();
      return `${a.address}:${a.port}`;
    } catch {
      return '';
    }
  }

  override _read(): void {}

  attachSink(sink: (datagram: Buffer) => void): void {
    drainQueued(this, sink);
    this.#sink = sink;
  }

  sendDatagram(datagram: Buffer): void {
    if (this.#socket.getSendQueueCount() < UDP_SEND_QUEUE_LIMIT) this.#socket.send(datagram);
  }

  dropped(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // No callback: UDP has no backpressure to wait for, and a send that fails comes as the
    // socket's 'error' (which destroys this stream). Node then needs no completion per datagram.
    this.#socket.send(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    this.destroy();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    try {
      this.#socket.close();
    } catch {
      /* already closed */
    }
    cb(err);
  }
}

export function dialUdp(addr: string): Promise<UdpDialConn> {
  let hp;
  try {
    hp = splitHostPort(addr);
  } catch (err) {
    return Promise.reject(new BurrowError('BURROW_ERR_DIAL', `dial ${addr}: ${(err as Error).message}`));
  }
  if (hp.port === 0) return Promise.reject(new BurrowError('BURROW_ERR_DIAL', `dial ${addr}/udp: missing port`));
  const host = dialHost(hp.host);
  const type = net.isIP(host) === 6 ? 'udp6' : 'udp4';
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type, recvBufferSize: UDP_SOCKET_BUFFER_BYTES, sendBufferSize: UDP_SOCKET_BUFFER_BYTES });
    s.once('error', (err) => {
      try {
        s.close();
      } catch {
        /* ignore */
      }
      reject(new BurrowError('BURROW_ERR_DIAL', `dial ${addr}/udp: ${err.message}`, { cause: err }));
    });
    s.connect(hp.port, host, () => {
      s.removeAllListeners('error');
      resolve(new UdpDialConn(s));
    });
  });
}
