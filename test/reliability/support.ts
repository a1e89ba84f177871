/**
 * Shared pieces of the reliability tests: real burrow processes (server, clients, visitors)
 * through test/helpers/cli.ts, local origins (HTTP with echo/SSE/long-poll routes, TCP echo),
 * transfers checked by SHA-256, and /proc and /metrics readings of a process. Everything
 * listens on 127.0.0.1 with an OS-assigned port.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { burrow, tempFile, type BurrowProcess, type LogLine } from '../helpers/cli';
import { LOCAL, httpCall, listenLocal } from '../helpers/local';
import { readN } from '../helpers/net';

export { LOCAL, sha, sleep } from '../helpers/local';

export const newTid = (): string => randomUUID();

// ---------------------------------------------------------------------------------------------
// processes

export interface ServerProc {
  proc: BurrowProcess;
  port: number;
  ep: number;
  metricsPort?: number;
}

/**
 * A tunnel server with an entry point: `tunnel://127.0.0.1:<port>?entrypoint=127.0.0.1:<ep>&<query>`.
 * With `metrics`, also `-metrics 127.0.0.1:0`.
 */
export async function startServer(
  query: string,
  opts: { name?: string; port?: number; ep?: number; metrics?: boolean; debug?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<ServerProc> {
  const args = ['-L', `tunnel://${LOCAL}:${opts.port ?? 0}?entrypoint=${LOCAL}:${opts.ep ?? 0}${query ? `&${query}` : ''}`];
  if (opts.metrics) args.push('-metrics', `${LOCAL}:0`);
  if (opts.debug) args.push('-D');
  const proc = burrow(args, { name: opts.name ?? 'server', env: opts.env });
  const port = await proc.listeningPort({ timeoutMs: 15_000 });
  const ep = await proc.entrypointPort(0, 15_000);
  let metricsPort: number | undefined;
  if (opts.metrics) {
    const l = await proc.waitForMsg(/^metrics: http:\/\//, { timeoutMs: 15_000 });
    metricsPort = Number(/:(\d+)\/metrics$/.exec(String(l.msg))![1]);
  }
  return { proc, port, ep, metricsPort };
}

/** A client: `-L rtcp://:0/<target> -F tunnel://127.0.0.1:<serverPort>?tunnel.id=<tid>&<query>`. */
export function spawnClient(
  serverPort: number,
  tid: string,
  target: string,
  opts: { name?: string; query?: string; env?: NodeJS.ProcessEnv; network?: 'tcp' | 'udp'; debug?: boolean; extraL?: string[] } = {},
): BurrowProcess {
  const l = `${opts.network === 'udp' ? 'rudp' : 'rtcp'}://:0/${target}`;
  const f = `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}${opts.query ? `&${opts.query}` : ''}`;
  const args = ['-L', l, ...(opts.extraL ?? []).flatMap((x) => ['-L', x]), '-F', f];
  if (opts.debug) args.push('-D');
  return burrow(args, { name: opts.name ?? 'client', env: opts.env });
}

export async function startClient(
  serverPort: number,
  tid: string,
  target: string,
  opts: Parameters<typeof spawnClient>[3] = {},
): Promise<{ proc: BurrowProcess; connector: string }> {
  const proc = spawnClient(serverPort, tid, target, opts);
  const line = await proc.tunnelCreated({ timeoutMs: 15_000 });
  return { proc, connector: connectorOf(line) };
}

/** The connector ID of a client's "create tunnel ... OK" line. */
export function connectorOf(line: LogLine): string {
  return /connector=([0-9a-f-]+)/.exec(String(line.msg))![1]!;
}

/**
 * A client from a config file: `-C <file>` with `yaml` written to a temporary `file`. Resolves
 * once it created its tunnel and `server` logged the connector as established.
 */
export async function startYamlClient(server: ServerProc, file: string, yaml: string, name = 'client'): Promise<{ proc: BurrowProcess; connector: string }> {
  const proc = burrow(['-C', tempFile(file, yaml)], { name });
  const line = await proc.tunnelCreated({ timeoutMs: 15_000 });
  const connector = connectorOf(line);
  await established(server.proc, connector);
  return { proc, connector };
}

/** A TCP visitor: `-L tcp://127.0.0.1:0/<dst> -F tunnel://127.0.0.1:<serverPort>?tunnel.id=<tid>`. */
export async function startTcpVisitor(
  serverPort: number,
  tid: string,
  dst: string,
  opts: { name?: string; query?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ proc: BurrowProcess; port: number }> {
  const proc = burrow(
    ['-L', `tcp://${LOCAL}:0/${dst}`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}${opts.query ? `&${opts.query}` : ''}`],
    { name: opts.name ?? 'visitor', env: opts.env },
  );
  return { proc, port: await proc.listeningPort({ timeoutMs: 15_000 }) };
}

/** Waits for the server's `... connector=<cid>, weight=N established` line. */
export function established(server: BurrowProcess, cid: string, timeoutMs = 10_000): Promise<LogLine> {
  return server.waitForMsg(new RegExp(`connector=${cid}, weight=\\d+ established$`), { timeoutMs });
}

/** Waits for the server's `remove connector: <tid> <cid>` line. */
export function removed(server: BurrowProcess, tid: string, cid: string, opts: { from?: number; timeoutMs?: number } = {}): Promise<LogLine> {
  return server.waitForMsg(new RegExp(`^remove connector: ${tid} ${cid}$`), { timeoutMs: 10_000, ...opts });
}

// ---------------------------------------------------------------------------------------------
// /proc and /metrics

/** Resident set size of a process in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Open sockets of a process (Linux). */
export function socketsOf(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** Scrapes a Prometheus endpoint; returns `name{labels}` → value. */
export async function scrape(port: number): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: LOCAL, port, path: '/metrics', agent: false }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () => resolve(s));
      })
      .on('error', reject);
  });
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** Sum of every series of a metric (all label sets). */
export function metricSum(m: Map<string, number>, name: string): number {
  let n = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(`${name}{`)) n += v;
  return n;
}

// ---------------------------------------------------------------------------------------------
// origins

export interface Origin {
  port: number;
  /** Requests whose response was closed before it finished (visitor went away). */
  aborted: Array<{ url: string; at: number }>;
  /** Requests seen, by url. */
  seen: string[];
  /** TCP connections accepted (HTTP or not). */
  connections: number;
  /** Opens the gate of `/sse?gate=1` responses (those waiting and those to come). */
  release(): void;
  /** Sends the next event of every `/sse?step=1` response now open. */
  step(): void;
  close(): Promise<void>;
}

/**
 * An HTTP origin:
 * - `POST /echo` streams the request body back;
 * - `GET /sse?n=N&every=MS` sends N events `data: <i> <sent-at-ms>` every MS ms, then ends;
 *   `n=0` sends forever; with `gate=1` it sends the first event, then holds the response open
 *   until `release()` is called, then sends the rest; with `step=1` it sends one event now and
 *   each next one when `step()` is called (ending after N);
 * - `GET /poll?delay=MS` answers `polled <sent-at-ms>` after MS ms (long polling);
 * - `GET /slowhead?delay=MS` writes nothing for MS ms, then answers 200;
 * - anything else: 200 `ok <url>`.
 * With `halfOpen`, a client's FIN after its request is a half-close (the response still goes
 * out); by default it is a disconnect, as in Node's and Go's HTTP servers.
 */
export async function startOrigin(opts: { halfOpen?: boolean } = {}): Promise<Origin> {
  const aborted: Origin['aborted'] = [];
  const seen: string[] = [];
  let released = false;
  const gated: Array<() => void> = [];
  const stepped = new Set<() => void>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push(req.url ?? '');
    const timers: NodeJS.Timeout[] = [];
    res.on('close', () => {
      for (const t of timers) clearTimeout(t); // clearTimeout clears an interval too
      if (!res.writableFinished) aborted.push({ url: req.url ?? '', at: Date.now() });
    });
    switch (url.pathname) {
      case '/echo':
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        req.pipe(res);
        return;
      case '/sse': {
        const n = Number(url.searchParams.get('n') ?? '5');
        const every = Number(url.searchParams.get('every') ?? '200');
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        let i = 0;
        let timer: NodeJS.Timeout | undefined;
        const send = (): void => {
          res.write(`data: ${i} ${Date.now()}\n\n`);
          i++;
          if (n > 0 && i >= n) {
            clearInterval(timer);
            res.end();
          }
        };
        const run = (): void => {
          if (res.writableEnded || res.destroyed) return;
          timer = setInterval(send, every);
          timers.push(timer);
        };
        if (url.searchParams.get('step') === '1') {
          const next = (): void => {
            if (res.writableEnded || res.destroyed) return void stepped.delete(next);
            send();
            if (res.writableEnded) stepped.delete(next);
          };
          stepped.add(next);
          res.on('close', () => stepped.delete(next));
          next();
        } else if (url.searchParams.get('gate') === '1' && !released) {
          send();
          gated.push(run);
        } else {
          run();
        }
        req.resume();
        return;
      }
      case '/poll': {
        const delay = Number(url.searchParams.get('delay') ?? '1000');
        req.resume();
        timers.push(
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end(`polled ${Date.now()}`);
          }, delay),
        );
        return;
      }
      case '/slowhead': {
        const delay = Number(url.searchParams.get('delay') ?? '3000');
        req.resume();
        timers.push(
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end('late');
          }, delay),
        );
        return;
      }
      default:
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`ok ${req.url}`);
    }
  });
  const release = (): void => {
    released = true;
    for (const run of gated.splice(0)) run();
  };
  const step = (): void => {
    for (const next of [...stepped]) next();
  };
  const origin: Origin = { port: 0, aborted, seen, connections: 0, release, step, close: async () => undefined };
  server.on('connection', () => origin.connections++);
  server.on('clientError', (_err, s) => s.destroy());
  if (opts.halfOpen) (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  ({ port: origin.port, close: origin.close } = await listenLocal(server));
  return origin;
}

// ---------------------------------------------------------------------------------------------
// transfers

export function connectTcp(port: number, host = LOCAL, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, localAddress, allowHalfOpen: true, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/**
 * Sends `data` through a TCP echo path and reads it back without half-closing first (the
 * write side is closed only after everything came back). Resolves with the echoed bytes.
 */
export async function tcpEcho(port: number, data: Buffer, timeoutMs = 60_000): Promise<Buffer> {
  const sock = await connectTcp(port);
  sock.on('error', () => undefined);
  try {
    sock.write(data);
    const got = await readN(sock, data.length, timeoutMs);
    sock.resume();
    sock.end();
    return got;
  } finally {
    setTimeout(() => sock.destroy(), 2_000).unref();
  }
}

/** Decodes an HTTP/1.1 chunked body (the chunk data, without the framing). */
export function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  for (;;) {
    const nl = buf.indexOf('\r\n', i);
    if (nl < 0) break;
    const size = parseInt(buf.subarray(i, nl).toString(), 16);
    if (!size) break;
    out.push(buf.subarray(nl + 2, nl + 2 + size));
    i = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  complete: boolean;
}

/** One request on a fresh connection (no agent) to 127.0.0.1:`port`. */
export async function request(
  port: number,
  opts: { host: string; path?: string; method?: string; body?: Buffer | string; headers?: Record<string, string>; timeoutMs?: number; localAddress?: string },
): Promise<HttpResponse> {
  const headers: Record<string, string> = { host: opts.host, ...(opts.headers ?? {}) };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const { res, body } = await httpCall(
    {
      host: LOCAL,
      port,
      path: opts.path ?? '/',
      method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
      headers,
      agent: false,
      setHost: false,
      localAddress: opts.localAddress,
    },
    opts.body,
    opts.timeoutMs ?? 15_000,
  );
  return { status: res.statusCode ?? 0, headers: res.headers, body, complete: res.complete };
}

/**
 * A raw exchange: connects, writes `data`, collects everything until the peer closes or
 * `timeoutMs` passes. `closedAfterMs` is undefined when the peer never closed.
 */
export async function rawExchange(
  port: number,
  data: Buffer | string,
  timeoutMs = 5_000,
  localAddress?: string,
): Promise<{ data: Buffer; closedAfterMs?: number }> {
  const sock = await connectTcp(port, LOCAL, localAddress);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closedAfterMs: closed ? Date.now() - t0 : undefined });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => finish(true));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    if (data.length) sock.write(data);
  });
}

/** Lines at warn level or above (pino's "level" field) whose msg matches `re`. */
export function warnings(p: BurrowProcess, re: RegExp, from = 0): LogLine[] {
  return p.filter((l) => (l.level === 'warn' || l.level === 'error' || l.level === 'fatal') && re.test(String(l.msg)), from);
}
