/**
 * shared/vectors/ws-transport (client-conn1: the HTTP tunnel client over `tunnel+ws://`)
 * replayed against burrow in both roles:
 *
 * - burrow as the **server** (`tunnel+ws://127.0.0.1:0?entrypoint=…&tunnel=…`): the test sends
 *   the captured upgrade request and the captured masked frames as they are, and plays curl;
 * - burrow as the **client** (`-F tunnel+ws://<fake>?tunnel.id=…`): the test answers the
 *   upgrade like gost and replays the captured server messages.
 *
 * Unmasked payloads are compared with the capture modulo the variable fields; how the byte
 * stream is cut into WebSocket messages is compared with gost's "one relay message or smux
 * frame per binary message".
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { loadChunks, unwrapWebSocket } from '../helpers/vectors';
import {
  FIN,
  HTTP_TUNNEL,
  Inbox,
  NOP,
  SYN,
  SmuxLog,
  UPD,
  WsPeer,
  addrPort,
  addrPortRange,
  assertBytes,
  assertUpd,
  captureFrames,
  captureServerUrl,
  describeFrames,
  dial,
  headerValue,
  listenRaw,
  parseHead,
  readHttpResponse,
  send,
  sleep,
  streamPayloads,
  tunnelUuidRange,
  wsAccept,
  wsMessageUnits,
  type WsMessage,
} from '../helpers/replay';
import {
  CAPTURED_BODY as BODY,
  againstFakeServer,
  asServer,
  assertFramesAsCaptured,
  curlThroughEntrypoint,
  expectBind,
  httpExchange,
  skipWithoutVectors as skip,
  vectorLoader,
} from '../helpers/roles';

const V = 'ws-transport';
const load = vectorLoader(V);
const C2S = load('client-conn1.c2s');
const S2C = load('client-conn1.s2c');
const C2S_WS = skip ? undefined : unwrapWebSocket(C2S);
const S2C_WS = skip ? undefined : unwrapWebSocket(S2C);
const UPGRADE_REQUEST = skip ? Buffer.alloc(0) : C2S.subarray(0, C2S_WS!.head.length);
const UPGRADE_RESPONSE = skip ? Buffer.alloc(0) : S2C.subarray(0, S2C_WS!.head.length);
/** Unmasked: BIND, UPD 3, PSH 3 (response head), PSH 3 (body), FIN 3. */
const CLIENT = skip ? undefined : captureFrames(C2S_WS!.payload);
/** BIND response, SYN 3, PSH 3 (header), PSH 3 (request), UPD 3, FIN 3. */
const SERVER = skip ? undefined : captureFrames(S2C_WS!.payload);
const EXCHANGE = httpExchange({ client: CLIENT, server: SERVER });
const { streamHeader: STREAM_HEADER, proxiedRequest: PROXIED_REQUEST, originResponse: ORIGIN_RESPONSE } = EXCHANGE;

/** Offsets in the raw capture where each WebSocket message starts (after the HTTP head). */
function messageOffsets(raw: Buffer, headLen: number): number[] {
  const out: number[] = [];
  let pos = headLen;
  while (pos < raw.length) {
    out.push(pos);
    const b1 = raw[pos + 1]!;
    let len = b1 & 0x7f;
    let p = pos + 2;
    if (len === 126) {
      len = raw.readUInt16BE(p);
      p += 2;
    }
    if (b1 & 0x80) p += 4;
    pos = p + len;
  }
  out.push(pos);
  return out;
}


function describeMessages(ms: readonly WsMessage[]): string {
  return ms.map((m) => `${m.b0.toString(16)}${m.masked ? '/masked' : ''}(${m.payload.length})`).join(' ');
}

describe('ws-transport: the capture itself', { skip }, () => {
  it('is the http-entrypoint exchange in one binary message per relay message / smux frame', () => {
    assert.equal(describeFrames(CLIENT!.frames), 'UPD 3 (consumed=4 window=1048576), PSH 3 (185), PSH 3 (29), FIN 3');
    assert.equal(describeFrames(SERVER!.frames), 'SYN 3, PSH 3 (36), PSH 3 (189), UPD 3 (consumed=185 window=1048576), FIN 3');
    const c = messageOffsets(C2S, UPGRADE_REQUEST.length);
    const s = messageOffsets(S2C, UPGRADE_RESPONSE.length);
    assert.equal(c.length - 1, 1 + CLIENT!.frames.length);
    assert.equal(s.length - 1, 1 + SERVER!.frames.length);
  });
});

describe('ws-transport: burrow as the tunnel+ws server, replaying the gost client', { skip }, () => {
  let tunnel: net.Socket;
  let tunnelIn: Inbox;
  let ws: WsPeer;
  let frames: SmuxLog;
  const offs = skip ? [] : messageOffsets(C2S, UPGRADE_REQUEST.length);

  const rig = asServer(captureServerUrl('tunnel+ws'));

  it('answers the captured upgrade request with gost\'s 101 (same key → same bytes)', async () => {
    tunnel = rig.own(await dial(rig.burrow.port()));
    tunnelIn = Inbox.of(tunnel);
    await send(tunnel, UPGRADE_REQUEST);
    const head = await tunnelIn.waitFor((b) => parseHead(b), 'the 101 response');
    const raw = tunnelIn.take(head.length);
    assert.equal(head.startLine, 'HTTP/1.1 101 Switching Protocols');
    assertBytes(raw, UPGRADE_RESPONSE, '101 response');
    ws = new WsPeer(tunnel, tunnelIn);
  });

  it('answers the masked BIND in one unmasked binary message: endpoint a6265c6d9847a4be:0, connector flag 0', async () => {
    assert.ok(ws, 'needs the upgrade');
    await send(tunnel, C2S.subarray(offs[0]!, offs[1]!));
    const resp = await ws.payload.readRelay('the BIND response');
    assertBytes(resp, SERVER!.relay, 'BIND response', [tunnelUuidRange(SERVER!.relay)]);
    assert.equal(ws.messages[0]!.b0, 0x82, 'binary message, FIN set');
    assert.equal(ws.messages[0]!.masked, false, 'server messages are not masked');
    frames = new SmuxLog(ws.payload);
  });

  it('sends SYN 3, the stream header and the HTTP request; returns the client\'s captured answer to curl', async (t) => {
    assert.ok(frames, 'needs the BIND');
    const { curl, curlIn, head: got } = await curlThroughEntrypoint(rig, frames, EXCHANGE, 'stream header and request on stream 3');
    const sig = got.filter((f) => f.cmd !== NOP);
    assert.deepEqual([sig[0]!.cmd, sig[0]!.sid], [SYN, 3]);
    const payload = streamPayloads(sig).get(3)!;
    const hdr = payload.subarray(0, STREAM_HEADER.length);
    assertBytes(hdr, STREAM_HEADER, 'stream header', [addrPortRange(STREAM_HEADER, 0)]);
    assert.equal(addrPort(hdr, 0), curl.localPort);
    const req = parseHead(payload.subarray(STREAM_HEADER.length))!;
    const want = parseHead(PROXIED_REQUEST)!;
    assert.equal(req.startLine, want.startLine);
    assert.deepEqual(req.headers.map(([k]) => k), want.headers.map(([k]) => k));

    // The gost client's messages (UPD, PSH, PSH, FIN), masked as captured, in the captured reads.
    for (const r of loadChunks(V, 'client-conn1')) {
      if (r.dir === 'c2s' && r.offset >= offs[1]!) await send(tunnel, r.data);
    }
    const resp = await readHttpResponse(curlIn);
    assert.match(resp.head.startLine, /^HTTP\/1\.[01] 200 OK$/);
    assert.equal(resp.body.toString('latin1'), BODY);
    const all = (await frames.waitFrame(FIN, 3)).filter((f) => f.cmd !== NOP);
    assertFramesAsCaptured(t, 'burrow -> client', all, SERVER!.frames);
    assertUpd(all.find((f) => f.cmd === UPD)!, 3, ORIGIN_RESPONSE.length, 'UPD');
  });

  it('writes each relay message and each smux frame in its own unmasked binary message, as gost', async (t) => {
    assert.ok(frames && frames.frames.some((f) => f.cmd === FIN), 'needs the exchange');
    await sleep(50);
    t.diagnostic(`burrow's messages: ${describeMessages(ws.messages)}`);
    assert.ok(ws.messages.every((m) => m.b0 === 0x82 && !m.masked), 'every message: binary, FIN set, unmasked');
    const u = wsMessageUnits(ws.messages);
    if (u.batched.length) t.diagnostic(`batched (acceptable on the wire): ${u.batched.join('; ')}`);
    assert.deepEqual(u.split, [], 'no relay message / smux frame spread over several messages');
  });
});

describe('ws-transport: burrow as the tunnel+ws client, replaying the gost server', { skip }, () => {
  let conn: net.Socket;
  let connIn: Inbox;
  let ws: WsPeer;
  const offs = skip ? [] : messageOffsets(S2C, UPGRADE_RESPONSE.length);

  const rig = againstFakeServer({
    tunnelId: HTTP_TUNNEL,
    scheme: 'tunnel+ws',
    backend: listenRaw,
    listen: (backend) => `rtcp://:0/127.0.0.1:${backend.port}`,
  });

  it('upgrades with GET /ws HTTP/1.1, Host = the node address, Upgrade, Connection, Sec-WebSocket-Version: 13', async (t) => {
    conn = rig.own(await rig.fake.accept());
    connIn = Inbox.of(conn);
    const head = await connIn.waitFor((b) => parseHead(b), 'the upgrade request');
    connIn.take(head.length);
    const gost = parseHead(UPGRADE_REQUEST)!;
    t.diagnostic(`burrow's upgrade header lines: ${head.headers.map(([k, v]) => `${k}: ${v}`).join(' | ')}`);
    t.diagnostic(`gost's upgrade header lines:   ${gost.headers.map(([k, v]) => `${k}: ${v}`).join(' | ')}`);
    assert.equal(head.startLine, 'GET /ws HTTP/1.1');
    assert.equal(headerValue(head, 'Host'), `127.0.0.1:${rig.fake.port}`);
    assert.equal(headerValue(head, 'Upgrade')?.toLowerCase(), 'websocket');
    assert.equal(headerValue(head, 'Connection')?.toLowerCase(), 'upgrade');
    assert.equal(headerValue(head, 'Sec-WebSocket-Version'), '13');
    const key = headerValue(head, 'Sec-WebSocket-Key') ?? '';
    assert.equal(Buffer.from(key, 'base64').length, 16, 'Sec-WebSocket-Key is 16 random bytes');
    assert.equal(headerValue(head, 'Sec-WebSocket-Protocol'), undefined, 'no subprotocol');
    assert.equal(headerValue(head, 'Sec-WebSocket-Extensions'), undefined, 'no permessage-deflate');
    // gost's 101, with the accept value for burrow's key.
    const answer = UPGRADE_RESPONSE.toString('latin1').replace(/(Sec-WebSocket-Accept: )[^\r]+/, `$1${wsAccept(key)}`);
    await send(conn, answer);
    ws = new WsPeer(conn, connIn);
  });

  it('sends the BIND (masked) as captured but the src port', async () => {
    assert.ok(ws, 'needs the upgrade');
    await expectBind(ws.payload, conn, CLIENT!.relay, 'BIND');
  });

  it('carries the captured stream to the backend and answers UPD, PSH (the response), FIN', async (t) => {
    assert.ok(ws, 'needs the BIND');
    await send(conn, S2C.subarray(offs[0]!, offs[1]!)); // BIND response message
    const frames = new SmuxLog(ws.payload);
    await send(conn, S2C.subarray(offs[1]!, offs[4]!)); // SYN, PSH header, PSH request messages
    const origin = await rig.backend.accept();
    const originIn = Inbox.of(origin);
    await originIn.waitFor((b) => parseHead(b), 'the request at the backend');
    await sleep(50);
    assertBytes(originIn.buffered, PROXIED_REQUEST, 'request bytes at the backend');
    origin.end(ORIGIN_RESPONSE);
    await frames.waitFrame(FIN, 3);
    await send(conn, S2C.subarray(offs[4]!)); // UPD, FIN messages
    const sig = frames.frames.filter((f) => f.cmd !== NOP);
    assertFramesAsCaptured(t, 'burrow -> server', sig, CLIENT!.frames);
    assertUpd(sig[0]!, 3, STREAM_HEADER.length + PROXIED_REQUEST.length, 'UPD');
    assert.deepEqual(streamPayloads(sig).get(3), ORIGIN_RESPONSE);
  });

  it('writes each relay message and each smux frame in its own masked binary message, as gost', async (t) => {
    assert.ok(ws && ws.messages.length > 1, 'needs the exchange');
    t.diagnostic(`burrow's messages: ${describeMessages(ws.messages)}`);
    assert.ok(ws.messages.every((m) => m.b0 === 0x82 && m.masked), 'every message: binary, FIN set, masked');
    const u = wsMessageUnits(ws.messages);
    if (u.batched.length) t.diagnostic(`batched (acceptable on the wire): ${u.batched.join('; ')}`);
    assert.deepEqual(u.split, [], 'no relay message / smux frame spread over several messages');
  });
});
