/**
 * Local services and raw clients shared by the end-to-end tests. Everything listens on
 * 127.0.0.1 with an OS-assigned port; each `start*` registers nothing itself, callers close
 * what they start (or add it to a cleanup list).
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import { buildConnectRequest } from '../../src/protocol/relay/message';
import { parseTunnelId } from '../../src/protocol/relay/tunnel-id';
import { connect } from '../helpers/net';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { LOCAL, httpCall, listenLocal, sleep } from '../helpers/local';

export { LOCAL, sleep } from '../helpers/local';

/** The tunnel IDs of the docs (config.md §5–6). */
export const TID = {
  example: '4d21094e-b74c-4916-86c1-d9fa36ea677b',
  org: 'ac74d9dd-3125-442a-a7c1-f9e49e05faca',
  services: 'aede1f6a-762b-45da-b937-b6632356555a',
  public: '9fd6c586-86f9-49c1-a03a-d4876851695a',
  iperf: '22f43305-42f7-4232-bbbc-aa6c042e3bc3',
} as const;

export interface Closeable {
  close(): Promise<void>;
}

/** Runs the closers in reverse order; used from `after`. */
export class Cleanup {
  readonly #fns: Array<() => unknown> = [];
  add<T extends Closeable>(c: T): T {
    this.#fns.push(() => c.close());
    return c;
  }
  fn(f: () => unknown): void {
    this.#fns.push(f);
  }
  async run(): Promise<void> {
    await stopAll();
    for (const f of this.#fns.splice(0).reverse()) {
      try {
        await f();
      } catch {
        /* best effort */
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha: string;
  remote: string;
}

export interface HttpService extends Closeable {
  port: number;
  name: string;
  requests: SeenRequest[];
  /** TCP connections accepted so far. */
  connections: number;
}

/**
 * An HTTP service answering `<name> <method> <url> host=<host>` plus, for requests with a body,
 * ` bytes=<n> sha=<sha256>`. Every request is recorded.
 */
export function startHttpService(name: string): Promise<HttpService> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const hash = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const sha = hash.digest('hex');
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        bodyBytes: n,
        bodySha: sha,
        remote: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      });
      let body = `${name} ${req.method} ${req.url} host=${req.headers.host ?? ''}`;
      if (n > 0) body += ` bytes=${n} sha=${sha}`;
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-Service', name);
      res.end(body);
    });
  });
  const svc: HttpService = { port: 0, name, requests, connections: 0, close: async () => undefined };
  server.on('connection', () => svc.connections++);
  return listenLocal(server).then(({ port, close }) => Object.assign(svc, { port, close }));
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** True when the request went over a reused keep-alive socket. */
  reused: boolean;
  socket: net.Socket;
}

export interface HttpOptions {
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  agent?: http.Agent | false;
  timeoutMs?: number;
}

/** One HTTP/1.1 request to 127.0.0.1:`port`. Rejects on a socket error or a timeout. */
export async function httpRequest(port: number, opts: HttpOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.host !== undefined) headers.Host = opts.host;
  const { res, body, reused, socket } = await httpCall(
    {
      host: LOCAL,
      port,
      path: opts.path ?? '/',
      method: opts.method ?? (opts.body ? 'POST' : 'GET'),
      headers,
      agent: opts.agent ?? false,
      setHost: opts.host === undefined,
    },
    opts.body,
    opts.timeoutMs ?? 10_000,
  );
  return { status: res.statusCode ?? 0, headers: res.headers, body: body.toString('utf8'), reused, socket };
}

/**
 * Sends a raw HTTP request on a fresh connection and collects everything until the peer
 * closes (or `timeoutMs`). `closed` tells whether the peer closed the connection.
 */
export async function rawHttp(port: number, request: string | Buffer, timeoutMs = 5_000): Promise<{ data: string; closed: boolean }> {
  const sock = await connect(port);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => finish(true));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.write(request);
  });
}

// ---------------------------------------------------------------------------------------------
// TCP

/**
 * A TCP service that greets every connection with `<banner>\n` (like an SSH server) and then
 * echoes. Counts its connections.
 */
export function startBannerEcho(banner: string): Promise<Closeable & { port: number; connections: number }> {
  const state = { port: 0, connections: 0, close: async () => undefined as void };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    state.connections++;
    sock.on('error', () => undefined);
    sock.write(`${banner}\n`);
    sock.pipe(sock);
  });
  return listenLocal(server).then(({ port, close }) => Object.assign(state, { port, close }));
}

/**
 * Connects to `port`, expects `<banner>\n`, sends `payload` and reads it back. Returns the
 * banner. Rejects when the connection closes early.
 */
export async function bannerExchange(port: number, payload: Buffer, timeoutMs = 10_000): Promise<{ banner: string; echoed: Buffer }> {
  const sock = await connect(port);
  try {
    return await new Promise((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let banner: string | undefined;
      const timer = setTimeout(() => reject(new Error(`no banner/echo within ${timeoutMs} ms (got ${buf.length} bytes)`)), timeoutMs);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (banner === undefined) {
          const nl = buf.indexOf(0x0a);
          if (nl < 0) return;
          banner = buf.subarray(0, nl).toString();
          buf = buf.subarray(nl + 1);
          sock.write(payload);
        }
        if (buf.length >= payload.length) {
          clearTimeout(timer);
          resolve({ banner, echoed: buf.subarray(0, payload.length) });
        }
      });
      sock.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      sock.on('close', () => {
        clearTimeout(timer);
        reject(new Error(`connection closed after ${buf.length} bytes (banner ${banner ?? 'not seen'})`));
      });
    });
  } finally {
    sock.destroy();
  }
}

/**
 * Connects to `port` and resolves with what arrives before the peer closes the connection,
 * or rejects if it stays open for `timeoutMs`. Used to check that a visitor drops a refused
 * connection.
 */
export async function expectClosed(port: number, send?: Buffer | string, timeoutMs = 5_000): Promise<Buffer> {
  const sock = await connect(port);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`connection still open after ${timeoutMs} ms (got ${Buffer.concat(chunks).length} bytes)`));
    }, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => undefined);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    sock.once('end', () => sock.end());
    if (send !== undefined) sock.write(send);
  });
}

// ---------------------------------------------------------------------------------------------
// UDP

/**
 * A UDP echo service. Datagrams are echoed as they are, except the text queries `who`
 * (answered with `name`) and `who2` … `who9` (answered N times, back to back: `name#1` …).
 */
export function startUdpService(name: string): Promise<Closeable & { port: number; received: number }> {
  const sock = dgram.createSocket('udp4');
  const state = {
    port: 0,
    received: 0,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
  sock.on('message', (msg, rinfo) => {
    state.received++;
    const text = msg.length <= 4 ? msg.toString() : '';
    const many = /^who([2-9])$/.exec(text);
    if (text === 'who') sock.send(name, rinfo.port, rinfo.address);
    else if (many) {
      for (let i = 1; i <= Number(many[1]); i++) sock.send(`${name}#${i}`, rinfo.port, rinfo.address);
    } else sock.send(msg, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, LOCAL, () => {
      state.port = sock.address().port;
      resolve(state);
    });
  });
}

/** A UDP client socket with send, receive and ask (send + wait for one reply). */
export class UdpClient {
  readonly sock = dgram.createSocket('udp4');
  readonly #queue: Buffer[] = [];
  #wake: (() => void) | undefined;

  constructor(readonly port: number) {
    this.sock.on('message', (m) => {
      this.#queue.push(m);
      this.#wake?.();
    });
    this.sock.on('error', () => undefined);
  }

  async bind(): Promise<this> {
    await new Promise<void>((r) => this.sock.bind(0, LOCAL, () => r()));
    return this;
  }

  get localPort(): number {
    return this.sock.address().port;
  }

  send(data: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => this.sock.send(data, this.port, LOCAL, (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram received, or undefined after `timeoutMs`. */
  async recv(timeoutMs = 3_000): Promise<Buffer | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          this.#wake = undefined;
          r();
        }, left);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = undefined;
          r();
        };
      });
    }
    return this.#queue.shift();
  }

  /** Sends and waits for one reply; retries the send a few times while the tunnel comes up. */
  async ask(data: Buffer | string, timeoutMs = 2_000, attempts = 1): Promise<Buffer | undefined> {
    for (let i = 0; i < attempts; i++) {
      await this.send(data);
      const r = await this.recv(timeoutMs);
      if (r) return r;
    }
    return undefined;
  }

  close(): void {
    try {
      this.sock.close();
    } catch {
      /* closed */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Raw relay

/**
 * Sends a relay CONNECT built with buildConnectRequest to the server at `port` and reads the
 * 4-byte status response. Returns the status byte (or undefined when the server closed without
 * a response) and the still-open socket (destroy it when done).
 */
export async function relayConnect(
  port: number,
  init: { tunnelId: string; dst: string; udp?: boolean; src?: string },
  timeoutMs = 5_000,
): Promise<{ status: number | undefined; rest: Buffer; socket: net.Socket; closed: Promise<void> }> {
  const socket = await connect(port);
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.write(
    buildConnectRequest({
      srcAddr: init.src ?? `${LOCAL}:${socket.localPort}`,
      dstAddr: init.dst,
      tunnelId: parseTunnelId(init.tunnelId),
      udp: init.udp ?? false,
    }),
  );
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(), timeoutMs);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 4) done();
    };
    const onEnd = (): void => done();
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve({
        status: buf.length >= 4 ? buf[1] : undefined,
        rest: buf.subarray(Math.min(4, buf.length)),
        socket,
        closed,
      });
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** `relayConnect` that only reports the status and closes the socket. */
export async function relayStatus(port: number, init: { tunnelId: string; dst: string; udp?: boolean }): Promise<number | undefined> {
  const r = await relayConnect(port, init);
  r.socket.destroy();
  return r.status;
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Starts a tunnel server from CLI args and returns it with its service port. */
export async function startServer(args: string[], name = 'server'): Promise<{ proc: BurrowProcess; port: number }> {
  const proc = burrow(args, { name });
  const port = await proc.listeningPort();
  return { proc, port };
}

/**
 * Starts one client per `[tunnel ID, local port]` against the server's tunnel port (an `rtcp`
 * service to 127.0.0.1:<port>) and waits until the server (run with `-D`) has each connector.
 */
export async function startClients(server: BurrowProcess, tunnelPort: number, clients: ReadonlyArray<readonly [string, number]>): Promise<void> {
  for (const [tid, target] of clients) {
    burrow(['-L', `rtcp://:0/127.0.0.1:${target}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${tid}`], { name: `client ${tid}` });
    await server.waitForMsg(new RegExp(`tunnel=${tid}, connector=.* established`));
  }
}

/** Retries `fn` until it resolves without throwing, or rethrows after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T>, timeoutMs = 5_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(intervalMs);
    }
  }
}
