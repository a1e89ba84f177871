/**
 * Helpers for the compatibility tests that replay the gost 3.2.6 captures (shared/vectors)
 * against a burrow running in-process, over real sockets on 127.0.0.1:
 *
 * - `startBurrow(['-L urls'], ['-F urls'])`: an App built the way the CLI builds it;
 * - `Inbox`: everything a socket (or a WebSocket) delivered so far, read by condition;
 * - `SmuxLog`: the smux frames a peer sent, decoded as they arrive;
 * - `WsPeer`: the raw side of a WebSocket (our own framing, so the test sees every message);
 * - byte comparison with variable ranges, relay feature offsets, HTTP head parsing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { App } from '../../src/app/app';
import { buildConfigFromCli } from '../../src/cli/build';
import { createLogger, silentLogger } from '../../src/observe/logger';
import { loadChunks, loadVector, parseSmuxFrames, type SmuxFrame } from './vectors';

export { loadVector, loadChunks };

export const HTTP_TUNNEL = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
export const TCP_TUNNEL = '7b3e6b4a-2b0d-4a4f-9a64-3b4f1c0d2e11';
export const UDP_TUNNEL = '0f8c2d55-6a7e-4c1b-8e9f-5d2a3b4c6d7e';

/** The ingress of the capture's server command (vectors README). */
export const CAPTURE_TUNNELS =
  `.example.com:${HTTP_TUNNEL},ssh.srv-2.local:$${TCP_TUNNEL},udp.srv-3.local:$${UDP_TUNNEL}`;

/** The capture's server command with OS-chosen ports: `<scheme>://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=…`. */
export function captureServerUrl(scheme = 'tunnel'): string {
  return `${scheme}://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=${CAPTURE_TUNNELS}`;
}

export const DEFAULT_TIMEOUT_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// burrow in-process

export interface RunningBurrow {
  app: App;
  /** Listen address of service `i` ("127.0.0.1:34567"). */
  address(i?: number): string;
  port(i?: number): number;
  /** Address of the first entry point of the tunnel handler of service `i`. */
  entrypoint(i?: number): string;
  entrypointPort(i?: number): number;
  stop(): Promise<void>;
}

export function portOf(addr: string): number {
  const m = /:(\d+)$/.exec(addr);
  if (!m) throw new Error(`no port in "${addr}"`);
  return Number(m[1]);
}

/** Builds the config from gost-style -L / -F URLs (as the CLI does), then starts it. */
export async function startBurrow(listen: string[], forward: string[] = [], logger: Logger = silentLogger): Promise<RunningBurrow> {
  const app = new App(buildConfigFromCli(listen, forward), logger);
  await app.start();
  let stopped = false;
  const self: RunningBurrow = {
    app,
    address: (i = 0) => app.services[i]!.address(),
    port: (i = 0) => portOf(self.address(i)),
    entrypoint: (i = 0) => {
      const h = app.built.tunnelHandlers.get(app.services[i]!.name);
      const ep = h?.entryPoints[0];
      if (!ep) throw new Error(`service ${i} has no entry point`);
      return ep.address();
    },
    entrypointPort: (i = 0) => portOf(self.entrypoint(i)),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await app.stop(0);
    },
  };
  return self;
}

/** A JSON logger (burrow's own format) that keeps its lines as objects. */
export function capturingLogger(level = 'debug'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { logger: createLogger({ level }, sink as unknown as Parameters<typeof createLogger>[1]), lines };
}

// ---------------------------------------------------------------------------------------------
// sockets

/** Connects to 127.0.0.1:port (half-open allowed, no Nagle). */
export function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export interface FakeServer {
  port: number;
  /** The next accepted connection (in accept order). */
  accept(timeoutMs?: number): Promise<net.Socket>;
  close(): Promise<void>;
}

/** A raw TCP server on 127.0.0.1:0 that queues its connections for the test. */
export function listenRaw(): Promise<FakeServer> {
  const queue: net.Socket[] = [];
  const waiters: Array<(s: net.Socket) => void> = [];
  const all = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    all.add(s);
    s.on('close', () => all.delete(s));
    s.on('error', () => undefined);
    const w = waiters.shift();
    if (w) w(s);
    else queue.push(s);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as net.AddressInfo).port,
        accept: (timeoutMs = DEFAULT_TIMEOUT_MS) =>
          new Promise<net.Socket>((res, rej) => {
            const s = queue.shift();
            if (s) {
              res(s);
              return;
            }
            const timer = setTimeout(() => {
              const i = waiters.indexOf(w);
              if (i >= 0) waiters.splice(i, 1);
              rej(new Error(`no connection accepted within ${timeoutMs} ms`));
            }, timeoutMs);
            const w = (sock: net.Socket): void => {
              clearTimeout(timer);
              res(sock);
            };
            waiters.push(w);
          }),
        close: () =>
          new Promise<void>((res) => {
            for (const s of all) s.destroy();
            server.close(() => res());
          }),
      });
    });
  });
}

/** A bound UDP socket on 127.0.0.1:0 whose datagrams are read in order. */
export async function udpSocket(): Promise<{
  socket: dgram.Socket;
  port: number;
  next(timeoutMs?: number): Promise<Buffer>;
  close(): void;
}> {
  const socket = dgram.createSocket('udp4');
  const inbox: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  socket.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  return {
    socket,
    port: socket.address().port,
    next: (timeoutMs = DEFAULT_TIMEOUT_MS) =>
      new Promise<Buffer>((res, rej) => {
        const m = inbox.shift();
        if (m) {
          res(m);
          return;
        }
        const timer = setTimeout(() => rej(new Error(`no datagram within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((b) => {
          clearTimeout(timer);
          res(b);
        });
      }),
    close: () => {
      try {
        socket.close();
      } catch {
        /* closed */
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Inbox: bytes received so far, consumed from the front

export class Inbox {
  #buf = Buffer.alloc(0);
  #ended = false;
  #error: Error | undefined;
  #total = 0;
  readonly #waiters = new Set<() => void>();

  /** Collects the 'data' of `src` (a socket) from now on. */
  static of(src: EventEmitter): Inbox {
    const box = new Inbox();
    src.on('data', (c: Buffer) => box.push(c));
    src.once('end', () => box.end());
    src.once('close', () => box.end());
    src.on('error', (e: Error) => box.fail(e));
    return box;
  }

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk);
    this.#total += chunk.length;
    this.#wake();
  }

  end(): void {
    this.#ended = true;
    this.#wake();
  }

  fail(err: Error): void {
    this.#error ??= err;
    this.#wake();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Bytes not yet consumed. */
  get buffered(): Buffer {
    return this.#buf;
  }

  /** Every byte ever received. */
  get totalBytes(): number {
    return this.#total;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Removes and returns the first `n` buffered bytes (they must be there). */
  take(n: number): Buffer {
    if (n > this.#buf.length) throw new Error(`take(${n}) with ${this.#buf.length} bytes buffered`);
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /**
   * Waits until `fn(buffered)` returns something other than undefined (checked on every
   * arrival); rejects on timeout, or on end/error while it still returns undefined.
   */
  waitFor<T>(fn: (buf: Buffer, ended: boolean) => T | undefined, what: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        let v: T | undefined;
        try {
          v = fn(this.#buf, this.#ended);
        } catch (err) {
          done();
          reject(err as Error);
          return true;
        }
        if (v !== undefined) {
          done();
          resolve(v);
          return true;
        }
        if (this.#ended || this.#error) {
          done();
          const why = this.#error ? `error ${this.#error.message}` : 'end of stream';
          reject(new Error(`${why} while waiting for ${what}; ${this.#buf.length} bytes buffered: ${preview(this.#buf)}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.#buf.length} bytes buffered: ${preview(this.#buf)}`));
      }, timeoutMs);
      const waiter = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      this.#waiters.add(waiter);
      check();
    });
  }

  /** Exactly `n` bytes (consumed). */
  async read(n: number, what = `${n} bytes`, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    await this.waitFor((b) => (b.length >= n ? true : undefined), what, timeoutMs);
    return this.take(n);
  }

  /** One relay message (4-byte header + FEALEN), consumed. */
  async readRelay(what = 'a relay message', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    const len = await this.waitFor((b) => (b.length >= 4 && b.length >= 4 + b.readUInt16BE(2) ? 4 + b.readUInt16BE(2) : undefined), what, timeoutMs);
    return this.take(len);
  }

  /** Resolves when the peer ended (or closed) the stream; returns what was left unread. */
  async waitEnd(what = 'end of stream', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    await new Promise<void>((resolve, reject) => {
      if (this.#ended) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const w = (): void => {
        if (!this.#ended) return;
        clearTimeout(timer);
        this.#waiters.delete(w);
        resolve();
      };
      this.#waiters.add(w);
    });
    return this.take(this.#buf.length);
  }
}

function preview(b: Buffer): string {
  return b.length > 96 ? `${b.subarray(0, 96).toString('hex')}…` : b.toString('hex');
}

// ---------------------------------------------------------------------------------------------
// smux

export const SYN = 0;
export const FIN = 1;
export const PSH = 2;
export const NOP = 3;
export const UPD = 4;
const CMD_NAMES = ['SYN', 'FIN', 'PSH', 'NOP', 'UPD'];

export function cmdName(cmd: number): string {
  return CMD_NAMES[cmd] ?? `cmd${cmd}`;
}

/** One smux frame as bytes (`ver cmd len(LE16) sid(LE32) data`). */
export function smuxFrame(cmd: number, sid: number, data: Buffer = Buffer.alloc(0), ver = 2): Buffer {
  const h = Buffer.alloc(8);
  h[0] = ver;
  h[1] = cmd;
  h.writeUInt16LE(data.length, 2);
  h.writeUInt32LE(sid, 4);
  return Buffer.concat([h, data]);
}

/** Every smux frame in `buf` (which must hold whole frames only). */
export function decodeFrames(buf: Buffer): SmuxFrame[] {
  const { frames, rest } = parseSmuxFrames(buf);
  if (rest.length) throw new Error(`${rest.length} trailing bytes after the smux frames`);
  return frames;
}

/** Short text of a frame list: "SYN 3, PSH 3 (36), UPD 3 (consumed=4 window=1048576), FIN 3". */
export function describeFrames(frames: readonly SmuxFrame[]): string {
  return frames
    .map((f) => {
      if (f.cmd === UPD && f.data.length === 8) {
        return `UPD ${f.sid} (consumed=${f.data.readUInt32LE(0)} window=${f.data.readUInt32LE(4)})`;
      }
      return f.cmd === PSH ? `PSH ${f.sid} (${f.data.length})` : `${cmdName(f.cmd)} ${f.sid}`;
    })
    .join(', ');
}

/**
 * The frame sequence as compared between burrow and gost: NOPs (keepalive timing) dropped,
 * runs of PSH frames of one stream collapsed into one entry (how a payload is cut into PSH
 * frames depends on write granularity, like TCP chunking), UPD payloads left out.
 */
export function frameShape(frames: readonly SmuxFrame[]): string[] {
  const out: string[] = [];
  for (const f of frames) {
    if (f.cmd === NOP) continue;
    const key = `${cmdName(f.cmd)} ${f.sid}`;
    if (f.cmd === PSH && out[out.length - 1] === key) continue;
    out.push(key);
  }
  return out;
}

/** Concatenated PSH payload per stream id. */
export function streamPayloads(frames: readonly SmuxFrame[]): Map<number, Buffer> {
  const m = new Map<number, Buffer[]>();
  for (const f of frames) {
    if (f.cmd !== PSH) continue;
    const l = m.get(f.sid) ?? [];
    l.push(f.data);
    m.set(f.sid, l);
  }
  return new Map([...m].map(([k, v]) => [k, Buffer.concat(v)]));
}

/**
 * Frames decoded from an Inbox as they arrive (the Inbox must be positioned at a frame
 * boundary, i.e. after the relay exchange). `frames` holds every frame so far, NOPs included.
 */
export class SmuxLog {
  readonly frames: SmuxFrame[] = [];

  constructor(readonly inbox: Inbox) {}

  #drain(): void {
    const { frames, rest } = parseSmuxFrames(this.inbox.buffered);
    if (frames.length) {
      this.inbox.take(this.inbox.buffered.length - rest.length);
      this.frames.push(...frames);
    }
  }

  /** Waits until `pred(frames)` holds; returns the frames so far. */
  async until(pred: (frames: SmuxFrame[]) => boolean, what: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmuxFrame[]> {
    try {
      return await this.inbox.waitFor(
        () => {
          this.#drain();
          return pred(this.frames) ? this.frames : undefined;
        },
        what,
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; frames so far: [${describeFrames(this.frames)}]`, { cause: err });
    }
  }

  /** Waits until a frame with `cmd` on `sid` arrived. */
  waitFrame(cmd: number, sid: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmuxFrame[]> {
    return this.until((fs) => fs.some((f) => f.cmd === cmd && f.sid === sid), `${cmdName(cmd)} ${sid}`, timeoutMs);
  }

  /** Waits until the PSH payload of `sid` is at least `n` bytes long. */
  waitPayload(sid: number, n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<SmuxFrame[]> {
    return this.until((fs) => (streamPayloads(fs).get(sid)?.length ?? 0) >= n, `${n} payload bytes on stream ${sid}`, timeoutMs);
  }

  /** Frames other than NOP. */
  get significant(): SmuxFrame[] {
    return this.frames.filter((f) => f.cmd !== NOP);
  }
}

/**
 * Checks a UPD frame structurally: 8 bytes, window 1048576 (the gost tunnel's per-stream
 * buffer), consumed > 0 and ≤ what was sent on the stream. The exact `consumed` depends on
 * read granularity and is not compared.
 */
export function assertUpd(frame: SmuxFrame, sid: number, sentOnStream: number, what: string): void {
  assert.equal(frame.cmd, UPD, `${what}: not a UPD`);
  assert.equal(frame.sid, sid, `${what}: stream id`);
  assert.equal(frame.data.length, 8, `${what}: UPD payload length`);
  const consumed = frame.data.readUInt32LE(0);
  const window = frame.data.readUInt32LE(4);
  assert.equal(window, 1_048_576, `${what}: UPD window`);
  assert.ok(consumed > 0 && consumed <= sentOnStream, `${what}: UPD consumed=${consumed}, ${sentOnStream} bytes were sent on the stream`);
}

/** The frames of `capture` (one direction of a plain-TCP capture) after its first relay message. */
export function captureFrames(capture: Buffer): { relay: Buffer; frames: SmuxFrame[] } {
  const len = 4 + capture.readUInt16BE(2);
  return { relay: capture.subarray(0, len), frames: decodeFrames(capture.subarray(len)) };
}

/** Byte offset of each frame of `capture` after its first relay message (for replaying slices). */
export function frameOffsets(capture: Buffer): number[] {
  const out: number[] = [];
  let pos = 4 + capture.readUInt16BE(2);
  while (pos < capture.length) {
    out.push(pos);
    pos += 8 + capture.readUInt16LE(pos + 2);
  }
  out.push(pos);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Relay messages: where the variable fields are

export interface FeatureSpan {
  type: number;
  /** Offset of the feature's type byte in the message. */
  start: number;
  /** Offset of the first value byte. */
  value: number;
  /** End of the feature (exclusive). */
  end: number;
}

/** The features of a relay message (request or response) with their offsets. */
export function featureSpans(msg: Buffer): FeatureSpan[] {
  const total = 4 + msg.readUInt16BE(2);
  const out: FeatureSpan[] = [];
  let pos = 4;
  while (pos < total) {
    const len = msg.readUInt16BE(pos + 1);
    out.push({ type: msg[pos]!, start: pos, value: pos + 3, end: pos + 3 + len });
    pos += 3 + len;
  }
  return out;
}

export const FEATURE_ADDR = 2;
export const FEATURE_TUNNEL = 3;
export const FEATURE_NETWORK = 4;

/** [start, end) of the port of the `n`-th Addr feature of a relay message. */
export function addrPortRange(msg: Buffer, n = 0): [number, number] {
  const addrs = featureSpans(msg).filter((f) => f.type === FEATURE_ADDR);
  const f = addrs[n];
  if (!f) throw new Error(`relay message has no Addr feature #${n}`);
  return [f.end - 2, f.end];
}

/** [start, end) of the 16 UUID bytes of the Tunnel feature. */
export function tunnelUuidRange(msg: Buffer): [number, number] {
  const f = featureSpans(msg).find((s) => s.type === FEATURE_TUNNEL);
  if (!f) throw new Error('relay message has no Tunnel feature');
  return [f.value, f.value + 16];
}

/** The port carried by the `n`-th Addr feature. */
export function addrPort(msg: Buffer, n = 0): number {
  const [s] = addrPortRange(msg, n);
  return msg.readUInt16BE(s);
}

/** Hex of `buf` with the bytes in `variable` ranges shown as `..`. */
export function maskedHex(buf: Buffer, variable: ReadonlyArray<readonly [number, number]>): string {
  const parts: string[] = [];
  for (let i = 0; i < buf.length; i++) {
    parts.push(variable.some(([s, e]) => i >= s && i < e) ? '..' : buf[i]!.toString(16).padStart(2, '0'));
  }
  return parts.join('');
}

/**
 * Asserts `actual` equals `expected` byte for byte except inside `variable` ranges (offsets in
 * both buffers); the message names the first differing offset.
 */
export function assertBytes(
  actual: Buffer,
  expected: Buffer,
  what: string,
  variable: ReadonlyArray<readonly [number, number]> = [],
): void {
  const a = maskedHex(actual, variable);
  const e = maskedHex(expected, variable);
  if (a === e) return;
  let first = 0;
  while (first < Math.min(actual.length, expected.length) && a.slice(first * 2, first * 2 + 2) === e.slice(first * 2, first * 2 + 2)) first++;
  assert.equal(
    a,
    e,
    `${what}: ${actual.length} bytes vs ${expected.length} expected; first difference at offset ${first}`,
  );
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface HttpHead {
  startLine: string;
  /** Header lines in order, as [name, value]. */
  headers: Array<[string, string]>;
  /** Length of the head including the blank line. */
  length: number;
}

/** Parses an HTTP head at the start of `buf`, or undefined when it is incomplete. */
export function parseHead(buf: Buffer): HttpHead | undefined {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const headers = lines.slice(1).map((l): [string, string] => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()];
  });
  return { startLine: lines[0]!, headers, length: end + 4 };
}

export function headerValue(head: HttpHead, name: string): string | undefined {
  return head.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}

/** Reads one HTTP response (head + Content-Length body) off an Inbox. */
export async function readHttpResponse(inbox: Inbox, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ head: HttpHead; body: Buffer; raw: Buffer }> {
  const r = await inbox.waitFor(
    (buf, ended) => {
      const head = parseHead(buf);
      if (!head) return undefined;
      const cl = headerValue(head, 'content-length');
      if (cl !== undefined) return buf.length >= head.length + Number(cl) ? { head, len: head.length + Number(cl) } : undefined;
      return ended ? { head, len: buf.length } : undefined;
    },
    'an HTTP response',
    timeoutMs,
  );
  const raw = inbox.take(r.len);
  return { head: r.head, body: raw.subarray(r.head.length), raw };
}

// ---------------------------------------------------------------------------------------------
// WebSocket, raw

export interface WsMessage {
  /** First header byte (0x82 = FIN + binary). */
  b0: number;
  masked: boolean;
  payload: Buffer;
  /** The frame exactly as received. */
  raw: Buffer;
}

/** Parses one WebSocket frame at the start of `buf`, or undefined when incomplete. */
export function parseWsFrame(buf: Buffer): { msg: WsMessage; length: number } | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  let len = b1 & 0x7f;
  let p = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    p = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    p = 10;
  }
  const masked = (b1 & 0x80) !== 0;
  const mask = masked ? buf.subarray(p, p + 4) : undefined;
  if (masked) p += 4;
  if (buf.length < p + len) return undefined;
  const payload = Buffer.from(buf.subarray(p, p + len));
  if (mask) for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  return { msg: { b0, masked, payload, raw: Buffer.from(buf.subarray(0, p + len)) }, length: p + len };
}

/** One binary message, masked with `mask` when given (client → server). */
export function wsFrame(payload: Buffer, mask?: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? Buffer.alloc(0) : Buffer.alloc(2);
  if (len >= 126) ext.writeUInt16BE(len);
  const b1 = (mask ? 0x80 : 0) | (len < 126 ? len : 126);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x82, b1]), ext, mask ?? Buffer.alloc(0), body]);
}

export function wsAccept(key: string): string {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/**
 * The raw side of a WebSocket connection after the HTTP upgrade: every message the peer sends
 * is kept (`messages`) and its payload goes into `payload`, an Inbox of the byte stream.
 */
export class WsPeer {
  readonly messages: WsMessage[] = [];
  readonly payload = new Inbox();
  #pending = Buffer.alloc(0);

  /**
   * `raw`: the Inbox of `socket`, positioned right after the HTTP head (its buffered bytes are
   * the first WebSocket bytes). From now on the WsPeer consumes it.
   */
  constructor(readonly socket: net.Socket, raw: Inbox) {
    const feed = (): void => {
      const b = raw.buffered;
      if (b.length) this.#pending = Buffer.concat([this.#pending, raw.take(b.length)]);
      for (;;) {
        const f = parseWsFrame(this.#pending);
        if (!f) break;
        this.#pending = this.#pending.subarray(f.length);
        this.messages.push(f.msg);
        if ((f.msg.b0 & 0x0f) === 0x08) this.payload.end();
        else if ((f.msg.b0 & 0x0f) <= 0x02) this.payload.push(f.msg.payload);
      }
    };
    // Registered after the Inbox's own listeners, so `raw` already holds each chunk.
    socket.on('data', feed);
    socket.once('end', () => this.payload.end());
    socket.once('close', () => this.payload.end());
    feed();
  }

  /** Sends one binary message (masked with `mask` when given). */
  send(payload: Buffer, mask?: Buffer): Promise<void> {
    return send(this.socket, wsFrame(payload, mask));
  }
}

/**
 * Checks how a WebSocket peer cut its byte stream into messages against the units gost writes
 * one per message: the first relay message, then one smux frame each. Returns 'one-per-message'
 * when every message holds exactly one unit, otherwise a description. `split` lists messages
 * that end inside a unit (a unit spread over several messages); `batched` messages holding
 * more than one unit.
 */
export function wsMessageUnits(messages: readonly WsMessage[]): { exact: boolean; split: string[]; batched: string[]; units: number[] } {
  const data = messages.filter((m) => (m.b0 & 0x0f) <= 0x02);
  const stream = Buffer.concat(data.map((m) => m.payload));
  // Unit boundaries: relay message, then smux frames.
  const bounds = new Set<number>([0]);
  let pos = 0;
  if (stream.length >= 4 && stream[0] === 0x01) {
    pos = 4 + stream.readUInt16BE(2);
    bounds.add(pos);
  }
  const units: number[] = [];
  while (stream.length - pos >= 8) {
    const len = 8 + stream.readUInt16LE(pos + 2);
    units.push(len);
    pos += len;
    bounds.add(pos);
  }
  const split: string[] = [];
  const batched: string[] = [];
  let off = 0;
  data.forEach((m, i) => {
    const start = off;
    off += m.payload.length;
    if (!bounds.has(off)) split.push(`message #${i} (${m.payload.length} bytes at ${start}) ends inside a frame`);
    let inside = 0;
    for (const b of bounds) if (b > start && b < off) inside++;
    if (inside > 0) batched.push(`message #${i} (${m.payload.length} bytes) holds ${inside + 1} units`);
  });
  return { exact: split.length === 0 && batched.length === 0, split, batched, units };
}

// ---------------------------------------------------------------------------------------------
// misc

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Writes and waits until the bytes were handed to the kernel. */
export function send(sock: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => sock.write(data, (err) => (err ? reject(err) : resolve())));
}

/**
 * Bytes of frames [from, to) of one direction of a plain-TCP capture (frame 0 = the first
 * smux frame after the relay message), for replaying part of a session.
 */
export function frameBytes(capture: Buffer, from: number, to?: number): Buffer {
  const offs = frameOffsets(capture);
  const end = to === undefined ? offs[offs.length - 1]! : offs[to]!;
  return capture.subarray(offs[from]!, end);
}
