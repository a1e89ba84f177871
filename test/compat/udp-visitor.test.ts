/**
 * shared/vectors/udp-visitor replayed against burrow in the three roles:
 *
 * - burrow as the **visitor** (`-L udp://127.0.0.1:0/udp.srv-3.local -F tunnel://<fake>?tunnel.id=…`):
 *   two datagrams from two sockets = two TCP connections to the fake gost server, each with a
 *   CONNECT|UDP and length-framed datagrams;
 * - burrow as the **server** with a fake gost client (captured BIND|UDP and answer frames) and
 *   two fake gost visitors (captured CONNECTs);
 * - burrow as the **client** (`-L rudp://:0/<udp echo> -F …`) against a fake gost server
 *   replaying client-conn1.s2c (streams 3 and 5).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listenUdpEcho } from '../helpers/net';
import {
  FIN,
  NOP,
  SYN,
  UDP_TUNNEL,
  Inbox,
  SmuxLog,
  UPD,
  addrPort,
  addrPortRange,
  assertBytes,
  assertUpd,
  captureServerUrl,
  describeFrames,
  frameBytes,
  send,
  sleep,
  streamPayloads,
  tunnelUuidRange,
  udpSocket,
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

const V = 'udp-visitor';
const load = vectorLoader(V);

interface VisitorConn {
  name: string;
  connect: Buffer;
  /** Length-framed datagram the visitor sent after the CONNECT. */
  framed: Buffer;
  ok: Buffer;
  echo: Buffer;
}

function visitorConn(name: string): VisitorConn {
  const c2s = load(`${name}.c2s`);
  const s2c = load(`${name}.s2c`);
  const len = skip ? 0 : 4 + c2s.readUInt16BE(2);
  return { name, connect: c2s.subarray(0, len), framed: c2s.subarray(len), ok: s2c.subarray(0, 4), echo: s2c.subarray(4) };
}

const VISITORS = [visitorConn('visitor-conn1'), visitorConn('visitor-conn2')];
const { c2s: CLIENT_C2S, s2c: CLIENT_S2C, client: CLIENT, server: SERVER } = loadCapture(V);
// gost client (CLIENT): BIND|UDP, UPD 3, PSH 3, FIN 3, UPD 5, PSH 5, FIN 5.
// gost server (SERVER): BIND response, SYN 3, PSH 3 (header), PSH 3 (datagram), UPD 3, FIN 3, then the same for 5.

/** Frame index ranges per stream in the captures (c2s: 3 frames each, s2c: 5 frames each). */
const STREAMS = [
  { sid: 3, c2s: [0, 3], s2c: [0, 5] },
  { sid: 5, c2s: [3, 6], s2c: [5, 10] },
] as const;

describe('udp-visitor: the capture itself', { skip }, () => {
  it('has the messages the README describes', () => {
    for (const v of VISITORS) {
      assert.equal(v.connect.subarray(0, 9).toString('hex'), '0181003c0400020001');
      assert.equal(v.ok.toString('hex'), '01000000');
      assert.deepEqual(v.echo, v.framed);
    }
    assert.equal(CLIENT!.relay.subarray(0, 9).toString('hex'), '0182002d0400020001');
    assert.equal(
      describeFrames(CLIENT!.frames),
      'UPD 3 (consumed=4 window=1048576), PSH 3 (21), FIN 3, UPD 5 (consumed=4 window=1048576), PSH 5 (21), FIN 5',
    );
    assert.equal(
      describeFrames(SERVER!.frames),
      'SYN 3, PSH 3 (36), PSH 3 (21), UPD 3 (consumed=21 window=1048576), FIN 3, ' +
        'SYN 5, PSH 5 (36), PSH 5 (21), UPD 5 (consumed=21 window=1048576), FIN 5',
    );
  });
});

describe('udp-visitor: burrow as the visitor, fake gost server', { skip }, () => {
  const rig = againstFakeServer({ tunnelId: UDP_TUNNEL, listen: () => 'udp://127.0.0.1:0/udp.srv-3.local' });

  for (const [i, v] of VISITORS.entries()) {
    it(`${v.name}: CONNECT|UDP as captured (but the src port), then the length-framed datagram; the answer comes back as a datagram`, async () => {
      const u = await udpSocket();
      try {
        const datagram = v.framed.subarray(2);
        u.socket.send(datagram, rig.burrow.port(), '127.0.0.1');
        const conn = await rig.fake.accept();
        const connIn = Inbox.of(conn);
        const connect = await connIn.readRelay('the CONNECT');
        assertBytes(connect, v.connect, `CONNECT #${i + 1}`, [addrPortRange(v.connect, 0)]);
        assert.equal(addrPort(connect, 0), u.port, 'Addr src = the UDP client');
        await send(conn, v.ok);
        assertBytes(await connIn.read(v.framed.length, 'the framed datagram'), v.framed, 'framed datagram');
        await send(conn, v.echo);
        assert.deepEqual(await u.next(), datagram, 'the answer reaches the UDP client');
        // The UDP session ends after one answer (keepalive=false): the connection closes.
        const rest = await connIn.waitEnd('EOF from the visitor');
        assert.equal(rest.length, 0, 'nothing more on the connection');
        conn.end();
      } finally {
        u.close();
      }
    });
  }
});

describe('udp-visitor: burrow as the server, fake gost client and fake gost visitors', { skip }, () => {
  const rig = asServer(captureServerUrl());

  it('BIND|UDP answer (connector flag 01), then one stream per visitor: SYN, stream header, datagrams; UPD and FIN', async (t) => {
    const { client, clientIn, resp } = await bindAtServer(
      rig,
      CLIENT!.relay,
      SERVER!.relay,
      'BIND response (endpoint 8a0cc1cb81fefeb9:0, UDP connector)',
    );
    const [u] = tunnelUuidRange(resp);
    assert.equal(resp[u + 16], 0x01, 'connector ID flag 01 (UDP)');
    const frames = new SmuxLog(clientIn);

    for (const [i, v] of VISITORS.entries()) {
      const { sid, c2s } = STREAMS[i]!;
      const { visitor, visitorIn } = await connectAtServer(rig, v.connect, v.ok, `CONNECT response #${i + 1}`);
      await send(visitor, v.framed);

      const want = streamPayloads(SERVER!.frames).get(sid)!;
      await frames.waitPayload(sid, want.length);
      const first = frames.significant.find((f) => f.sid === sid)!;
      assert.deepEqual([first.cmd, first.sid], [SYN, sid], `SYN ${sid} opens the stream`);
      // src = the visitor's reported src (its CONNECT), dst = udp.srv-3.local:0: all bytes fixed.
      assertBytes(streamPayloads(frames.frames).get(sid)!, want, `stream ${sid} payload (header + framed datagram)`);

      // The gost client's answer: UPD, PSH (echo), FIN.
      await send(client, frameBytes(CLIENT_C2S, c2s[0], c2s[1]));
      assertBytes(await visitorIn.read(v.echo.length, 'the echo'), v.echo, `echo at visitor #${i + 1}`);
      await visitorIn.waitEnd(`EOF at visitor #${i + 1}`);
      visitor.end();
      await frames.waitFrame(FIN, sid);
    }

    const sig = frames.significant;
    assertFramesAsCaptured(t, 'burrow -> client', sig, SERVER!.frames);
    for (const { sid } of STREAMS) assertUpd(sig.find((f) => f.cmd === UPD && f.sid === sid)!, sid, 21, `UPD ${sid}`);
  });
});

describe('udp-visitor: burrow as the client (rudp), fake gost server', { skip }, () => {
  const rig = againstFakeServer({ tunnelId: UDP_TUNNEL, backend: listenUdpEcho, listen: (echo) => `rudp://:0/127.0.0.1:${echo.port}` });

  it('BIND|UDP as captured (0x82, Network first); each datagram reaches the echo and comes back framed as captured', async (t) => {
    const conn = await rig.fake.accept();
    const connIn = Inbox.of(conn);
    const bind = await expectBind(connIn, conn, CLIENT!.relay, 'BIND|UDP');
    assert.equal(bind.subarray(0, 9).toString('hex'), '0182002d0400020001', 'cmd 0x82, Network(udp) first');

    await send(conn, SERVER!.relay);
    const frames = new SmuxLog(connIn);
    const finBeforeServer: string[] = [];
    for (const { sid, s2c } of STREAMS) {
      await send(conn, frameBytes(CLIENT_S2C, s2c[0], s2c[0] + 3)); // SYN, PSH header, PSH datagram
      await frames.waitPayload(sid, 21);
      // gost's client sent its FIN right after the answer, before the server's UPD/FIN.
      await sleep(200);
      if (frames.frames.some((f) => f.cmd === FIN && f.sid === sid)) finBeforeServer.push(`${sid}`);
      await send(conn, frameBytes(CLIENT_S2C, s2c[0] + 3, s2c[1])); // UPD, FIN
      await frames.waitFrame(FIN, sid);
    }

    const sig = frames.frames.filter((f) => f.cmd !== NOP);
    t.diagnostic(`streams whose FIN burrow sent before the server's FIN: [${finBeforeServer.join(', ')}] (gost: [3, 5])`);
    assertFramesAsCaptured(t, 'burrow -> server', sig, CLIENT!.frames);
    for (const { sid } of STREAMS) {
      assertUpd(sig.find((f) => f.cmd === UPD && f.sid === sid)!, sid, 36 + 21, `UPD ${sid}`);
      assertBytes(streamPayloads(sig).get(sid)!, streamPayloads(CLIENT!.frames).get(sid)!, `stream ${sid} payload (framed echo)`);
    }
  });
});
