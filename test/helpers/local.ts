/**
 * Pieces shared by the tests that run real burrow processes next to local services (test/e2e,
 * test/reliability, test/soak): the loopback address, a tracked local server whose close()
 * also drops its connections, and the YAML of a tunnel client (`-C`) whose reverse services
 * forward to local targets.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

/** The address every local service listens on and every process is reached at. */
export const LOCAL = '127.0.0.1';

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** SHA-256 of `b`, hex. */
export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// local servers

export interface LocalServer {
  port: number;
  /** The connections accepted and not closed yet. */
  sockets: Set<net.Socket>;
  /** Destroys every open connection, then closes the server. */
  close(): Promise<void>;
}

/**
 * Tracks the connections of `server` (a net or http server, handlers already attached) and
 * listens on 127.0.0.1 with an OS-assigned port. Rejects if it cannot listen.
 */
export function listenLocal(server: net.Server): Promise<LocalServer> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOCAL, () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as net.AddressInfo).port,
        sockets,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP client

/** A response read to its end, with what its request knew about the socket at that moment. */
export interface HttpCall {
  res: http.IncomingMessage;
  body: Buffer;
  /** True when the request went over a reused keep-alive socket. */
  reused: boolean;
  socket: net.Socket;
}

/**
 * Sends one request with node:http (`options` as given, then `body` if any) and reads the
 * response to its end. Rejects on an error, or after `timeoutMs` (the request is destroyed).
 */
export function httpCall(options: http.RequestOptions, body: Buffer | string | undefined, timeoutMs: number): Promise<HttpCall> {
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ res, body: Buffer.concat(chunks), reused: req.reusedSocket, socket: req.socket! });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`HTTP request timed out after ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// client YAML

/** A forwarder node: where a reverse service sends a stream, optionally only for one host. */
export interface TargetNode {
  name: string;
  /** host:port */
  addr: string;
  /** `filter.host`: the node serves the streams for this host (HTTP Host / TLS SNI) only. */
  host?: string;
}

/** A reverse service (`rtcp` or `rudp`) of a tunnel client and its forwarder nodes. */
export interface ReverseService {
  name: string;
  type: 'rtcp' | 'rudp';
  /** `handler.metadata`, e.g. `{ sendTimeout: '3s' }`. */
  handlerMetadata?: Record<string, string>;
  nodes: readonly TargetNode[];
}

/**
 * The config of a tunnel client: the given reverse services, each listening on `:0` through
 * `chain-0`, whose one node dials the tunnel server at 127.0.0.1:`serverPort` over TCP with
 * `tunnel.id: <tunnelId>`.
 */
export function tunnelClientYaml(serverPort: number, tunnelId: string, services: readonly ReverseService[]): string {
  const service = (s: ReverseService): string => {
    const meta = Object.entries(s.handlerMetadata ?? {});
    const metadata = meta.length ? `    metadata:\n${meta.map(([k, v]) => `      ${k}: ${v}\n`).join('')}` : '';
    const nodes = s.nodes
      .map((n) => `    - name: ${n.name}\n      addr: ${n.addr}\n${n.host ? `      filter:\n        host: ${n.host}\n` : ''}`)
      .join('');
    return `- name: ${s.name}
  addr: :0
  handler:
    type: ${s.type}
${metadata}  listener:
    type: ${s.type}
    chain: chain-0
  forwarder:
    nodes:
${nodes}`;
  };
  return `services:
${services.map(service).join('')}chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: ${LOCAL}:${serverPort}
      connector:
        type: tunnel
        metadata:
          tunnel.id: ${tunnelId}
      dialer:
        type: tcp
`;
}
