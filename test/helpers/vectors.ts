/**
 * Access to the bytes captured from real gost 3.2.6 (shared/vectors, see its README.md), plus
 * the small parsers needed to reach the relay messages inside them: smux v1/v2 frame headers
 * (`ver(1) cmd(1) len(2, LE) sid(4, LE)`) and WebSocket framing (RFC 6455).
 *
 * The captures are kept in test/fixtures/vectors (a copy of the gost 3.2.6 captures); set BURROW_VECTORS_DIR to point elsewhere. Tests
 * that need them should skip when `vectorsAvailable()` is false.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const VECTORS_DIR = process.env.BURROW_VECTORS_DIR ?? resolve(__dirname, '../fixtures/vectors');

export function vectorsAvailable(): boolean {
  return existsSync(join(VECTORS_DIR, 'README.md'));
}

/** Decodes a hex dump (whitespace ignored). */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`not hex: ${clean.slice(0, 40)}`);
  return Buffer.from(clean, 'hex');
}

/**
 * The bytes of one capture file: `loadVector('tcp-visitor', 'visitor-conn1.c2s')` reads
 * `tcp-visitor/visitor-conn1.c2s.hex` (the `.hex` suffix is optional).
 */
export function loadVector(dir: string, name: string): Buffer {
  const file = name.endsWith('.hex') ? name : `${name}.hex`;
  return hex(readFileSync(join(VECTORS_DIR, dir, file), 'utf8'));
}

export interface CaptureRead {
  timeS: number;
  dir: 'c2s' | 's2c';
  offset: number;
  data: Buffer;
}

/** The reads of one connection as they happened (`*.chunks.txt`), EOF markers dropped. */
export function loadChunks(dir: string, conn: string): CaptureRead[] {
  const text = readFileSync(join(VECTORS_DIR, dir, `${conn}.chunks.txt`), 'utf8');
  const out: CaptureRead[] = [];
  for (const line of text.split('\n')) {
    const m = /^([\d.]+) (c2s|s2c) (\d+) (\d+) ([0-9a-f]+)$/.exec(line.trim());
    if (!m) continue;
    const data = hex(m[5]!);
    if (data.length !== Number(m[4])) throw new Error(`${dir}/${conn}: length mismatch in "${line.slice(0, 40)}"`);
    out.push({ timeS: Number(m[1]), dir: m[2] as 'c2s' | 's2c', offset: Number(m[3]), data });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry point error responses (shared/vectors/entrypoint-errors/responses.txt), as constants so
// tests can use them without the vectors directory.

/** No ingress rule for the Host (or a private rule). */
export const ENTRYPOINT_502 = Buffer.from('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n', 'latin1');
/** A rule exists but no client is connected for its tunnel. */
export const ENTRYPOINT_503 = Buffer.from('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n', 'latin1');

/** The responses in responses.txt, keyed by the Host that was sent. */
export function loadEntrypointResponses(): Map<string, Buffer> {
  const text = readFileSync(join(VECTORS_DIR, 'entrypoint-errors', 'responses.txt'), 'utf8');
  const out = new Map<string, Buffer>();
  let host: string | undefined;
  for (const line of text.split('\n')) {
    const h = /^== Host: (\S+)/.exec(line);
    if (h) host = h[1];
    const x = /^hex: ([0-9a-f]+)$/.exec(line.trim());
    if (x && host !== undefined) out.set(host, hex(x[1]!));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// smux frames

export const SMUX_CMD_SYN = 0;
export const SMUX_CMD_FIN = 1;
export const SMUX_CMD_PSH = 2;
export const SMUX_CMD_NOP = 3;
export const SMUX_CMD_UPD = 4;
export const SMUX_HEADER_LEN = 8;

export interface SmuxFrame {
  ver: number;
  cmd: number;
  sid: number;
  data: Buffer;
}

/** Splits a byte stream into smux frames; `rest` is an incomplete trailing frame, if any. */
export function parseSmuxFrames(buf: Buffer): { frames: SmuxFrame[]; rest: Buffer } {
  const frames: SmuxFrame[] = [];
  let pos = 0;
  while (buf.length - pos >= SMUX_HEADER_LEN) {
    const ver = buf[pos]!;
    const cmd = buf[pos + 1]!;
    const len = buf.readUInt16LE(pos + 2);
    const sid = buf.readUInt32LE(pos + 4);
    if (ver !== 1 && ver !== 2) throw new Error(`smux: bad version ${ver} at ${pos}`);
    if (cmd > SMUX_CMD_UPD) throw new Error(`smux: bad cmd ${cmd} at ${pos}`);
    if (buf.length - pos - SMUX_HEADER_LEN < len) break;
    frames.push({ ver, cmd, sid, data: buf.subarray(pos + SMUX_HEADER_LEN, pos + SMUX_HEADER_LEN + len) });
    pos += SMUX_HEADER_LEN + len;
  }
  return { frames, rest: buf.subarray(pos) };
}

/** Payload bytes of every stream (PSH data concatenated per stream id, in order). */
export function smuxStreams(frames: readonly SmuxFrame[]): Map<number, Buffer> {
  const parts = new Map<number, Buffer[]>();
  for (const f of frames) {
    if (f.cmd !== SMUX_CMD_PSH) continue;
    const list = parts.get(f.sid) ?? [];
    list.push(f.data);
    parts.set(f.sid, list);
  }
  return new Map([...parts].map(([sid, list]) => [sid, Buffer.concat(list)]));
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/**
 * Removes the HTTP upgrade head and the WebSocket framing from one direction of a capture:
 * returns the head text and the concatenated payload of the data frames (binary, text and
 * continuation; masked frames unmasked). Control frames are dropped.
 */
export function unwrapWebSocket(buf: Buffer): { head: string; payload: Buffer } {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) throw new Error('websocket: no HTTP head');
  const head = buf.toString('latin1', 0, headEnd + 4);
  const parts: Buffer[] = [];
  let pos = headEnd + 4;
  while (pos < buf.length) {
    if (buf.length - pos < 2) throw new Error('websocket: truncated frame header');
    const opcode = buf[pos]! & 0x0f;
    const masked = (buf[pos + 1]! & 0x80) !== 0;
    let len = buf[pos + 1]! & 0x7f;
    pos += 2;
    if (len === 126) {
      len = buf.readUInt16BE(pos);
      pos += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(pos));
      pos += 8;
    }
    let mask: Buffer | undefined;
    if (masked) {
      mask = buf.subarray(pos, pos + 4);
      pos += 4;
    }
    if (buf.length - pos < len) throw new Error('websocket: truncated frame payload');
    const data = Buffer.from(buf.subarray(pos, pos + len));
    if (mask) for (let i = 0; i < data.length; i++) data[i] = data[i]! ^ mask[i % 4]!;
    pos += len;
    if (opcode <= 0x02) parts.push(data);
  }
  return { head, payload: Buffer.concat(parts) };
}

// ---------------------------------------------------------------------------------------------
// Re-chunking

/** A small deterministic PRNG (mulberry32) so random splits are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Cuts `buf` at the given offsets as they are (sorted and deduplicated here; an offset of 0 or
 * `buf.length` gives an empty piece). The pieces concatenate back to `buf`.
 */
export function cutAt(buf: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets)].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Cuts `buf` at the given offsets (sorted, deduplicated, within bounds). */
export function splitAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  return cutAt(buf, cuts.filter((c) => c > 0 && c < buf.length));
}

/**
 * The chunkings every incremental decoder is checked with: whole, split once at every offset,
 * one byte at a time, and `randomRuns` random cuttings (seeded).
 */
export function chunkings(buf: Buffer, randomRuns = 20, seed = 1): Array<{ name: string; chunks: Buffer[] }> {
  const out: Array<{ name: string; chunks: Buffer[] }> = [{ name: 'whole', chunks: [buf] }];
  for (let i = 1; i < buf.length; i++) out.push({ name: `split at ${i}`, chunks: splitAt(buf, [i]) });
  out.push({ name: 'byte by byte', chunks: [...buf].map((_, i) => buf.subarray(i, i + 1)) });
  const rnd = prng(seed);
  for (let r = 0; r < randomRuns; r++) {
    const n = 1 + Math.floor(rnd() * Math.min(8, buf.length));
    const cuts = Array.from({ length: n }, () => Math.floor(rnd() * buf.length));
    out.push({ name: `random #${r} at ${cuts.join(',')}`, chunks: splitAt(buf, cuts) });
  }
  return out;
}
