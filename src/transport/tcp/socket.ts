/**
 * Plain-socket building blocks shared by every stream transport (tcp, tls, ws, wss):
 * Go-style address rendering, TCP keepalive options, binding a net.Server to a Go-style
 * address, and one TCP dial with a deadline and an AbortSignal.
 */
import net from 'node:net';
import { readFileSync } from 'node:fs';
import util from 'node:util';
import type { Logger } from 'pino';
import type { Conn } from '../../core/transport';
import type { Metadata } from '../../core/metadata';
import { joinHostPort, splitHostPort } from '../../core/addr';
import { BurrowError } from '../../core/errors';
import { DEFAULTS } from '../../core/config';
import { DEFAULT_BACKLOG, DIAL_TIMEOUT, TCP_KEEPALIVE, WS_TCP_KEEPALIVE } from '../../core/options/transport';
import { parseOption, parseOptions } from '../../core/options/options';

/**
 * Socket buffer size (readable and writable highWaterMark) for transport sockets. Larger than
 * Node 20's 16 KiB default so a pipe moves bigger chunks per callback; memory is only held
 * when the consumer applies backpressure.
 */
export const SOCKET_HIGH_WATER_MARK_BYTES = 256 * 1024;

export { DEFAULT_BACKLOG };

let somaxconnCache: number | undefined;

/** The kernel's cap on listen backlogs (/proc/sys/net/core/somaxconn); Infinity when unknown. */
export function somaxconn(): number {
  if (somaxconnCache === undefined) {
    let n = NaN;
    try {
      n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    } catch {
      // Not Linux, or no /proc: the kernel caps by itself.
    }
    somaxconnCache = Number.isInteger(n) && n > 0 ? n : Infinity;
  }
  return somaxconnCache;
}

/** The listen backlog from `key` (default 4096), capped by the kernel's somaxconn. */
export function listenBacklog(md: Metadata, ...keys: string[]): number {
  return capBacklog(md.getInt(...(keys.length > 0 ? keys : ['backlog'])));
}

/** A backlog asked for (the default when not positive), capped by `net.core.somaxconn`. */
export function capBacklog(asked: number | undefined): number {
  return Math.min(asked && asked > 0 ? asked : DEFAULT_BACKLOG, somaxconn());
}

/** Renders a socket address Go style; IPv4-mapped IPv6 ("::ffff:1.2.3.4") shown as IPv4. */
export function formatAddress(address: string | undefined, port: number | undefined): string {
  let host = address ?? '';
  if (host.startsWith('::ffff:') && net.isIPv4(host.slice(7))) host = host.slice(7);
  return joinHostPort(host, port ?? 0);
}

export function localAddressOf(sock: net.Socket): string {
  return formatAddress(sock.localAddress, sock.localPort);
}

export function remoteAddressOf(sock: net.Socket): string {
  return formatAddress(sock.remoteAddress, sock.remotePort);
}

/**
 * An accepted tcp connection. `remote` is read once, without keeping the address object Node
 * caches on the socket (about 90 bytes every idle connection would hold); `local` is read when
 * first asked for (a system call most connections never need: it is logged at debug level).
 */
export class AcceptedConn implements Conn {
  readonly stream: net.Socket;
  readonly remote: string;
  #local: string | undefined;

  /**
   * `listenAddr`: what `local` says once the socket is closed (the listener's address);
   * `remote`: the client's address when a trusted PROXY header named it.
   */
  constructor(
    sock: net.Socket,
    readonly listenAddr = '',
    remote?: string,
  ) {
    this.stream = sock;
    this.remote = remote ?? remoteAddressOf(sock);
    // Node reads the peer address again when asked, while the socket is open.
    (sock as unknown as { _peername?: unknown })._peername = undefined;
  }

  get local(): string {
    if (this.#local !== undefined) return this.#local;
    // A closed socket has no address any more (a failure is often logged after the close).
    if (this.stream.localPort === undefined && this.listenAddr) return this.listenAddr;
    return (this.#local = localAddressOf(this.stream));
  }
}

/** OS TCP keepalive settings (gost `keepalive`, `keepalive.idle|interval|count`). */
export interface KeepaliveOptions {
  enabled: boolean;
  /** Idle time before the first probe (Go's default: 15 s). */
  idleMs: number;
}

/**
 * Reads keepalive settings under `prefix` ("" for tcp, "tcp." for the ws dialer).
 * Node 20 can set only the idle time; `interval` and `count` keep the OS defaults.
 */
export function keepaliveOptions(md: Metadata, prefix: '' | 'tcp.' = ''): KeepaliveOptions {
  const o = parseOptions(prefix === '' ? TCP_KEEPALIVE : WS_TCP_KEEPALIVE, md);
  return { enabled: o.keepalive, idleMs: o.keepaliveIdle };
}

/** Keepalive keys that Node cannot apply (probe interval and count keep the OS defaults). */
export function unsupportedKeepaliveKeys(md: Metadata, prefix: '' | 'tcp.' = ''): string[] {
  const o = prefix === '' ? TCP_KEEPALIVE : WS_TCP_KEEPALIVE;
  return [o.keepaliveInterval.key, o.keepaliveCount.key].filter((k) => md.has(k));
}

/** TCP_NODELAY and, when asked, SO_KEEPALIVE on a socket. */
export function tuneSocket(sock: net.Socket, keepalive: KeepaliveOptions): void {
  sock.setNoDelay(true);
  if (keepalive.enabled) sock.setKeepAlive(true, keepalive.idleMs);
}

/**
 * Binds `server` to a Go-style address (":8443" = all interfaces) and resolves once it
 * listens; rejects with the bind error (EADDRINUSE, EACCES, ...).
 */
export function listenServer(server: net.Server, addr: string, backlog: number): Promise<void> {
  const { host, port } = splitHostPort(addr);
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: host === '' ? undefined : host, port, backlog });
  });
}

/** The bound address of a listening server as "host:port" (Go style). */
export function serverAddress(server: net.Server): string {
  const a = server.address();
  if (a === null) throw new Error('listener is not bound');
  if (typeof a === 'string') return a;
  return formatAddress(a.address, a.port);
}

/**
 * Stops accepting. Does not wait for the server's 'close' event, which Node only emits once
 * every accepted connection has closed: connections already handed out are not ours to wait
 * for. The listening socket itself is closed synchronously.
 */
export function stopServer(server: net.Server): void {
  if (server.listening) server.close();
}

export interface DialTcpOptions {
  /** Connect deadline in ms (default 15 s); 0 = none. */
  timeoutMs?: number;
  signal?: AbortSignal;
  keepalive?: KeepaliveOptions;
}

/** Dial timeout from metadata (`dialTimeout`, default 15 s). */
export function dialTimeoutMs(md: Metadata): number {
  return parseOption(DIAL_TIMEOUT.dialTimeout, md);
}

/** The host to dial for an address: an empty or unspecified host means this machine. */
export function dialHost(host: string): string {
  return host === '' ? '127.0.0.1' : host;
}

/** Smallest and largest read buffer of a dialed or accepted socket (bytes). */
const MIN_READ_BYTES = 1024;
const MAX_READ_BYTES = 512 * 1024;
/** Reads up to this size go into one buffer shared by every socket and are copied out. */
const SHARED_READ_BYTES = 16 * 1024;

/**
 * The buffer every socket reads small reads into. A read fills it and our callback runs
 * before libuv reads anything else, so one buffer serves every socket; the callback copies
 * the bytes out before they are handed on.
 */
let sharedReadBuffer: Buffer | undefined;
/**
 * Views of it by size (sizes are powers of two): Node keeps a socket's next read buffer on the
 * socket, so one view object per size serves them all instead of one per socket and read.
 */
const sharedViews = new Map<number, Buffer>();

function sharedRead(size: number): Buffer {
  let view = sharedViews.get(size);
  if (!view) {
    sharedReadBuffer ??= Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
    view = sharedReadBuffer.subarray(0, size);
    sharedViews.set(size, view);
  }
  return view;
}

/** Size of the next read buffer; set by each read for the buffer Node asks for right after it. */
let nextReadBytes = MIN_READ_BYTES;

/**
 * Read buffers that follow the traffic: a read that fills its buffer doubles the next one (up
 * to 512 KiB), a read that uses less than a quarter halves it (down to 1 KiB). Bulk transfers
 * get few, large reads — fewer syscalls and fewer callbacks per megabyte (about 30% faster
 * than the fixed 64 KiB reads of a plain socket). Reads of up to 16 KiB go into the buffer
 * shared by all sockets and are copied out (small copies), so an idle connection holds no
 * read buffer of its own; larger reads get a fresh buffer each, handed on without a copy, so
 * a chunk handed on is never overwritten. Chunks are pushed into the socket's own Readable
 * side, so the socket still behaves as a normal stream (backpressure included: a full reader
 * stops the reads).
 *
 * The two functions are shared by every socket and keep no state of their own: Node calls
 * `callback` on the socket (`this`) after each read and then, at once, `buffer` for that
 * socket's next read; a read buffer's length is the size it was made with. (A new socket's
 * first buffer comes from `buffer` too, at the smallest size.)
 */
const ADAPTIVE_READS = {
  buffer(): Buffer {
    const size = nextReadBytes;
    nextReadBytes = MIN_READ_BYTES;
    return size <= SHARED_READ_BYTES ? sharedRead(size) : Buffer.allocUnsafe(size);
  },
  callback(this: net.Socket, n: number, buf: Buffer): boolean {
    let chunk: Buffer;
    if (buf.buffer === sharedReadBuffer?.buffer) {
      chunk = Buffer.allocUnsafe(n);
      buf.copy(chunk, 0, 0, n);
    } else {
      chunk = buf.subarray(0, n);
    }
    const size = buf.length;
    if (n >= size) nextReadBytes = Math.min(size * 2, MAX_READ_BYTES);
    else if (n < size >> 2) nextReadBytes = Math.max(MIN_READ_BYTES, size >> 1);
    else nextReadBytes = size;
    return this.push(chunk);
  },
};

/** What a server's listening handle calls for every accepted connection (Node's internals). */
type OnConnection = (this: unknown, err: number, clientHandle: unknown) => void;

/**
 * Accepted sockets with the adaptive reads of a dialed one. Node has no `onread` option for
 * accepted sockets, so once `server` listens its handle's accept callback (`onconnection`, what
 * net.Server itself installs) is replaced by one that builds each socket with `onread` right
 * away, as net.Server would build it (half-open, buffer sizes, the server's connection count,
 * accept errors as 'error' on the server), and hands it to `onSocket` instead of emitting
 * 'connection'. One socket per connection: building a paused one first and moving its handle
 * into a second left the first as garbage, about 1.5 KiB per connection in the old generation
 * until the next full collection.
 *
 * Returns false when the handle is not what this expects (another Node); the server then goes
 * on emitting 'connection' with plain sockets.
 */
export function acceptWithAdaptiveReads(
  server: net.Server,
  opts: { allowHalfOpen: boolean; highWaterMark: number },
  onSocket: (sock: net.Socket) => void,
): boolean {
  const srv = server as unknown as { _handle?: { onconnection?: OnConnection } | null; _connections: number };
  const handle = srv._handle;
  if (!handle || typeof handle.onconnection !== 'function' || typeof srv._connections !== 'number') return false;
  handle.onconnection = function onconnection(err: number, clientHandle: unknown): void {
    if (err) {
      const code = util.getSystemErrorName(err);
      server.emit('error', Object.assign(new Error(`accept ${code}`), { code, errno: err, syscall: 'accept' }));
      return;
    }
    if (!clientHandle) return;
    const sock = new net.Socket({
      handle: clientHandle,
      allowHalfOpen: opts.allowHalfOpen,
      readable: true,
      writable: true,
      readableHighWaterMark: opts.highWaterMark,
      writableHighWaterMark: opts.highWaterMark,
      onread: ADAPTIVE_READS,
    } as net.SocketConstructorOpts);
    srv._connections++;
    const own = sock as unknown as { server: net.Server; _server: net.Server };
    own.server = server;
    own._server = server;
    onSocket(sock);
  };
  return true;
}

/**
 * Opens a TCP connection to "host:port" (empty host = 127.0.0.1, as Go dials localhost),
 * with TCP_NODELAY, within `timeoutMs`. Rejects with a BurrowError naming the address:
 * BURROW_ERR_TIMEOUT on the deadline, BURROW_ERR_DIAL otherwise (the OS error as `cause`),
 * or the signal's reason when aborted. The returned socket allows half-open.
 */
export function dialTcp(addr: string, opts: DialTcpOptions = {}): Promise<net.Socket> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = splitHostPort(addr));
  } catch (err) {
    return Promise.reject(new BurrowError('BURROW_ERR_DIAL', `dial tcp ${addr}: ${(err as Error).message}`));
  }
  const { signal } = opts;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  const timeoutMs = opts.timeoutMs ?? DEFAULTS.dialTimeoutMs;
  return new Promise((resolve, reject) => {
    const connectOpts: net.TcpNetConnectOpts & { highWaterMark: number } = {
      host: dialHost(host),
      port,
      noDelay: true,
      allowHalfOpen: true,
      // net.Socket passes highWaterMark on to its Duplex; @types/node does not list it.
      highWaterMark: SOCKET_HIGH_WATER_MARK_BYTES,
    };
    if (opts.keepalive?.enabled) {
      connectOpts.keepAlive = true;
      connectOpts.keepAliveInitialDelay = opts.keepalive.idleMs;
    }
    const sock = net.connect({ ...connectOpts, onread: ADAPTIVE_READS } as net.NetConnectOpts);
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      sock.off('connect', onConnect);
      sock.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      cleanup();
      sock.destroy();
      reject(err);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(sock);
    };
    const onError = (err: Error): void => {
      fail(new BurrowError('BURROW_ERR_DIAL', `dial tcp ${addr}: ${err.message}`, { cause: err }));
    };
    const onAbort = (): void => fail(abortReason(signal!));
    sock.once('connect', onConnect);
    sock.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => fail(new BurrowError('BURROW_ERR_TIMEOUT', `dial tcp ${addr}: i/o timeout after ${timeoutMs}ms`)),
        timeoutMs,
      );
    }
  });
}

/** The error to reject with when `signal` aborted. */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const err = new Error(typeof r === 'string' ? r : 'The operation was aborted');
  err.name = 'AbortError';
  return err;
}

/**
 * Hands an accepted connection to the listener's owner. A throwing owner must not take the
 * accept loop down: the error is logged and that one connection destroyed.
 */
export function handOff(onConn: (conn: Conn) => void, conn: Conn, logger: Logger): void {
  try {
    onConn(conn);
  } catch (err) {
    logger.error({ err, remote: conn.remote }, 'connection handler failed');
    conn.stream.destroy();
  }
}
