/**
 * shared/vectors/http-entrypoint replayed against burrow, in both roles:
 *
 * - burrow is the tunnel **server** (the capture's server command, ports from the OS); the test
 *   plays the gost client (captured BIND, captured answer frames) and curl;
 * - burrow is the tunnel **client** (`-L rtcp://:0/<backend> -F tunnel://…`); the test plays
 *   the gost server (captured BIND response and stream frames) and python's http.server.
 *
 * Every byte burrow sends is compared with what gost sent, except the fields that change on
 * every run (ephemeral ports in Addr features, connector ID, Gost-Forwarded-Node, Gost-Sid) and
 * the `consumed` of smux UPD frames (read granularity), which are checked for structure.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import {
  FIN,
  HTTP_TUNNEL,
  Inbox,
  PSH,
  SYN,
  SmuxLog,
  UPD,
  addrPort,
  addrPortRange,
  assertBytes,
  assertUpd,
  captureServerUrl,
  describeFrames,
  dial,
  listenRaw,
  loadChunks,
  parseHead,
  readHttpResponse,
  send,
  streamPayloads,
  tunnelUuidRange,
} from '../helpers/replay';
import {
  CAPTURED_BODY as BODY,
  againstFakeServer,
  asServer,
  assertFramesAsCaptured,
  bindAtServer,
  curlRequest as stripGostHeaders,
  curlThroughEntrypoint,
  expectBind,
  httpExchange,
  loadCapture,
  skipWithoutVectors as skip,
} from '../helpers/roles';

const V = 'http-entrypoint';

// gost client → server (CLIENT): BIND, then UPD 3, PSH 3 (response head), PSH 3 (body), FIN 3.
// gost server → client (SERVER): BIND response, then SYN 3, PSH 3 (stream header), PSH 3 (request), UPD 3, FIN 3.
const { s2c: S2C, client: CLIENT, server: SERVER } = loadCapture(V);

const BIND = CLIENT?.relay ?? Buffer.alloc(0);
const BIND_RESPONSE = SERVER?.relay ?? Buffer.alloc(0);
/** The stream header, the HTTP request gost's server wrote on stream 3, and the origin's response. */
const EXCHANGE = httpExchange({ client: CLIENT, server: SERVER });
const { streamHeader: STREAM_HEADER, proxiedRequest: PROXIED_REQUEST, originResponse: ORIGIN_RESPONSE } = EXCHANGE;

/** What curl sent: the proxied request without the headers the gost server added. */
const curlRequest = (): Buffer => stripGostHeaders(PROXIED_REQUEST);

describe('http-entrypoint: the capture itself', { skip }, () => {
  it('has the frames the README describes', () => {
    assert.equal(describeFrames(CLIENT!.frames), 'UPD 3 (consumed=4 window=1048576), PSH 3 (185), PSH 3 (29), FIN 3');
    assert.equal(describeFrames(SERVER!.frames), 'SYN 3, PSH 3 (36), PSH 3 (189), UPD 3 (consumed=185 window=1048576), FIN 3');
    assert.equal(curlRequest().toString('latin1'), 'GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n');
    assert.ok(ORIGIN_RESPONSE.toString('latin1').endsWith(`\r\n\r\n${BODY}`));
  });
});

describe('http-entrypoint: burrow as the tunnel server, replaying the gost client', { skip }, () => {
  let tunnel: net.Socket;
  let tunnelIn: Inbox;
  let frames: SmuxLog;
  let curlIn: Inbox;
  let requestLength = 0;

  // gost's entry point default made explicit: one stream per request, `Connection: close`.
  // burrow's default (entrypoint.keepalive=true) differs only in that header; see below.
  const rig = asServer(`${captureServerUrl()}&entrypoint.keepalive=false`);

  it('answers the captured BIND like gost: OK, endpoint a6265c6d9847a4be:0, connector ID flag 0, weight copied', async () => {
    tunnel = rig.own(await dial(rig.burrow.port()));
    tunnelIn = Inbox.of(tunnel);
    await send(tunnel, BIND);
    const resp = await tunnelIn.readRelay('the BIND response');
    // Only the connector ID (16 random bytes) may differ.
    assertBytes(resp, BIND_RESPONSE, 'BIND response', [tunnelUuidRange(BIND_RESPONSE)]);
    assert.equal(resp.subarray(0, 4).toString('hex'), '0100002e');
    assert.equal(resp.subarray(4, 27).toString('hex'), '0200140310' + Buffer.from('a6265c6d9847a4be').toString('hex') + '0000');
    const [u] = tunnelUuidRange(resp);
    assert.equal(resp.subarray(u + 16, u + 20).toString('hex'), '00000000', 'flag 0, reserved 0, weight 0 (copied from the BIND)');
    frames = new SmuxLog(tunnelIn);
  });

  it('sends the entry point request down the tunnel as gost does: SYN 3, stream header, the same HTTP request', async (t) => {
    assert.ok(frames, 'needs the BIND');
    const sent = await curlThroughEntrypoint(rig, frames, EXCHANGE, 'the stream header and the HTTP request head on stream 3');
    const { curl, head } = sent;
    curlIn = sent.curlIn;
    const sig = head.filter((f) => f.cmd !== 3);
    assert.deepEqual([sig[0]!.cmd, sig[0]!.sid], [SYN, 3], 'first frame is SYN 3');

    const payload = streamPayloads(head).get(3)!;
    const hdr = payload.subarray(0, STREAM_HEADER.length);
    assertBytes(hdr, STREAM_HEADER, 'stream header (src 127.0.0.1:<curl port>, dst www.example.com:80)', [addrPortRange(STREAM_HEADER, 0)]);
    assert.equal(addrPort(hdr, 0), curl.localPort, 'src port = the curl connection');

    const req = payload.subarray(STREAM_HEADER.length);
    t.diagnostic(`burrow's request: ${JSON.stringify(req.toString('latin1'))}`);
    const got = parseHead(req)!;
    const want = parseHead(PROXIED_REQUEST)!;
    assert.equal(req.length, got.length, 'no body after the request head');
    requestLength = req.length;
    assert.equal(got.startLine, want.startLine);
    assert.deepEqual(
      got.headers.map(([k]) => k),
      want.headers.map(([k]) => k),
      'same header lines in the same order (Host, User-Agent, Accept, Gost-Forwarded-Node, Gost-Sid, Connection)',
    );
    for (const [k, v] of want.headers) {
      const mine = got.headers.find(([n]) => n === k)?.[1];
      if (k === 'Gost-Forwarded-Node') assert.match(mine ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'Gost-Forwarded-Node is a node UUID');
      else if (k === 'Gost-Sid') assert.match(mine ?? '', /^[0-9a-z]+$/, 'Gost-Sid is a non-empty id');
      else assert.equal(mine, v, `header ${k}`);
    }
  });

  it('returns the client\'s captured answer to curl (200, body) and ends the stream with UPD and FIN', async (t) => {
    assert.ok(curlIn, 'needs the request');
    // Replay the gost client's frames with the capture's own read boundaries.
    for (const r of loadChunks(V, 'client-conn1')) {
      if (r.dir === 'c2s' && r.offset >= BIND.length) await send(tunnel, r.data);
    }
    const resp = await readHttpResponse(curlIn);
    t.diagnostic(`curl got: ${JSON.stringify(resp.raw.toString('latin1'))}`);
    assert.match(resp.head.startLine, /^HTTP\/1\.[01] 200 OK$/);
    assert.equal(resp.body.toString('latin1'), BODY);

    const all = await frames.waitFrame(FIN, 3);
    const sig = all.filter((f) => f.cmd !== 3);
    assertFramesAsCaptured(t, 'burrow -> client', sig, SERVER!.frames);
    const upd = sig.find((f) => f.cmd === UPD)!;
    assertUpd(upd, 3, ORIGIN_RESPONSE.length, 'UPD for the response');
    assert.ok(sig.every((f) => f.ver === 2), 'smux v2 frames');
    assert.equal(streamPayloads(sig).get(3)!.length, STREAM_HEADER.length + requestLength, 'nothing sent on stream 3 after the request');
    assert.ok(sig.filter((f) => f.cmd === PSH).length >= 1);
  });
});

describe('http-entrypoint: burrow as the tunnel server with its default entrypoint.keepalive', { skip }, () => {
  const rig = asServer(captureServerUrl());

  it('sends the same request as gost except `Connection: keep-alive` (the stream is kept for the next request)', async () => {
    const tunnel = rig.own(await dial(rig.burrow.port()));
    const tunnelIn = Inbox.of(tunnel);
    await send(tunnel, BIND);
    await tunnelIn.readRelay('the BIND response');
    const frames = new SmuxLog(tunnelIn);
    const { head } = await curlThroughEntrypoint(rig, frames, EXCHANGE, 'the HTTP request head on stream 3');
    const got = parseHead(streamPayloads(head).get(3)!.subarray(STREAM_HEADER.length))!;
    const want = parseHead(PROXIED_REQUEST)!;
    assert.deepEqual(got.headers.map(([k]) => k), want.headers.map(([k]) => k), 'same header lines in the same order');
    assert.equal(got.headers.find(([k]) => k === 'Connection')?.[1], 'keep-alive');
    assert.equal(want.headers.find(([k]) => k === 'Connection')?.[1], 'close');
  });
});

describe('http-entrypoint: burrow as the tunnel server, BIND weight copied into the connector ID', { skip }, () => {
  const rig = asServer(captureServerUrl());

  it('the captured BIND with weight 7 (its last byte changed) gets a connector ID with weight 7, flag 0', async () => {
    const bind = Buffer.from(BIND);
    const [u] = tunnelUuidRange(bind);
    bind[u + 19] = 7;
    const expected = Buffer.from(BIND_RESPONSE);
    expected[tunnelUuidRange(expected)[0] + 19] = 7;
    await bindAtServer(rig, bind, expected, 'BIND response');
  });
});

describe('http-entrypoint: burrow as the tunnel client, replaying the gost server', { skip }, () => {
  let tunnel: net.Socket;
  let tunnelIn: Inbox;
  let frames: SmuxLog;

  const rig = againstFakeServer({ tunnelId: HTTP_TUNNEL, backend: listenRaw, listen: (backend) => `rtcp://:0/127.0.0.1:${backend.port}` });

  it('sends the BIND gost sends: 01 02 0028, Addr(src), Addr(empty domain, port 0), Tunnel weight 0', async () => {
    tunnel = rig.own(await rig.fake.accept());
    tunnelIn = Inbox.of(tunnel);
    const bind = await expectBind(tunnelIn, tunnel, BIND, 'BIND', 'Addr src port = the connection\'s local port');
    assert.equal(bind.subarray(0, 4).toString('hex'), '01020028');
    assert.equal(bind.subarray(4, 14).toString('hex').slice(0, 16), '020007017f000001', 'Addr src 127.0.0.1');
    assert.equal(bind.subarray(14, 21).toString('hex'), '02000403000000', 'Addr dst: empty domain, port 0');
    const [u] = tunnelUuidRange(bind);
    assert.equal(bind.subarray(u, u + 16).toString('hex'), HTTP_TUNNEL.replace(/-/g, ''));
    assert.equal(bind.subarray(u + 16, u + 20).toString('hex'), '00000000', 'flag 0, weight 0');
  });

  it('takes the captured stream to the backend byte for byte and sends back UPD, the response in PSH frames, FIN', async (t) => {
    assert.ok(tunnelIn, 'needs the BIND');
    await send(tunnel, BIND_RESPONSE);
    frames = new SmuxLog(tunnelIn);
    const offs = SERVER!.frames.slice(0, 3).reduce((n, f) => n + 8 + f.data.length, BIND_RESPONSE.length);
    await send(tunnel, S2C.subarray(BIND_RESPONSE.length, offs)); // SYN 3, PSH header, PSH request

    const origin = await rig.backend.accept();
    const originIn = Inbox.of(origin);
    const req = await originIn.waitFor((b) => (parseHead(b) ? b : undefined), 'the HTTP request at the backend');
    await new Promise((r) => setTimeout(r, 50)); // anything burrow would add after the head
    assertBytes(req === originIn.buffered ? req : originIn.buffered, PROXIED_REQUEST, 'request bytes at the backend');
    origin.end(ORIGIN_RESPONSE);

    const got = await frames.waitFrame(FIN, 3);
    const sig = got.filter((f) => f.cmd !== 3);
    assertFramesAsCaptured(t, 'burrow -> server', sig, CLIENT!.frames);
    assertUpd(sig[0]!, 3, STREAM_HEADER.length + PROXIED_REQUEST.length, 'first frame');
    assert.deepEqual(streamPayloads(sig).get(3), ORIGIN_RESPONSE, 'PSH payload = the backend response');
    assert.ok(sig.every((f) => f.ver === 2), 'smux v2 frames');
    assert.equal(sig[sig.length - 1]!.cmd, FIN);

    // The gost server's last frames (UPD, FIN): burrow keeps the session.
    await send(tunnel, S2C.subarray(offs));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(tunnelIn.ended, false, 'the tunnel connection stays up after the stream');
  });
});
