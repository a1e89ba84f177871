/**
 * Loopback fixtures for the smux integration tests: a connected TCP socket pair on 127.0.0.1
 * and a Session on each end.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Session } from '../../../src/protocol/smux/session';
import type { SmuxConfig } from '../../../src/protocol/smux/config';
import type { Stream } from '../../../src/protocol/smux/stream';

/** Two connected sockets (TCP_NODELAY on both); the listener is closed once they exist. */
export async function tcpPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [srv] = await accepted;
  server.close();
  client.setNoDelay(true);
  srv.setNoDelay(true);
  return [client, srv];
}

export interface SessionPair {
  client: Session;
  server: Session;
  clientSocket: net.Socket;
  serverSocket: net.Socket;
  close(): void;
}

/** An smux client session and server session over one loopback TCP connection. */
export async function sessionPair(config?: Partial<SmuxConfig>, serverConfig?: Partial<SmuxConfig>): Promise<SessionPair> {
  const [a, b] = await tcpPair();
  const client = new Session(a, { client: true, config });
  const server = new Session(b, { client: false, config: serverConfig ?? config });
  return {
    client,
    server,
    clientSocket: a,
    serverSocket: b,
    close() {
      client.destroy();
      server.destroy();
    },
  };
}

/** Resolves with the next stream the session accepts. */
export function nextStream(s: Session): Promise<Stream> {
  return new Promise((resolve) => s.once('stream', resolve));
}

/** Reads a stream to its end. */
export async function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every few ms until it holds or `timeoutMs` passes (then throws). */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
