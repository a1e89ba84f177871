/**
 * Streams kept between requests: per visitor connection (ConnectionStreams) and per entry point
 * (IdlePool), with their bounds, over real pool connectors — a kept stream is idle at its
 * connector (closed first when it drains), a dead one is never handed out, a stream that ends
 * or speaks while idle leaves the pool.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ConnectorEntry, TunnelPool, type PoolSession } from '../../../../src/handler/tunnel/pool';
import net from 'node:net';
import { Upstream, remoteKeyOf, sharedKeyOf } from '../../../../src/handler/tunnel/entrypoint/http/upstream';
import { ForwardStream } from '../../../../src/handler/tunnel/forward';
import {
  ConnectionStreams,
  IdlePool,
  MAX_IDLE_PER_KEY,
  MAX_POOLED_PER_CONNECTION,
} from '../../../../src/handler/tunnel/entrypoint/http/idle-pool';

class Session implements PoolSession {
  isClosed = false;
  openStream() {
    return new PassThrough();
  }
  close() {
    this.isClosed = true;
  }
}

const T = 'tunnel-a';
function setup(): { pool: TunnelPool; entry: ConnectorEntry; open: (src?: string, peer?: string) => Upstream } {
  const pool = new TunnelPool();
  const entry = new ConnectorEntry('c1', T, 'tcp', 1, new Session(), '127.0.0.1:1');
  pool.add(entry);
  return { pool, entry, open: (src = '1.2.3.4:5', peer = '10.0.0.1:7') => new Upstream(pool.openStream(T, 'tcp').stream, 'app.local:80', src, peer) };
}
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('IdlePool', () => {
  test('the most recent idle stream of a key is taken first; the stream is idle at its connector meanwhile', () => {
    const { entry, open } = setup();
    const idle = new IdlePool();
    const a = open();
    const b = open();
    assert.ok(idle.put(a));
    assert.ok(idle.put(b));
    assert.equal(idle.size, 2);
    assert.ok(entry.idle.has(a.stream) && entry.idle.has(b.stream));
    const key = sharedKeyOf('c1', 'app.local:80', '1.2.3.4:9999', '10.0.0.1:8');
    assert.equal(a.sharedKey, key, 'only the addresses count, not their ports');
    assert.equal(idle.take(key), b);
    assert.equal(entry.idle.has(b.stream), false, 'busy again');
    assert.equal(idle.take(key), a);
    assert.equal(idle.take(key), undefined);
    idle.close();
  });

  test('other client IPs, socket addresses and hosts do not share streams', () => {
    const { open } = setup();
    const idle = new IdlePool();
    idle.put(open('1.2.3.4:5'));
    assert.equal(idle.take(sharedKeyOf('c1', 'app.local:80', '9.9.9.9:5', '10.0.0.1:7')), undefined);
    // A forwarded header naming the same client from another socket address gets nothing.
    assert.equal(idle.take(sharedKeyOf('c1', 'app.local:80', '1.2.3.4:5', '10.6.6.6:7')), undefined);
    assert.equal(idle.take(sharedKeyOf('c1', 'other.local:80', '1.2.3.4:5', '10.0.0.1:7')), undefined);
    assert.equal(idle.take(sharedKeyOf('c2', 'app.local:80', '1.2.3.4:5', '10.0.0.1:7')), undefined);
    assert.ok(idle.take(sharedKeyOf('c1', 'app.local:80', '1.2.3.4:5', '10.0.0.1:7')));
    idle.close();
  });

  test('a stream that ended meanwhile is not handed out; one that ends while idle leaves the pool', async () => {
    const { open } = setup();
    const idle = new IdlePool();
    const a = open();
    const b = open();
    idle.put(a);
    idle.put(b);
    b.stream.destroy();
    await settle();
    assert.equal(idle.size, 1, 'the closed one left');
    a.stream.end();
    assert.equal(idle.take(a.sharedKey), undefined, 'half-closed: not reusable');
    assert.equal(a.stream.destroyed, true);
    idle.close();
  });

  test('bytes from an idle stream (an origin talking out of turn) close it', async () => {
    const { open } = setup();
    const idle = new IdlePool();
    const a = open();
    idle.put(a);
    (a.stream as PassThrough).write('HTTP/1.1 200 OK\r\n\r\n');
    await settle();
    assert.equal(a.stream.destroyed, true);
    assert.equal(idle.size, 0);
    idle.close();
  });

  test('at most MAX_IDLE_PER_KEY per key: the oldest goes', () => {
    const { open } = setup();
    const idle = new IdlePool();
    const ups = Array.from({ length: MAX_IDLE_PER_KEY + 1 }, () => open());
    for (const up of ups) idle.put(up);
    assert.equal(idle.size, MAX_IDLE_PER_KEY);
    assert.equal(ups[0]!.stream.destroyed, true);
    assert.equal(ups[1]!.stream.destroyed, false);
    idle.close();
    assert.equal(ups[1]!.stream.destroyed, true, 'close() closes them all');
  });

  test('a draining connector closes its idle streams, not its busy ones', () => {
    const { entry, open } = setup();
    const idle = new IdlePool();
    const kept = open();
    const busy = open();
    idle.put(kept);
    entry.drain();
    assert.equal(kept.stream.destroyed, true);
    assert.equal(busy.stream.destroyed, false);
    assert.equal(busy.reusable, false, 'a draining connector takes no new request');
    idle.close();
  });
});

describe('IdlePool: streams to another server of the fleet', () => {
  test('kept per tunnel, node, host, socket address and client IP once the node answered; never for another visitor', async () => {
    // A real loopback connection stands for the node's answer (a spliced relay CONNECT).
    const srv = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    let answer!: (r: { status: number; socket?: net.Socket; node?: string }) => void;
    const fs = new ForwardStream(new Promise((r) => (answer = r)));
    const up = new Upstream(fs, 'app.local:80', '1.2.3.4:5', '10.0.0.1:7', T);
    const idle = new IdlePool();
    try {
      // No node yet (or none ever: a refusal): nothing to key it by, the entry point does not keep it.
      assert.equal(up.poolable, false);
      answer({ status: 5 });
      await new Promise((r) => fs.once('close', r));
      assert.equal(up.poolable, false);
      assert.equal(up.reusable, false);
      const fs2 = new ForwardStream(new Promise((r) => (answer = r)));
      const up2 = new Upstream(fs2, 'app.local:80', '1.2.3.4:5', '10.0.0.1:7', T);
      const sock = net.connect(port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      answer({ status: 0, socket: sock, node: 'node-a' });
      await settle();
      assert.equal(fs2.node, 'node-a');
      assert.equal(up2.poolable, true);
      assert.equal(up2.sharedKey, sharedKeyOf(remoteKeyOf(T, 'node-a'), 'app.local:80', '1.2.3.4:5', '10.0.0.1:7'));
      assert.ok(idle.put(up2));
      assert.equal(idle.take(sharedKeyOf(remoteKeyOf(T, 'node-b'), 'app.local:80', '1.2.3.4:9', '10.0.0.1:8')), undefined, 'another node');
      assert.equal(idle.take(sharedKeyOf(remoteKeyOf(T, 'node-a'), 'app.local:80', '1.2.3.4:9', '10.0.0.2:8')), undefined, 'another socket address');
      assert.equal(idle.take(sharedKeyOf(remoteKeyOf(T, 'node-a'), 'app.local:80', '1.2.3.5:9', '10.0.0.1:8')), undefined, 'another client IP');
      assert.equal(idle.take(sharedKeyOf(remoteKeyOf('tunnel-b', 'node-a'), 'app.local:80', '1.2.3.4:9', '10.0.0.1:8')), undefined, 'another tunnel');
      assert.equal(idle.take(sharedKeyOf(remoteKeyOf(T, 'node-a'), 'app.local:80', '1.2.3.4:9', '10.0.0.1:8')), up2, 'the same visitor');
      // The node closes it while idle: it leaves the pool.
      assert.ok(idle.put(up2));
      sock.destroy();
      await new Promise((r) => fs2.once('close', r));
      assert.equal(idle.size, 0);
    } finally {
      idle.close();
      await new Promise((r) => srv.close(r));
    }
  });
});

describe('ConnectionStreams', () => {
  test('one stream per key; a new one under a key replaces (and closes) the old', () => {
    const { open } = setup();
    const cs = new ConnectionStreams();
    const a = open();
    const b = open();
    cs.put('k', a);
    cs.put('k', b);
    assert.equal(a.stream.destroyed, true);
    assert.equal(cs.take('k'), b);
    assert.equal(cs.take('k'), undefined);
  });

  test(`at most ${MAX_POOLED_PER_CONNECTION} keys: the oldest goes; takeAll empties it`, () => {
    const { open } = setup();
    const cs = new ConnectionStreams();
    const ups = Array.from({ length: MAX_POOLED_PER_CONNECTION + 1 }, (_, i) => {
      const up = open();
      cs.put(`k${i}`, up);
      return up;
    });
    assert.equal(ups[0]!.stream.destroyed, true);
    const all = cs.takeAll();
    assert.equal(all.length, MAX_POOLED_PER_CONNECTION);
    assert.deepEqual(cs.takeAll(), []);
  });

  test('a kept stream that cannot carry a request is closed instead of taken', () => {
    const { open } = setup();
    const cs = new ConnectionStreams();
    const a = open();
    cs.put('k', a);
    a.stream.end();
    assert.equal(cs.take('k'), undefined);
    assert.equal(a.stream.destroyed, true);
  });
});
