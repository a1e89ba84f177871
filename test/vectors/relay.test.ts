/**
 * Replays the relay messages captured from real gost 3.2.6 (shared/vectors) through burrow's
 * relay codec: every message at the start of a direction and every per-stream header inside
 * the smux session is decoded whole, split at every offset, byte by byte, at random points and
 * at the capture's own read boundaries; then what burrow would send in gost's place is built
 * from the decoded values and compared byte for byte.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RelayReader, type RelayReadResult } from '../../src/protocol/relay/reader';
import {
  buildBindRequest,
  buildBindResponse,
  buildConnectRequest,
  parseBindResponse,
  parseRequest,
  statusResponse,
  type ParsedRequest,
  type RelayRequest,
  type RelayResponse,
} from '../../src/protocol/relay/message';
import { CMD_BIND, CMD_CONNECT, FLAG_CONNECTOR_UDP, STATUS_OK } from '../../src/protocol/relay/constants';
import { parseTunnelId, tunnelEndpoint, tunnelIdToString } from '../../src/protocol/relay/tunnel-id';
import { StreamHeaderReader, encodeStreamHeader } from '../../src/protocol/stream-header';
import { UdpFrameDecoder } from '../../src/protocol/udp-frame';
import {
  ENTRYPOINT_502,
  ENTRYPOINT_503,
  chunkings,
  loadChunks,
  loadEntrypointResponses,
  loadVector,
  parseSmuxFrames,
  smuxStreams,
  unwrapWebSocket,
  vectorsAvailable,
  type CaptureRead,
} from '../helpers/vectors';

const skip = vectorsAvailable() ? false : 'shared/vectors not found (set BURROW_VECTORS_DIR)';

const HTTP_TUNNEL = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const TCP_TUNNEL = '7b3e6b4a-2b0d-4a4f-9a64-3b4f1c0d2e11';
const UDP_TUNNEL = '0f8c2d55-6a7e-4c1b-8e9f-5d2a3b4c6d7e';

interface Expect {
  tunnel: string;
  udp: boolean;
  /** dst of every stream header (client side) / of the CONNECT (visitor side). */
  dst: string;
}

/** One relay-speaking connection: a TCP connection, or one outer stream of an mws session. */
interface LogicalConn {
  label: string;
  scenario: string;
  role: 'client' | 'visitor';
  expect: Expect;
  c2s: Buffer;
  s2c: Buffer;
  /** The capture's own read boundaries (plain TCP captures only). */
  reads?: CaptureRead[];
}

const HTTP: Expect = { tunnel: HTTP_TUNNEL, udp: false, dst: 'www.example.com:80' };
const TCP: Expect = { tunnel: TCP_TUNNEL, udp: false, dst: 'ssh.srv-2.local:0' };
const UDP: Expect = { tunnel: UDP_TUNNEL, udp: true, dst: 'udp.srv-3.local:0' };
/** What the TCP visitors sent in the tcp-visitor, ws-transport and mws-transport scenarios. */
const TCP_PAYLOAD = /^(hello tcp visitor|hello tcp visitor over tunnel\+ws|hello over mws|second connection over mws)$/;

function plain(scenario: string, conn: string, role: LogicalConn['role'], expect: Expect): LogicalConn {
  return {
    label: `${scenario}/${conn}`,
    scenario,
    role,
    expect,
    c2s: loadVector(scenario, `${conn}.c2s`),
    s2c: loadVector(scenario, `${conn}.s2c`),
    reads: loadChunks(scenario, conn),
  };
}

function ws(scenario: string, conn: string, role: LogicalConn['role'], expect: Expect): LogicalConn {
  const c2s = unwrapWebSocket(loadVector(scenario, `${conn}.c2s`));
  const s2c = unwrapWebSocket(loadVector(scenario, `${conn}.s2c`));
  assert.match(c2s.head, /^GET \/ws HTTP\/1\.1\r\n/);
  assert.match(s2c.head, /^HTTP\/1\.1 101 /);
  return { label: `${scenario}/${conn}`, scenario, role, expect, c2s: c2s.payload, s2c: s2c.payload };
}

/** mws: WebSocket carrying an outer smux v1 session; each outer stream is one connection. */
function mws(scenario: string, conn: string, role: LogicalConn['role'], expect: Expect): LogicalConn[] {
  const c2s = parseSmuxFrames(unwrapWebSocket(loadVector(scenario, `${conn}.c2s`)).payload);
  const s2c = parseSmuxFrames(unwrapWebSocket(loadVector(scenario, `${conn}.s2c`)).payload);
  assert.equal(c2s.rest.length, 0);
  assert.equal(s2c.rest.length, 0);
  assert.ok(c2s.frames.every((f) => f.ver === 1), 'outer session is smux v1');
  const up = smuxStreams(c2s.frames);
  const down = smuxStreams(s2c.frames);
  return [...up.keys()].map((sid) => ({
    label: `${scenario}/${conn} outer stream ${sid}`,
    scenario,
    role,
    expect,
    c2s: up.get(sid)!,
    s2c: down.get(sid) ?? Buffer.alloc(0),
  }));
}

function allConns(): LogicalConn[] {
  return [
    plain('http-entrypoint', 'client-conn1', 'client', HTTP),
    plain('tcp-visitor', 'client-conn1', 'client', TCP),
    plain('tcp-visitor', 'visitor-conn1', 'visitor', TCP),
    plain('udp-visitor', 'client-conn1', 'client', UDP),
    plain('udp-visitor', 'visitor-conn1', 'visitor', UDP),
    plain('udp-visitor', 'visitor-conn2', 'visitor', UDP),
    ws('ws-transport', 'client-conn1', 'client', HTTP),
    ws('ws-transport', 'client-conn2', 'client', TCP),
    ws('ws-transport', 'visitor-conn1', 'visitor', TCP),
    ...mws('mws-transport', 'client-conn1', 'client', TCP),
    ...mws('mws-transport', 'visitor-conn1', 'visitor', TCP),
  ];
}

/**
 * Reads the message at the start of `bytes` with a fresh reader for every chunking, checks
 * that all agree, and returns the result of reading it whole.
 */
function readEveryWay<M>(
  label: string,
  bytes: Buffer,
  make: () => RelayReader<M>,
  reads?: Buffer[],
): RelayReadResult<M> & { after: Buffer } {
  const ways = chunkings(bytes, 30);
  if (reads) ways.push({ name: 'capture read boundaries', chunks: reads });
  let first: (RelayReadResult<M> & { after: Buffer }) | undefined;
  for (const { name, chunks } of ways) {
    const reader = make();
    let got: (RelayReadResult<M> & { after: Buffer }) | undefined;
    for (let i = 0; i < chunks.length && !got; i++) {
      const r = reader.push(chunks[i]!);
      if (r) got = { ...r, after: Buffer.concat([r.rest, ...chunks.slice(i + 1)]) };
    }
    assert.ok(got, `${label}, ${name}: message completes`);
    if (!first) {
      first = got;
      continue;
    }
    assert.deepEqual(got.message, first.message, `${label}, ${name}: same message`);
    assert.deepEqual(got.raw, first.raw, `${label}, ${name}: same raw bytes`);
    assert.deepEqual(got.after, first.after, `${label}, ${name}: same bytes after it`);
  }
  assert.deepEqual(Buffer.concat([first!.raw, first!.after]), bytes);
  return first!;
}

function directionReads(conn: LogicalConn, dir: 'c2s' | 's2c'): Buffer[] | undefined {
  return conn.reads?.filter((r) => r.dir === dir).map((r) => r.data);
}

/** Datagrams in a UDP stream's payload. */
function datagrams(payload: Buffer): string[] {
  const dec = new UdpFrameDecoder();
  const out = dec.push(payload).map((d) => d.toString('latin1'));
  dec.finish();
  return out;
}

describe('relay messages in the gost 3.2.6 captures', { skip }, () => {
  const conns = skip ? [] : allConns();
  /** Stream-header sources seen on the client side, per scenario (to cross-check visitors). */
  const streamSources = new Map<string, Set<string>>();

  for (const conn of conns.filter((c) => c.role === 'client')) {
    describe(`${conn.label} (tunnel client)`, () => {
      let bind: RelayReadResult<RelayRequest> & { after: Buffer };
      let parsed: ParsedRequest;

      test('BIND request decodes in every chunking', () => {
        bind = readEveryWay(`${conn.label} c2s`, conn.c2s, () => RelayReader.forRequest(), directionReads(conn, 'c2s'));
        parsed = parseRequest(bind.message);
        assert.equal(parsed.cmd, CMD_BIND);
        assert.equal(parsed.udpFlag, conn.expect.udp);
        assert.equal(parsed.network, conn.expect.udp ? 'udp' : 'tcp');
        assert.equal(tunnelIdToString(parsed.tunnelId!), conn.expect.tunnel);
        assert.match(parsed.srcAddr!, /^127\.0\.0\.1:\d+$/);
        assert.equal(parsed.dstAddr, ':0', '3.2.6 sends the empty-domain bind address');
      });

      test('buildBindRequest reproduces it byte for byte', () => {
        const built = buildBindRequest({
          srcAddr: parsed.srcAddr!,
          bindAddr: ':0',
          tunnelId: parseTunnelId(conn.expect.tunnel),
          udp: conn.expect.udp,
        });
        assert.equal(built.toString('hex'), bind.raw.toString('hex'));
      });

      test('the bytes after the BIND request are whole smux v2 frames', () => {
        const { frames, rest } = parseSmuxFrames(bind.after);
        assert.equal(rest.length, 0);
        assert.ok(frames.length > 0 && frames.every((f) => f.ver === 2));
      });

      let resp: RelayReadResult<RelayResponse> & { after: Buffer };
      test('BIND response decodes in every chunking; host is the tunnel endpoint', () => {
        resp = readEveryWay(`${conn.label} s2c`, conn.s2c, () => RelayReader.forResponse(), directionReads(conn, 's2c'));
        const p = parseBindResponse(resp.message);
        assert.equal(p.status, STATUS_OK);
        // The vectors README lists this name as variable; it is in fact MD5-derived from the ID.
        assert.equal(p.endpoint, tunnelEndpoint(parseTunnelId(conn.expect.tunnel)));
        assert.equal(p.bindAddr, `${p.endpoint}:0`);
        assert.equal(p.udp, conn.expect.udp);
        assert.equal(p.connectorId!.flag, conn.expect.udp ? FLAG_CONNECTOR_UDP : 0);
        assert.equal(p.connectorId!.weight, 0, 'weight copied from the request');
      });

      test('buildBindResponse reproduces it byte for byte (connector ID taken from the capture)', () => {
        const p = parseBindResponse(resp.message);
        const built = buildBindResponse({ host: p.endpoint!, port: 0, connectorId: p.connectorId! });
        assert.equal(built.toString('hex'), resp.raw.toString('hex'));
      });

      test('every stream the server opens starts with a stream header burrow would write identically', () => {
        const { frames, rest } = parseSmuxFrames(resp.after);
        assert.equal(rest.length, 0);
        const streams = smuxStreams(frames);
        assert.ok(streams.size > 0, 'at least one stream');
        const sources = streamSources.get(conn.scenario) ?? new Set<string>();
        streamSources.set(conn.scenario, sources);
        for (const [sid, bytes] of streams) {
          const label = `${conn.label} stream ${sid}`;
          const hdr = readEveryWay(label, bytes, () => RelayReader.forResponse());
          // The same bytes through the stream-header reader, fed in two arbitrary pieces.
          const shr = new StreamHeaderReader();
          const cut = Math.floor(bytes.length / 3);
          const header = shr.push(bytes.subarray(0, cut)) ?? shr.push(bytes.subarray(cut));
          assert.ok(header, label);
          assert.equal(header.dst, conn.expect.dst, label);
          assert.match(header.src!, /^127\.0\.0\.1:\d+$/, label);
          assert.deepEqual(header.rest, hdr.after.subarray(0, header.rest.length), label);
          assert.equal(encodeStreamHeader(header.src!, header.dst).toString('hex'), hdr.raw.toString('hex'), label);
          sources.add(header.src!);
          if (conn.expect.udp) {
            assert.match(datagrams(hdr.after).join('|'), /^hello udp visitor \d$/, `${label}: one framed datagram`);
          } else if (conn.expect === HTTP) {
            assert.match(hdr.after.toString('latin1'), /^GET \/ HTTP\/1\.1\r\nHost: www\.example\.com\r\n/, label);
          } else {
            assert.match(hdr.after.toString('latin1'), TCP_PAYLOAD, label);
          }
        }
      });
    });
  }

  for (const conn of conns.filter((c) => c.role === 'visitor')) {
    describe(`${conn.label} (visitor)`, () => {
      let connect: RelayReadResult<RelayRequest> & { after: Buffer };
      let parsed: ParsedRequest;

      test('CONNECT request decodes in every chunking', () => {
        connect = readEveryWay(`${conn.label} c2s`, conn.c2s, () => RelayReader.forRequest(), directionReads(conn, 'c2s'));
        parsed = parseRequest(connect.message);
        assert.equal(parsed.cmd, CMD_CONNECT);
        assert.equal(parsed.udpFlag, conn.expect.udp);
        assert.equal(parsed.network, conn.expect.udp ? 'udp' : 'tcp');
        assert.equal(tunnelIdToString(parsed.tunnelId!), conn.expect.tunnel);
        assert.equal(parsed.dstAddr, conn.expect.dst);
        assert.match(parsed.srcAddr!, /^127\.0\.0\.1:\d+$/);
      });

      test('buildConnectRequest reproduces it byte for byte', () => {
        const built = buildConnectRequest({
          srcAddr: parsed.srcAddr!,
          dstAddr: conn.expect.dst,
          tunnelId: parseTunnelId(conn.expect.tunnel),
          udp: conn.expect.udp,
        });
        assert.equal(built.toString('hex'), connect.raw.toString('hex'));
      });

      test('the OK response decodes in every chunking and equals statusResponse(0)', () => {
        const resp = readEveryWay(`${conn.label} s2c`, conn.s2c, () => RelayReader.forResponse(), directionReads(conn, 's2c'));
        assert.deepEqual(resp.message, { status: STATUS_OK, features: [] });
        assert.deepEqual(resp.raw, statusResponse(STATUS_OK));
        if (conn.expect.udp) {
          assert.deepEqual(datagrams(resp.after), datagrams(connect.after), 'the echo comes back framed');
        } else {
          assert.deepEqual(resp.after, connect.after, 'the echo comes back');
        }
      });

      test('payload after the CONNECT is what the visitor sent', () => {
        const text = conn.expect.udp ? datagrams(connect.after).join('|') : connect.after.toString('latin1');
        assert.match(text, conn.expect.udp ? /^hello udp visitor \d$/ : TCP_PAYLOAD);
      });

      test("the visitor's source address reappears as the src of a stream header on the client side", () => {
        const sources = streamSources.get(conn.scenario);
        assert.ok(sources?.has(parsed.srcAddr!), `${parsed.srcAddr} in ${[...(sources ?? [])].join(', ')}`);
      });
    });
  }

  test('the captures cover every relay message kind', () => {
    assert.equal(conns.filter((c) => c.role === 'client').length, 6);
    assert.equal(conns.filter((c) => c.role === 'visitor').length, 6);
  });
});

describe('entry point error responses', { skip }, () => {
  test('responses.txt matches the exported constants', () => {
    const r = loadEntrypointResponses();
    assert.deepEqual(r.get('other.org'), ENTRYPOINT_502);
    assert.deepEqual(r.get('example.org'), ENTRYPOINT_503);
    assert.deepEqual(r.get('www.example.com'), ENTRYPOINT_503);
    assert.equal(ENTRYPOINT_502.length, 47);
    assert.equal(ENTRYPOINT_503.length, 55);
  });
});
