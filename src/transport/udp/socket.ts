/**
 * burrow's UDP sockets: one small interface over two kinds of I/O.
 *
 * - native (Linux, when native/build/Release/burrow_udp.node was built at install): batches of
 *   datagrams per system call, recvmmsg(2) to read and sendmmsg(2) to write, and one JavaScript
 *   callback per batch read. See native/udp.c and docs/udp.md.
 * - dgram: node:dgram, a system call and a callback per datagram. Used when the addon is absent
 *   or failed to build, on other platforms, and when BURROW_UDP_NATIVE=0.
 *
 * Which one is in use is decided once per process and said in one log line (`udpIoLogLine`).
 * With native I/O a received datagram is a view of the socket's receive slots, valid only
 * during the callback (`transient`): whoever keeps it copies it.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface UdpPeer {
  readonly address: string;
  readonly port: number;
}

export interface UdpSocket {
  readonly io: 'native' | 'dgram';
  /** Received datagrams are reused after the 'message' callback returns: keep a copy. */
  readonly transient: boolean;
  bind(host: string, port: number): Promise<void>;
  connect(host: string, port: number): Promise<void>;
  address(): { address: string; port: number };
  onMessage(fn: (msg: Buffer, from: UdpPeer) => void): void;
  onError(fn: (err: Error) => void): void;
  /** Sends one datagram (to the connected peer without `to`); dropped when the send queue is full. */
  send(msg: Buffer, to?: UdpPeer): void;
  /**
   * Native I/O only: sends the whole length-framed datagrams (2-byte big-endian length, then
   * the datagram) of `buf[start, end)` straight from `buf`, in batches. Stops at a partial
   * frame or one longer than `max`; says how far it got.
   */
  sendFramed?(buf: Buffer, start: number, end: number, max: number, to?: UdpPeer): FramedSent;
  close(): void;
}

export interface FramedSent {
  /** Bytes of whole frames taken from the buffer. */
  bytes: number;
  datagrams: number;
  /** Datagram bytes (without the length fields). */
  payload: number;
}

export interface UdpSocketOptions {
  ipv6: boolean;
  recvBufferSize: number;
  sendBufferSize: number;
  /** Datagrams read per system call (native I/O); each takes a 64 KiB slot of address space. */
  batch: number;
}

/** Datagrams waiting to be sent on a dgram socket, beyond which more are dropped (UDP has no backpressure). */
export const UDP_SEND_QUEUE_LIMIT = 1024;

interface Addon {
  open(ipv6: boolean, rcvbuf: number, sndbuf: number): object;
  bind(s: object, ip: string, port: number, connect: boolean): void;
  local(s: object): Buffer;
  start(s: object, buf: Buffer, slot: number, meta: Buffer, cb: (n: number) => void): void;
  send(s: object, buf: Buffer, meta: Buffer, count: number): number;
  sendFramed(s: object, buf: Buffer, start: number, end: number, dest: Buffer | null, out: Uint32Array, max: number): number;
  close(s: object): void;
}

/** Where the addon is built (`npm run build:native`, also run by `npm install`). */
export const NATIVE_ADDON_PATH = path.join(__dirname, '..', '..', '..', 'native', 'build', 'Release', 'burrow_udp.node');

let addon: Addon | undefined;
let fallbackReason = '';
const pref = process.env.BURROW_UDP_NATIVE;
if (pref === '0') fallbackReason = 'BURROW_UDP_NATIVE=0';
else if (process.platform !== 'linux') fallbackReason = `not built on ${process.platform}`;
else {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(process.env.BURROW_UDP_ADDON ?? NATIVE_ADDON_PATH) as Addon;
  } catch (err) {
    fallbackReason = `addon not loaded: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** 'native' or 'dgram': the I/O every UDP socket of this process uses. */
export const udpIo: 'native' | 'dgram' = addon ? 'native' : 'dgram';

/** The one line that says which UDP I/O this process uses and, for dgram, why. */
export function udpIoLogLine(): string {
  return addon
    ? 'udp: native batched I/O (recvmmsg/sendmmsg)'
    : `udp: node:dgram I/O, one system call per datagram (${fallbackReason})`;
}

export function createUdpSocket(o: UdpSocketOptions): UdpSocket {
  return addon ? new NativeUdpSocket(addon, o) : new DgramUdpSocket(o);
}

// ---------------------------------------------------------------------------------------------

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

class DgramUdpSocket implements UdpSocket {
  readonly io = 'dgram';
  readonly transient = false;
  readonly #s: dgram.Socket;
  #connected = false;

  constructor(o: UdpSocketOptions) {
    this.#s = dgram.createSocket({
      type: o.ipv6 ? 'udp6' : 'udp4',
      reuseAddr: false,
      recvBufferSize: o.recvBufferSize,
      sendBufferSize: o.sendBufferSize,
      lookup: literalLookup,
    });
  }

  #once(start: (done: () => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#s.once('error', reject);
      start(() => {
        this.#s.off('error', reject);
        resolve();
      });
    });
  }

  bind(host: string, port: number): Promise<void> {
    return this.#once((done) => this.#s.bind({ port, address: host }, done));
  }

  connect(host: string, port: number): Promise<void> {
    this.#connected = true;
    return this.#once((done) => this.#s.connect(port, host, done));
  }

  address(): { address: string; port: number } {
    return this.#s.address();
  }

  onMessage(fn: (msg: Buffer, from: UdpPeer) => void): void {
    this.#s.on('message', fn);
  }

  onError(fn: (err: Error) => void): void {
    this.#s.on('error', fn);
  }

  send(msg: Buffer, to?: UdpPeer): void {
    // No callback: a failed send comes as the socket's 'error'. UDP has no backpressure, so
    // a send queue the kernel does not empty drops instead.
    if (this.#s.getSendQueueCount() >= UDP_SEND_QUEUE_LIMIT) return;
    if (this.#connected || !to) this.#s.send(msg);
    else this.#s.send(msg, to.port, to.address);
  }

  close(): void {
    try {
      this.#s.close();
    } catch {
      /* already closed */
    }
  }
}

// ---------------------------------------------------------------------------------------------

const META = 24;
/** A slot holds the largest UDP payload (65,507 bytes over IPv4). */
const SLOT = 65536;
/** Bytes of datagrams gathered for one sendmmsg at most; 256 datagrams at most. */
const SEND_SLAB = 512 * 1024;
const SEND_MAX = 256;

interface NativePeer extends UdpPeer {
  /** The 24-byte record (port, family, address) that names it to the addon. */
  readonly raw: Buffer;
}

function ntop(m: Buffer, at: number): string {
  if (m[at + 6] === 4) return `${m[at + 8]}.${m[at + 9]}.${m[at + 10]}.${m[at + 11]}`;
  let mapped = m[at + 18] === 0xff && m[at + 19] === 0xff;
  for (let i = 8; i < 18 && mapped; i++) mapped = m[at + i] === 0;
  if (mapped) return `::ffff:${m[at + 20]}.${m[at + 21]}.${m[at + 22]}.${m[at + 23]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(m.readUInt16BE(at + 8 + 2 * i));
  // The longest run of two or more zero groups becomes '::' (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

class NativeUdpSocket implements UdpSocket {
  readonly io = 'native';
  readonly transient = true;
  readonly #a: Addon;
  readonly #h: object;
  readonly #batch: number;
  readonly #ipv6: boolean;
  #closed = false;
  #onMessage: ((msg: Buffer, from: UdpPeer) => void) | undefined;
  #onError: ((err: Error) => void) | undefined;
  #recvBuf: Buffer | undefined;
  #recvMeta: Buffer | undefined;
  #last: NativePeer | undefined;
  /** Datagrams queued for the next sendmmsg: laid end to end in #sendBuf, one record each. */
  readonly #sendBuf = Buffer.allocUnsafe(SEND_SLAB);
  readonly #sendMeta = Buffer.alloc(SEND_MAX * META);
  #sendBytes = 0;
  #sendCount = 0;
  #flushQueued = false;

  constructor(a: Addon, o: UdpSocketOptions) {
    this.#a = a;
    this.#ipv6 = o.ipv6;
    this.#batch = Math.max(1, Math.min(1024, o.batch));
    this.#h = a.open(o.ipv6, o.recvBufferSize, o.sendBufferSize);
  }

  /** Runs a bind or connect; its failure reads as node:dgram's would ('bind EADDRINUSE 127.0.0.1:53'). */
  #call(syscall: 'bind' | 'connect', host: string, port: number, fn: () => void): Promise<void> {
    try {
      fn();
      return Promise.resolve();
    } catch (err) {
      const n = (err as { errno?: number }).errno;
      if (typeof n !== 'number') return Promise.reject(err as Error);
      return Promise.reject(errnoError(n, syscall, `${host}:${port}`));
    }
  }

  bind(host: string, port: number): Promise<void> {
    const ip = host || (this.#ipv6 ? '::' : '0.0.0.0');
    return this.#call('bind', ip, port, () => {
      this.#a.bind(this.#h, ip, port, false);
      this.#start();
    });
  }

  connect(host: string, port: number): Promise<void> {
    return this.#call('connect', host, port, () => {
      this.#a.bind(this.#h, host, port, true);
      this.#start();
    });
  }

  address(): { address: string; port: number } {
    const m = this.#a.local(this.#h);
    return { address: ntop(m, 0), port: m.readUInt16BE(4) };
  }

  onMessage(fn: (msg: Buffer, from: UdpPeer) => void): void {
    this.#onMessage = fn;
  }

  onError(fn: (err: Error) => void): void {
    this.#onError = fn;
  }

  #start(): void {
    this.#recvBuf = Buffer.allocUnsafe(SLOT * this.#batch);
    this.#recvMeta = Buffer.alloc(META * this.#batch);
    this.#a.start(this.#h, this.#recvBuf, SLOT, this.#recvMeta, this.#onBatch);
  }

  readonly #onBatch = (n: number): void => {
    if (n < 0) {
      this.#error(n, 'recvmmsg');
      return;
    }
    const buf = this.#recvBuf!;
    const meta = this.#recvMeta!;
    for (let i = 0; i < n && !this.#closed; i++) {
      const at = i * META;
      const len = meta.readUInt32LE(at);
      let peer = this.#last;
      if (!peer || !sameAddr(peer.raw, meta, at)) {
        const raw = Buffer.from(meta.subarray(at, at + META));
        peer = this.#last = { address: ntop(meta, at), port: meta.readUInt16BE(at + 4), raw };
      }
      this.#onMessage?.(buf.subarray(i * SLOT, i * SLOT + len), peer);
    }
  };

  #error(n: number, syscall: string): void {
    this.#onError?.(errnoError(n, syscall));
  }

  send(msg: Buffer, to?: UdpPeer): void {
    if (this.#closed) return;
    const len = msg.length;
    if (this.#sendCount === SEND_MAX || this.#sendBytes + len > SEND_SLAB) this.#flush();
    if (len > SEND_SLAB) return;
    msg.copy(this.#sendBuf, this.#sendBytes);
    const at = this.#sendCount * META;
    const m = this.#sendMeta;
    if (to) {
      const raw = (to as Partial<NativePeer>).raw;
      if (raw) raw.copy(m, at, 0, META);
      else peerRecord(to, m, at);
    } else m[at + 6] = 0;
    m.writeUInt32LE(len, at);
    this.#sendBytes += len;
    this.#sendCount++;
    if (!this.#flushQueued) {
      // Everything sent in this callback leaves in one sendmmsg once the callback is done.
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const count = this.#sendCount;
    if (count === 0 || this.#closed) return;
    this.#sendCount = 0;
    this.#sendBytes = 0;
    // Datagrams the kernel does not take (a full send buffer) are dropped, as UDP drops.
    const sent = this.#a.send(this.#h, this.#sendBuf, this.#sendMeta, count);
    if (sent < 0) this.#error(sent, 'sendmmsg');
  };

  readonly #framedOut = new Uint32Array(3);

  sendFramed(buf: Buffer, start: number, end: number, max: number, to?: UdpPeer): FramedSent {
    if (this.#closed) return { bytes: 0, datagrams: 0, payload: 0 };
    // Datagrams queued by send() leave first.
    if (this.#sendCount > 0) this.#flush();
    let dest: Buffer | null = null;
    if (to) {
      dest = (to as Partial<NativePeer>).raw ?? Buffer.alloc(META);
      if (!(to as Partial<NativePeer>).raw) peerRecord(to, dest, 0);
    }
    const out = this.#framedOut;
    const r = this.#a.sendFramed(this.#h, buf, start, end, dest, out, max);
    const sent = { bytes: out[0]!, datagrams: out[1]!, payload: out[2]! };
    if (r < 0) this.#error(r, 'sendmmsg');
    return sent;
  }

  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#a.close(this.#h);
  }
}

const ERRNO_NAMES = new Map(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** An error as libuv words it: '<syscall> <CODE>[ <address>]', with errno (negative), code and syscall. */
function errnoError(n: number, syscall: string, address?: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(Math.abs(n)) ?? `errno ${Math.abs(n)}`;
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}${address ? ` ${address}` : ''}`);
  return Object.assign(err, { errno: -Math.abs(n), code, syscall });
}

function sameAddr(raw: Buffer, m: Buffer, at: number): boolean {
  for (let i = 4; i < META; i++) if (raw[i] !== m[at + i]) return false;
  return true;
}

function peerRecord(to: UdpPeer, m: Buffer, at: number): void {
  m.fill(0, at, at + META);
  m.writeUInt16BE(to.port, at + 4);
  const f = isIP(to.address);
  if (f === 4) {
    m[at + 6] = 4;
    to.address.split('.').forEach((x, i) => (m[at + 8 + i] = Number(x)));
    return;
  }
  m[at + 6] = 6;
  // Expand '::' and an embedded IPv4 tail into 8 groups.
  let s = to.address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => m.writeUInt16BE(parseInt(g, 16), at + 8 + 2 * i));
}
