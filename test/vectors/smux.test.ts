/**
 * Replays the smux bytes captured between real gost 3.2.6 processes (shared/vectors) through
 * our decoder and our Session.
 *
 * Each direction of a tunnel-client connection is one relay message (`01 xx LL LL` + LL bytes)
 * followed by smux v2 frames; `.decoded.txt` lists those frames as "smux v2 CMD sid=N len=L".
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { once } from 'node:events';
import { FrameDecoder, decodeFrames, type DecodedFrame } from '../../src/protocol/smux/decoder';
import { CMD_FIN, CMD_PSH, CMD_SYN, CMD_UPD, cmdName } from '../../src/protocol/smux/frame';
import { Session } from '../../src/protocol/smux/session';
import type { Stream } from '../../src/protocol/smux/stream';

const VECTORS = process.env.BURROW_VECTORS ?? '/work/shared/vectors';
const SCENARIOS = ['http-entrypoint', 'tcp-visitor', 'udp-visitor'];
const noop = (): void => {};

interface Expected {
  cmd: string;
  sid: number;
  len: number;
  consumed?: number;
  window?: number;
}

interface Direction {
  name: string; // e.g. "tcp-visitor/client-conn1.s2c"
  smux: Buffer; // bytes after the relay message
  relayLen: number;
  expected: Expected[];
}

function readHex(path: string): Buffer {
  return Buffer.from(readFileSync(path, 'utf8').replace(/\s+/g, ''), 'hex');
}

/** Frames listed in a .decoded.txt, per direction. */
function parseDecoded(text: string): Record<'c2s' | 's2c', Expected[]> {
  const out: Record<'c2s' | 's2c', Expected[]> = { c2s: [], s2c: [] };
  let dir: 'c2s' | 's2c' | undefined;
  for (const line of text.split('\n')) {
    const head = /^==== \S+ (c2s|s2c) /.exec(line);
    if (head) {
      dir = head[1] as 'c2s' | 's2c';
      continue;
    }
    const m = /^smux v2 (\w+) sid=(\d+) len=(\d+)\s+\[[0-9a-f]+\](?: consumed=(\d+) window=(\d+))?/.exec(line);
    if (m && dir) {
      out[dir].push({
        cmd: m[1]!,
        sid: Number(m[2]),
        len: Number(m[3]),
        ...(m[4] !== undefined ? { consumed: Number(m[4]), window: Number(m[5]) } : {}),
      });
    }
  }
  return out;
}

function loadDirections(): Direction[] {
  const dirs: Direction[] = [];
  for (const scenario of SCENARIOS) {
    const folder = join(VECTORS, scenario);
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.decoded.txt')).sort()) {
      const conn = file.replace('.decoded.txt', '');
      const decoded = parseDecoded(readFileSync(join(folder, file), 'utf8'));
      for (const d of ['c2s', 's2c'] as const) {
        if (decoded[d].length === 0) continue; // visitor connections carry raw payload, no smux
        const bytes = readHex(join(folder, `${conn}.${d}.hex`));
        assert.equal(bytes[0], 0x01, 'relay version');
        const relayLen = 4 + bytes.readUInt16BE(2);
        dirs.push({ name: `${scenario}/${conn}.${d}`, smux: bytes.subarray(relayLen), relayLen, expected: decoded[d] });
      }
    }
  }
  return dirs;
}

function describeFrames(frames: DecodedFrame[]): Expected[] {
  return frames.map((f) => ({
    cmd: cmdName(f.cmd),
    sid: f.sid,
    len: f.data.length,
    ...(f.cmd === CMD_UPD ? { consumed: f.data.readUInt32LE(0), window: f.data.readUInt32LE(4) } : {}),
  }));
}

function splits(buf: Buffer, mode: 'whole' | 'bytes' | 'random'): Buffer[] {
  if (mode === 'whole') return [buf];
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const n = mode === 'bytes' ? 1 : 1 + Math.floor(Math.random() * 40);
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

const available = existsSync(VECTORS);

describe('smux vectors from gost 3.2.6', { skip: available ? false : `no vectors at ${VECTORS}` }, () => {
  const directions = available ? loadDirections() : [];

  test('every scenario has smux frames to check', () => {
    assert.ok(directions.length >= 6, `${directions.length} directions`);
  });

  for (const dir of directions) {
    for (const mode of ['whole', 'bytes', 'random'] as const) {
      test(`${dir.name}: decodes every frame (${mode})`, () => {
        const rounds = mode === 'random' ? 20 : 1;
        for (let r = 0; r < rounds; r++) {
          const { frames, rest } = decodeFrames(2, splits(dir.smux, mode));
          assert.equal(rest, 0, 'no trailing partial frame');
          assert.deepEqual(describeFrames(frames), dir.expected);
        }
      });
    }

    test(`${dir.name}: UPD frames carry what our receiver sends`, () => {
      // Our rule (and smux's): one UPD after the first read of a stream, then one per
      // ≥ maxStreamBuffer/2 read, always advertising window = maxStreamBuffer = 1 MiB.
      // Every captured stream moves < 512 KiB, so each has exactly one UPD, whose consumed is
      // the size of the first read: more than 0, at most what the other side sent.
      const opposite = directions.find(
        (d) => d.name === dir.name.replace(/\.(c2s|s2c)$/, (_m, x: string) => (x === 'c2s' ? '.s2c' : '.c2s')),
      );
      assert.ok(opposite);
      const pshBytes = new Map<number, number>();
      for (const f of opposite.expected) if (f.cmd === 'PSH') pshBytes.set(f.sid, (pshBytes.get(f.sid) ?? 0) + f.len);
      const upds = dir.expected.filter((f) => f.cmd === 'UPD');
      const sids = new Set(dir.expected.filter((f) => f.cmd !== 'NOP').map((f) => f.sid));
      for (const sid of sids) {
        const mine = upds.filter((u) => u.sid === sid);
        if (!pshBytes.get(sid)) {
          assert.equal(mine.length, 0, `no data received on sid ${sid}, no UPD`);
          continue;
        }
        assert.equal(mine.length, 1, `one UPD for sid ${sid}`);
        assert.equal(mine[0]!.window, 1_048_576);
        assert.ok(mine[0]!.consumed! > 0 && mine[0]!.consumed! <= pshBytes.get(sid)!);
      }
    });
  }
});

/** A socket pair on 127.0.0.1: [raw end the test drives, end given to the Session]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const raw = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(raw, 'connect');
  const [sock] = await accepted;
  server.close();
  raw.setNoDelay(true);
  sock.setNoDelay(true);
  return [raw, sock];
}

function frameCollector(sock: net.Socket): DecodedFrame[] {
  const frames: DecodedFrame[] = [];
  const dec = new FrameDecoder(2, (cmd, sid, data) => frames.push({ cmd, sid, data: Buffer.from(data) }));
  sock.on('data', (d: Buffer) => dec.push(d));
  return frames;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('smux Session against the captured gost bytes', { skip: available ? false : 'no vectors' }, () => {
  const load = (scenario: string, d: 'c2s' | 's2c') => {
    const bytes = readHex(join(VECTORS, scenario, `client-conn1.${d}.hex`));
    return bytes.subarray(4 + bytes.readUInt16BE(2));
  };

  for (const scenario of SCENARIOS) {
    test(`${scenario}: as the gost server (smux client), our first stream is written like gost's`, async () => {
      const s2c = load(scenario, 's2c');
      const c2s = load(scenario, 'c2s');
      const [raw, sock] = await socketPair();
      after(() => raw.destroy());
      const session = new Session(sock, { client: true });
      after(() => session.destroy());
      const received: Buffer[] = [];
      raw.on('data', (d: Buffer) => received.push(d));

      const st = session.openStream();
      st.on('error', noop);
      assert.equal(st.id, 3);
      // The 36-byte stream header (spec §6) is the first PSH of the capture.
      const header = s2c.subarray(16, 16 + 36);
      st.write(header);
      const want = s2c.subarray(0, 16 + 36); // SYN sid=3, PSH sid=3 len=36 + header
      await until(() => Buffer.concat(received).length >= want.length, 'SYN + PSH');
      assert.equal(Buffer.concat(received).subarray(0, want.length).toString('hex'), want.toString('hex'));

      // Now the gost client's frames for sid 3 come back: UPD, data, FIN.
      const sid3 = decodeFrames(2, c2s).frames.filter((f) => f.sid === 3);
      const reply = Buffer.concat(sid3.filter((f) => f.cmd === CMD_PSH).map((f) => f.data));
      const replayEnd = c2s.indexOf(Buffer.from('0201000003000000', 'hex')) + 8;
      raw.write(c2s.subarray(0, replayEnd));
      const chunks: Buffer[] = [];
      for await (const c of st) chunks.push(c as Buffer);
      assert.ok(Buffer.concat(chunks).equals(reply));
      assert.equal(session.isClosed, false);
    });

    test(`${scenario}: as the gost client (smux server), we answer gost's streams frame for frame like gost`, async () => {
      const s2c = load(scenario, 's2c');
      const c2s = load(scenario, 'c2s');
      const incoming = decodeFrames(2, s2c).frames;
      const gostReply = decodeFrames(2, c2s).frames;
      const [raw, sock] = await socketPair();
      after(() => raw.destroy());
      const session = new Session(sock, { client: false });
      after(() => session.destroy());
      const out = frameCollector(raw);
      const got = new Map<number, Buffer[]>();
      const ended = new Set<number>();
      // Play the rtcp client: on the stream's first bytes (the relay response), send what
      // the local service answered in the capture, then close, as gost's pipe did.
      session.on('stream', (st: Stream) => {
        st.on('error', noop);
        got.set(st.id, []);
        st.once('data', () => {
          for (const f of gostReply.filter((g) => g.sid === st.id && g.cmd === CMD_PSH)) st.write(f.data);
          st.end();
        });
        st.on('data', (d: Buffer) => got.get(st.id)!.push(d));
        st.on('end', () => ended.add(st.id));
      });
      const sentOn = (sid: number) =>
        out.filter((f) => f.sid === sid && f.cmd === CMD_PSH).reduce((n, f) => n + f.data.length, 0);
      // Replay the server's frames in causal order: an UPD only after we sent what it acknowledges.
      let off = 0;
      for (const f of incoming) {
        const size = 8 + f.data.length;
        if (f.cmd === CMD_UPD) {
          const consumed = f.data.readUInt32LE(0);
          await until(() => sentOn(f.sid) >= consumed, `our data on sid ${f.sid}`);
        }
        raw.write(s2c.subarray(off, off + size));
        off += size;
      }
      assert.equal(off, s2c.length);
      const sids = [...new Set(incoming.filter((f) => f.cmd === CMD_SYN).map((f) => f.sid))];
      assert.deepEqual(sids, scenario === 'udp-visitor' ? [3, 5] : [3]);
      await until(() => sids.every((sid) => ended.has(sid)), 'every stream ended');
      await until(() => out.filter((f) => f.cmd === CMD_FIN).length === sids.length, 'our FINs');
      for (const sid of sids) {
        const sent = incoming.filter((f) => f.sid === sid && f.cmd === CMD_PSH);
        assert.ok(Buffer.concat(got.get(sid)!).equals(Buffer.concat(sent.map((f) => f.data))));
      }
      // The same frames as gost's client sent, in the same order.
      assert.deepEqual(
        out.map((f) => [cmdName(f.cmd), f.sid, f.data.length]),
        gostReply.map((f) => [cmdName(f.cmd), f.sid, f.data.length]),
      );
      // UPD values: our first read is the first PSH as it arrived (the 36-byte relay response);
      // gost's application happened to read its 4-byte header first. The window is the same.
      for (const u of out.filter((f) => f.cmd === CMD_UPD)) {
        assert.equal(u.data.readUInt32LE(0), 36);
        assert.equal(u.data.readUInt32LE(4), 1_048_576);
      }
      await until(() => session.numStreams === 0, 'streams forgotten after FIN both ways');
    });
  }
});
