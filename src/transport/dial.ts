/**
 * Direct dials to targets (the last step of a forward): TCP with TCP_NODELAY and half-close
 * support, and "connected" UDP sockets wrapped as objectMode Duplexes (one chunk = one datagram).
 */
import net from 'node:net';
import dns from 'node:dns/promises';
import { Duplex } from 'node:stream';
import { splitHostPort } from '../core/addr';
import { BurrowError } from '../core/errors';
import { dialHost, dialTcp as transportDialTcp } from './tcp/socket';
import { UDP_SOCKET_BUFFER_BYTES } from './udp/listener';
import { createUdpSocket, type FramedSent, type UdpSocket } from './udp/socket';
import { MAX_DATAGRAM_BYTES } from '../protocol/udp-frame';
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

/** Datagrams a dialed socket reads per system call with native I/O. */
const DIAL_BATCH = 32;

/** A connected UDP socket as an objectMode Duplex. Ends when destroyed. */
export class UdpDialConn extends Duplex implements DatagramPort {
  readonly #socket: UdpSocket;
  #sink: ((datagram: Buffer) => void) | undefined;
  readonly queueLimit = DEFAULTS.udpReadQueueSize;

  constructor(socket: UdpSocket) {
    super({ objectMode: true, allowHalfOpen: false, highWaterMark: 128 });
    this.#socket = socket;
    const transient = socket.transient;
    socket.onMessage((msg) => {
      if (this.#sink) this.#sink(msg);
      // Drop when the reader is far behind: UDP has no backpressure.
      else if (this.readableLength < 1024) this.push(transient ? Buffer.from(msg) : msg);
    });
    socket.onError((err) => this.destroy(err));
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
    this.#socket.send(datagram);
  }

  sendFramed(buf: Buffer, start: number, end: number): FramedSent | undefined {
    return this.#socket.sendFramed?.(buf, start, end, MAX_DATAGRAM_BYTES);
  }

  dropped(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // UDP has no backpressure to wait for, and a send that fails comes as the socket's 'error'
    // (which destroys this stream).
    this.#socket.send(chunk);
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    this.destroy();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.#socket.close();
    if (!this.readableEnded) this.push(null);
    cb(err);
  }
}

export async function dialUdp(addr: string): Promise<UdpDialConn> {
  let hp;
  try {
    hp = splitHostPort(addr);
  } catch (err) {
    throw new BurrowError('BURROW_ERR_DIAL', `dial ${addr}: ${(err as Error).message}`);
  }
  if (hp.port === 0) throw new BurrowError('BURROW_ERR_DIAL', `dial ${addr}/udp: missing port`);
  let host = dialHost(hp.host);
  try {
    if (net.isIP(host) === 0) host = (await dns.lookup(host, { family: 4 })).address;
    const s = createUdpSocket({
      ipv6: net.isIP(host) === 6,
      recvBufferSize: UDP_SOCKET_BUFFER_BYTES,
      sendBufferSize: UDP_SOCKET_BUFFER_BYTES,
      batch: DIAL_BATCH,
    });
    try {
      await s.connect(host, hp.port);
    } catch (err) {
      s.close();
      throw err;
    }
    return new UdpDialConn(s);
  } catch (err) {
    throw new BurrowError('BURROW_ERR_DIAL', `dial ${addr}/udp: ${(err as Error).message}`, { cause: err });
  }
}
