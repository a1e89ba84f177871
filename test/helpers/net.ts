/**
 * Small socket helpers for tests. Everything listens on 127.0.0.1 port 0; whoever calls a
 * `listen*` helper registers its `close()` in `after`/`t.after`.
 */
import { createHash, randomBytes as cryptoRandomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { Writable, type Duplex, type Readable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { listenLocal } from './local';

export interface TestServer {
  port: number;
  /** Closes the server and destroys every connection it accepted. */
  close(): Promise<void>;
}

/** A TCP echo server on 127.0.0.1:0. A half-close from the client is echoed back as one. */
export async function listenEcho(): Promise<TestServer> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    sock.on('error', () => undefined);
    sock.pipe(sock);
  });
  const { port, close } = await listenLocal(server);
  return { port, close };
}

/** A UDP echo server on 127.0.0.1:0: every datagram is sent back to its sender. */
export function listenUdpEcho(): Promise<TestServer> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      resolve({
        port: sock.address().port,
        close: () => new Promise<void>((res) => sock.close(() => res())),
      });
    });
  });
}

/** Connects to 127.0.0.1:`port` (or `host`); resolves once connected. Half-open allowed. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host, allowHalfOpen: true, noDelay: true });
    sock.once('connect', () => {
      sock.off('error', reject);
      resolve(sock);
    });
    sock.once('error', reject);
  });
}

/** Reads a stream to its end; rejects on error or if it closes without an end. */
export function readAll(stream: Readable | Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let done = false;
    stream.on('data', (c: Buffer) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.once('end', () => {
      done = true;
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (err) => {
      if (!done) reject(err);
    });
    stream.once('close', () => {
      if (!done) reject(new Error(`stream closed before end after ${Buffer.concat(chunks).length} bytes`));
    });
    stream.resume();
  });
}

/** Reads until at least `n` bytes arrived; resolves with exactly those bytes consumed so far. */
export function readN(stream: Readable | Duplex, n: number, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${n} bytes (got ${have})`)), timeoutMs);
    const onData = (c: Buffer): void => {
      chunks.push(c);
      have += c.length;
      if (have >= n) finish();
    };
    const onEnd = (): void => finish(new Error(`stream ended after ${have} of ${n} bytes`));
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', finish);
      if (err) reject(err);
      else {
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', finish);
    stream.resume();
  });
}

export function sha256(buf: Buffer | Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

export function randomBytes(n: number): Buffer {
  return cryptoRandomBytes(n);
}

/** Polls `fn` until it returns true; rejects after `timeoutMs`. */
export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves when `emitter` emits `event`, rejects after `timeoutMs`. */
export function once<T = unknown>(
  emitter: NodeJS.EventEmitter,
  event: string,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${timeoutMs}ms waiting for '${event}'`));
    }, timeoutMs);
    const on = (v: T): void => {
      clearTimeout(timer);
      resolve(v);
    };
    emitter.once(event, on);
  });
}

export interface MemoryLogger {
  logger: Logger;
  /** Parsed JSON log lines so far. */
  lines: Array<Record<string, unknown>>;
}

/** A pino logger (level `debug` unless given) that keeps its lines in memory as objects. */
export function memoryLogger(level = 'debug'): MemoryLogger {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = pino(
    { level, base: undefined, formatters: { level: (label) => ({ level: label }) } },
    sink,
  );
  return { logger, lines };
}
