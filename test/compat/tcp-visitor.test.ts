/**
 * shared/vectors/tcp-visitor replayed against burrow in the three roles:
 *
 * - burrow as the **visitor** (`-L tcp://127.0.0.1:0/ssh.srv-2.local -F tunnel://<fake>?tunnel.id=…`)
 *   against a fake gost server;
 * - burrow as the **server** (the capture's server command) with a fake gost client (captured
 *   BIND and answer frames) and a fake gost visitor (captured CONNECT and payload);
 * - burrow as the **client** (`-L rtcp://:0/<echo> -F tunnel://<fake>?tunnel.id=…`) against a
 *   fake gost server replaying client-conn1.s2c, with a local TCP echo behind it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listenEcho } from '../helpers/net';
import {
  FIN,
  NOP,
  PSH,
  SYN,
  TCP_TUNNEL,
  Inbox,
  SmuxLog,
  UPD,
  addrPort,
  addrPortRange,
  assertBytes,
  assertUpd,
  captureServerUrl,
  describeFrames,
  dial,
  frameBytes,
  send,
  streamPayloads,
} from '../helpers/replay';
import {
  againstFakeServer,
  asServer,
  assertFramesAsCaptured,
  bindAtServer,
  connectAtServer,
  expectBind,
  loadCapture,
  skipWithoutVectors as skip,
  vectorLoader,
} from '../helpers/roles';

const V = 'tcp-visitor';
const load = vectorLoader(V);

const VISITOR_C2S = load('visitor-conn1.c2s');
const VISITOR_S2C = load('visitor-conn1.s2c');
const { c2s: CLIENT_C2S, s2c: CLIENT_S2C, client: CLIENT, server: SERVER } = loadCapture(V);

const CONNECT = skip ? Buffer.alloc(0) : VISITOR_C2S.subarray(0, 4 + VISITOR_C2S.readUInt16BE(2));
const VISITOR_PAYLOAD = VISITOR_C2S.subarray(CONNECT.length);
const CONNECT_OK = VISITOR_S2C.subarray(0, 4);
const ECHO = VISITOR_S2C.subarray(4);
// gost client (CLIENT): BIND, UPD 3, PSH 3 (echo), FIN 3.
// gost server (SERVER): BIND response, SYN 3, PSH 3 (header), PSH 3 (payload), UPD 3, FIN 3.

describe('tcp-visitor: the capture itself', { skip }, () => {
  it('has the messages the README describes', () => {
    assert.equal(CONNECT.subarray(0, 4).toString('hex'), '01010037');
    assert.equal(VISITOR_PAYLOAD.toString(), 'hello tcp visitor');
    assert.equal(CONNECT_OK.toString('hex'), '01000000');
    assert.equal(describeFrames(CLIENT!.frames), 'UPD 3 (consumed=4 window=1048576), PSH 3 (17), FIN 3');
    assert.equal(describeFrames(SERVER!.frames), 'SYN 3, PSH 3 (36), PSH 3 (17), UPD 3 (consumed=17 window=1048576), FIN 3');
  });
});

describe('tcp-visitor: burrow as the visitor, fake gost server', { skip }, () => {
  const rig = againstFakeServer({ tunnelId: TCP_TUNNEL, listen: () => 'tcp://127.0.0.1:0/ssh.srv-2.local' });

  it('sends the captured CONNECT (but the src port), then the payload; relays the answer back', async () => {
    const user = rig.own(await dial(rig.burrow.port()));
    const userIn = Inbox.of(user);
    const conn = await rig.fake.accept();
    const connIn = Inbox.of(conn);
    const connect = await connIn.readRelay('the CONNECT');
    assertBytes(connect, CONNECT, 'CONNECT', [addrPortRange(CONNECT, 0)]);
    assert.equal(addrPort(connect, 0), user.localPort, 'Addr src = the visitor\'s own client');
    await send(conn, CONNECT_OK);
    await send(user, VISITOR_PAYLOAD);
    assertBytes(await connIn.read(VISITOR_PAYLOAD.length, 'the payload'), VISITOR_PAYLOAD, 'payload after CONNECT');
    await send(conn, ECHO);
    assertBytes(await userIn.read(ECHO.length, 'the echo'), ECHO, 'payload back to the user');

    // The user closes: burrow half-closes toward the server, as gost's visitor does (c2s EOF).
    user.end();
    const rest = await connIn.waitEnd('EOF from the visitor');
    assert.equal(rest.length, 0, 'nothing after the payload');
    conn.end();
    await userIn.waitEnd('EOF at the user');
  });
});

describe('tcp-visitor: burrow as the server, fake gost client and fake gost visitor', { skip }, () => {
  const rig = asServer(captureServerUrl());

  it('BIND answer, CONNECT answer 01 00 00 00, then SYN + stream header + payload on the client connection', async (t) => {
    const { client, clientIn } = await bindAtServer(rig, CLIENT!.relay, SERVER!.relay, 'BIND response (endpoint 0c569fc1db45ea0b:0)');
    const frames = new SmuxLog(clientIn);

    const { visitor, visitorIn } = await connectAtServer(rig, CONNECT, CONNECT_OK, 'CONNECT response');
    await send(visitor, VISITOR_PAYLOAD);

    // The stream header carries the visitor's reported src (127.0.0.1:38414 from its CONNECT)
    // and ssh.srv-2.local:0: every byte of stream 3 is fixed.
    const want = streamPayloads(SERVER!.frames).get(3)!;
    await frames.waitPayload(3, want.length);
    const got = frames.significant;
    assert.deepEqual([got[0]!.cmd, got[0]!.sid], [SYN, 3], 'SYN 3 first');
    assertBytes(streamPayloads(got).get(3)!, want, 'stream 3 payload (header + visitor payload)');

    // The gost client's answer: UPD 3, PSH 3 (echo).
    await send(client, frameBytes(CLIENT_C2S, 0, 2));
    assertBytes(await visitorIn.read(ECHO.length, 'the echo'), ECHO, 'echo at the visitor');
    visitor.end();
    await frames.waitFrame(FIN, 3);
    await send(client, frameBytes(CLIENT_C2S, 2)); // FIN 3
    await visitorIn.waitEnd('EOF at the visitor');

    const sig = frames.significant;
    assertFramesAsCaptured(t, 'burrow -> client', sig, SERVER!.frames);
    assertUpd(sig.find((f) => f.cmd === UPD)!, 3, ECHO.length, 'UPD');
    assert.ok(sig.every((f) => f.ver === 2));
  });
});

describe('tcp-visitor: burrow as the client (rtcp), fake gost server', { skip }, () => {
  const rig = againstFakeServer({ tunnelId: TCP_TUNNEL, backend: listenEcho, listen: (echo) => `rtcp://:0/127.0.0.1:${echo.port}` });

  it('BIND as captured; the payload reaches the echo and comes back in PSH frames; UPD and FIN as gost', async (t) => {
    const conn = await rig.fake.accept();
    const connIn = Inbox.of(conn);
    await expectBind(connIn, conn, CLIENT!.relay, 'BIND');

    await send(conn, SERVER!.relay);
    const frames = new SmuxLog(connIn);
    await send(conn, frameBytes(CLIENT_S2C, 0, 3)); // SYN 3, PSH header, PSH payload
    await frames.waitPayload(3, ECHO.length);
    await send(conn, frameBytes(CLIENT_S2C, 3, 4)); // UPD 3
    await send(conn, frameBytes(CLIENT_S2C, 4)); // FIN 3
    await frames.waitFrame(FIN, 3);

    const sig = frames.frames.filter((f) => f.cmd !== NOP);
    assertFramesAsCaptured(t, 'burrow -> server', sig, CLIENT!.frames);
    assertUpd(sig[0]!, 3, 36 + VISITOR_PAYLOAD.length, 'UPD');
    assertBytes(streamPayloads(sig).get(3)!, streamPayloads(CLIENT!.frames).get(3)!, 'stream 3 payload (the echo)');
    assert.ok(sig.filter((f) => f.cmd === PSH).every((f) => f.ver === 2));
  });
});
