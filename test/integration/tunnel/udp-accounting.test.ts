/**
 * Byte accounting of UDP through a tunnel: the visitor's udp service and the client's rudp
 * service log (and count in metrics) payload bytes in each direction, from their own side:
 * the visitor's input is what its clients sent, the client's input is what came down the
 * tunnel for its service.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { startApp, type RunningApp } from '../../helpers/inproc';

const UID = '5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6';

async function ended(app: RunningApp, service: string): Promise<Record<string, unknown>> {
  const end = Date.now() + 5000;
  for (;;) {
    const line = app.logs.find((l) => l.service === service && typeof l.inputBytes === 'number' && String(l.msg).includes('><'));
    if (line) return line;
    if (Date.now() > end) throw new Error(`no end-of-connection line from ${service}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// With a relay idle timeout the datagrams go through the byte relay over framed views instead
// of the datagram relay: both must count alike.
for (const [variant, q] of [
  ['the datagram relay', ''],
  ['a relay idle timeout', 'idleTimeout=5s'],
] as const) {
  test(`UDP through a tunnel (${variant}): each side counts the payload bytes it took in and gave out`, async () => {
    // A service that answers every datagram with it twice over.
    const svc = dgram.createSocket('udp4');
    svc.on('message', (m, r) => svc.send(Buffer.concat([m, m]), r.port, r.address));
    svc.bind(0, '127.0.0.1');
    await once(svc, 'listening');
    after(() => svc.close());

    const server = await startApp({ L: [`tunnel://127.0.0.1:0?tunnel=dgram.local:$${UID}`], level: 'info' });
    after(() => server.stop());
    const client = await startApp({
      L: [`rudp://:0/127.0.0.1:${svc.address().port}${q ? `?${q}` : ''}`],
      F: [`tunnel://${server.addr()}?tunnel.id=${UID}`],
    });
    after(() => client.stop());
    await client.bound;
    const visitor = await startApp({
      L: [`udp://127.0.0.1:0/dgram.local?keepalive=true&ttl=200ms${q ? `&${q}` : ''}`],
      F: [`tunnel://${server.addr()}?tunnel.id=${UID}`],
    });
    after(() => visitor.stop());

    const u = dgram.createSocket('udp4');
    after(() => u.close());
    const replies: Buffer[] = [];
    u.on('message', (m) => replies.push(m));
    for (const size of [100, 1400, 0]) {
      const n = replies.length;
      u.send(Buffer.alloc(size, 7), visitor.port(0), '127.0.0.1');
      const end = Date.now() + 3000;
      while (replies.length === n) {
        if (Date.now() > end) throw new Error(`no reply to a ${size}-byte datagram`);
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    assert.deepEqual(replies.map((b) => b.length), [200, 2800, 0]);

    // The session expires (ttl) and both sides log what moved.
    const v = await ended(visitor, 'service-0');
    assert.equal(v.inputBytes, 1500);
    assert.equal(v.outputBytes, 3000);
    const c = await ended(client, 'service-0');
    assert.equal(c.inputBytes, 1500);
    assert.equal(c.outputBytes, 3000);
  });
}
