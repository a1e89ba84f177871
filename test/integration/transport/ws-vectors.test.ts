/**
 * Replays the gost 3.2.6 WebSocket captures (ws-transport, see test/helpers/vectors.ts) against our ws
 * listener and dialer over raw TCP sockets on 127.0.0.1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Metadata } from '../../../src/core/metadata';
import type { Conn } from '../../../src/core/transport';
import { createWsDialer, createWsListener } from '../../../src/transport/ws';
import { connect, memoryLogger, readN, waitFor } from '../../helpers/net';
import { loadVector, vectorsAvailable } from '../../helpers/vectors';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const skip = vectorsAvailable() ? false : 'gost captures not found (set BURROW_VECTORS_DIR)';

interface Frame {
  b0: number;
  masked: boolean;
  payload: Buffer;
}

/** Splits raw WebSocket bytes into frames, unmasking client frames. Stops at a partial frame. */
function parseFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off]!;
    const b1 = buf[off + 1]!;
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length < p + 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length < p + 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const mask = masked ? buf.subarray(p, p + 4) : undefined;
    if (masked) p += 4;
    if (buf.length < p + len) break;
    const payload = Buffer.from(buf.subarray(p, p + len));
    if (mask) for (let i = 0; i < len; i++) payload[i]! ^= mask[i % 4]!;
    frames.push({ b0, masked, payload });
    off = p + len;
  }
  return { frames, rest: buf.subarray(off) };
}

function splitHead(buf: Buffer): { head: string; body: Buffer } {
  const end = buf.indexOf('\r\n\r\n');
  assert.ok(end > 0, 'no HTTP head');
  return { head: buf.subarray(0, end).toString('latin1'), body: buf.subarray(end + 4) };
}

function headerMap(head: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    m.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return m;
}

/**
 * Byte positions of `plain` that legitimately change between two gost runs: the Addr
 * feature's source port (bytes 12–13 of the BIND) and the values of HTTP headers that carry
 * times or per-run IDs.
 */
function volatilePositions(plain: Buffer): Set<number> {
  const out = new Set<number>([12, 13]);
  const text = plain.toString('latin1');
  for (const name of ['Date: ', 'Last-Modified: ']) {
    let i = text.indexOf(name);
    while (i >= 0) {
      const eol = text.indexOf('\r\n', i);
      for (let p = i; p < eol; p++) out.add(p);
      i = text.indexOf(name, eol);
    }
  }
  return out;
}

const empty = 'GET / HTTP/1.1\r\n\r\n';
const c2s = skip ? Buffer.from(empty) : loadVector('ws-transport', 'client-conn1.c2s');
const s2c = skip ? Buffer.from(empty) : loadVector('ws-transport', 'client-conn1.s2c');
const plainC2s = skip ? Buffer.alloc(0) : loadVector('http-entrypoint', 'client-conn1.c2s');
const c2sSplit = splitHead(c2s);
const s2cSplit = splitHead(s2c);
const c2sFrames = parseFrames(c2sSplit.body).frames;
const s2cFrames = parseFrames(s2cSplit.body).frames;
const c2sPayload = Buffer.concat(c2sFrames.map((f) => f.payload));
const s2cPayload = Buffer.concat(s2cFrames.map((f) => f.payload));

describe('ws vectors: the captures themselves', { skip }, () => {
  it('gost frames every write as one binary message, masked client→server only', () => {
    assert.ok(c2sFrames.length > 0 && s2cFrames.length > 0);
    for (const f of c2sFrames) assert.deepEqual([f.b0, f.masked], [0x82, true]);
    for (const f of s2cFrames) assert.deepEqual([f.b0, f.masked], [0x82, false]);
  });

  it('the unmasked client payload is the plain-TCP capture, up to per-run values', () => {
    assert.equal(c2sPayload.length, plainC2s.length);
    const volatile = volatilePositions(plainC2s);
    for (let i = 0; i < plainC2s.length; i++) {
      if (c2sPayload[i] !== plainC2s[i]) assert.ok(volatile.has(i), `unexpected difference at byte ${i}`);
    }
    // The fixed parts: relay BIND header and the tunnel feature.
    assert.deepEqual(c2sPayload.subarray(0, 4), plainC2s.subarray(0, 4));
    assert.deepEqual(c2sPayload.subarray(14, 44), plainC2s.subarray(14, 44));
  });
});

describe('ws listener fed the gost client bytes', { skip }, () => {
  const { logger } = memoryLogger('warn');
  const listener = createWsListener({ addr: '127.0.0.1:0', metadata: new Metadata({}), logger });
  const conns: Conn[] = [];
  const sockets: net.Socket[] = [];

  before(async () => {
    await listener.listen((conn) => {
      conns.push(conn);
      conn.stream.on('error', () => undefined);
    });
  });
  after(async () => {
    await listener.close();
    for (const c of conns) c.stream.destroy();
    for (const s of sockets) s.destroy();
  });

  it('answers 101 and delivers exactly the unmasked payload, and frames replies like gost', async () => {
    const port = Number(listener.address().split(':')[1]);
    const sock = await connect(port);
    sockets.push(sock);
    let received = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
    });
    sock.write(c2s);

    await waitFor(() => conns.length === 1, 5_000, 'upgraded conn');
    const conn = conns[0]!;
    const delivered = await readN(conn.stream, c2sPayload.length);
    assert.equal(delivered.length, c2sPayload.length);
    assert.deepEqual(delivered, c2sPayload);

    await waitFor(() => received.includes('\r\n\r\n'), 5_000, '101 response');
    const { head } = splitHead(received);
    const lines = head.split('\r\n');
    assert.equal(lines[0], 'HTTP/1.1 101 Switching Protocols');
    const h = headerMap(head);
    assert.equal(h.get('upgrade')?.toLowerCase(), 'websocket');
    assert.equal(h.get('connection')?.toLowerCase(), 'upgrade');
    // Same key as gost's request, so the same accept value as gost's answer.
    assert.equal(h.get('sec-websocket-accept'), headerMap(s2cSplit.head).get('sec-websocket-accept'));
    assert.equal(h.has('sec-websocket-extensions'), false);

    // Server → client: each write one unmasked binary message, as in the capture.
    // One write at a time: writes queued together go out as one message (one per batch).
    for (const f of s2cFrames) await new Promise<void>((r) => conn.stream.write(f.payload, () => r()));
    await waitFor(() => parseFrames(splitHead(received).body).frames.length === s2cFrames.length, 5_000, 'frames');
    const got = parseFrames(splitHead(received).body).frames;
    assert.deepEqual(
      got.map((f) => [f.b0, f.masked, f.payload.length]),
      s2cFrames.map((f) => [f.b0, f.masked, f.payload.length]),
    );
    assert.deepEqual(Buffer.concat(got.map((f) => f.payload)), s2cPayload);
  });
});

describe('ws dialer against a server replaying the gost answer', { skip }, () => {
  let server: net.Server;
  const serverSockets: net.Socket[] = [];
  let requestHead = '';
  let afterHead = Buffer.alloc(0);
  const conns: Conn[] = [];

  before(async () => {
    server = net.createServer((sock) => {
      serverSockets.push(sock);
      sock.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      let answered = false;
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (answered) {
          afterHead = buf;
          return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        answered = true;
        requestHead = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        afterHead = buf;
        const key = headerMap(requestHead).get('sec-websocket-key') ?? '';
        const accept = createHash('sha1').update(key + GUID).digest('base64');
        // gost's 101 head with the accept value for our key, then gost's frames unchanged,
        // in the same TCP write so the first frames arrive together with the head.
        const response = s2cSplit.head.replace(/Sec-WebSocket-Accept: .*/, `Sec-WebSocket-Accept: ${accept}`);
        sock.write(Buffer.concat([Buffer.from(`${response}\r\n\r\n`, 'latin1'), s2cSplit.body]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const c of conns) c.stream.destroy();
    for (const s of serverSockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends the request gost sends, delivers the payload exactly, and masks one message per write', async () => {
    const { port } = server.address() as net.AddressInfo;
    const addr = `127.0.0.1:${port}`;
    const dialer = createWsDialer({ metadata: new Metadata({}), logger: memoryLogger('warn').logger });
    const conn = await dialer.dial(addr);
    conns.push(conn);
    conn.stream.on('error', () => undefined);

    // Request head: line, Host form and the handshake headers of gost's request.
    const gostLines = c2sSplit.head.split('\r\n');
    const ourLines = requestHead.split('\r\n');
    assert.equal(ourLines[0], gostLines[0]);
    assert.equal(gostLines[0], 'GET /ws HTTP/1.1');
    const ours = headerMap(requestHead);
    const gost = headerMap(c2sSplit.head);
    assert.equal(gost.get('host'), '127.0.0.1:18443');
    assert.equal(ours.get('host'), addr);
    for (const name of ['upgrade', 'connection', 'sec-websocket-version']) {
      assert.equal(ours.get(name)?.toLowerCase(), gost.get(name)?.toLowerCase(), name);
    }
    assert.equal(ours.get('sec-websocket-version'), '13');
    assert.equal(Buffer.from(ours.get('sec-websocket-key') ?? '', 'base64').length, 16);
    assert.equal(ours.has('sec-websocket-extensions'), false);
    assert.equal(ours.has('sec-websocket-protocol'), false);

    // Server → client payload, exactly.
    const delivered = await readN(conn.stream, s2cPayload.length);
    assert.deepEqual(delivered, s2cPayload);

    // Client → server: replay gost's writes; each must be one masked binary message.
    for (const f of c2sFrames) await new Promise<void>((r) => conn.stream.write(f.payload, () => r()));
    await waitFor(() => parseFrames(afterHead).frames.length >= c2sFrames.length, 5_000, 'client frames');
    const got = parseFrames(afterHead).frames;
    assert.deepEqual(
      got.map((f) => [f.b0, f.masked, f.payload.length]),
      c2sFrames.map((f) => [f.b0, f.masked, f.payload.length]),
    );
    assert.deepEqual(Buffer.concat(got.map((f) => f.payload)), c2sPayload);
  });
});
