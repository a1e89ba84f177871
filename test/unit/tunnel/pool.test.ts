import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ConnectorEntry, TunnelPool, connectorOf, type PoolSession } from '../../../src/handler/tunnel/pool';
import { routeConnect } from '../../../src/handler/tunnel/router';

class FakeSession implements PoolSession {
  isClosed = false;
  opened = 0;
  openStream() {
    if (this.isClosed) throw new Error('closed');
    this.opened++;
    return new PassThrough();
  }
  close() {
    this.isClosed = true;
  }
}

const T = 'tunnel-a';
function entry(id: string, weight: number, network: 'tcp' | 'udp' = 'tcp'): ConnectorEntry {
  return new ConnectorEntry(id, T, network, weight, new FakeSession(), '127.0.0.1:1');
}
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('connector selection (behavior.md §3.2)', () => {
  test('weighted random: weights 1 and 3 share about 1:3', () => {
    const p = new TunnelPool();
    p.random = seeded(1);
    const a = entry('a', 1);
    const b = entry('b', 3);
    p.add(a);
    p.add(b);
    let nb = 0;
    for (let i = 0; i < 4000; i++) if (p.select(T, 'tcp') === b) nb++;
    assert.ok(nb > 2800 && nb < 3200, `b picked ${nb}/4000`);
  });
  test('weight 0 counts as 1', () => {
    const p = new TunnelPool();
    p.random = seeded(2);
    const a = entry('a', 0);
    const b = entry('b', 1);
    p.add(a);
    p.add(b);
    let na = 0;
    for (let i = 0; i < 2000; i++) if (p.select(T, 'tcp') === a) na++;
    assert.ok(na > 850 && na < 1150, `a picked ${na}/2000`);
  });
  test('weight 255 excludes all lower weights', () => {
    const p = new TunnelPool();
    const low = entry('low', 200);
    const ex1 = entry('ex1', 255);
    const ex2 = entry('ex2', 255);
    p.add(low);
    p.add(ex1);
    p.add(ex2);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(p.select(T, 'tcp')!.id);
    assert.deepEqual([...seen].sort(), ['ex1', 'ex2']);
  });
  test('tcp and udp connectors are kept apart, including a single connector', () => {
    const p = new TunnelPool();
    p.add(entry('u', 1, 'udp'));
    assert.equal(p.select(T, 'tcp'), undefined);
    p.add(entry('t', 1, 'tcp'));
    assert.equal(p.select(T, 'tcp')!.id, 't');
    assert.equal(p.select(T, 'udp')!.id, 'u');
  });
  test('closed and draining connectors are skipped at once', () => {
    const p = new TunnelPool();
    const a = entry('a', 1);
    const b = entry('b', 1);
    p.add(a);
    p.add(b);
    a.session.close();
    b.draining = true;
    assert.equal(p.select(T, 'tcp'), undefined);
    assert.throws(() => p.openStream(T, 'tcp'), /not available/);
  });
  test('openStream counts streams per connector and enforces maxStreamsPerConnector', () => {
    const p = new TunnelPool({ maxStreamsPerConnector: 2 });
    const a = entry('a', 1);
    p.add(a);
    const s1 = p.openStream(T, 'tcp').stream;
    p.openStream(T, 'tcp');
    assert.equal(a.streams, 2);
    assert.throws(() => p.openStream(T, 'tcp'), /not available/);
    s1.destroy();
    return new Promise<void>((r) =>
      setImmediate(() => {
        assert.equal(a.streams, 1);
        assert.ok(p.openStream(T, 'tcp'));
        r();
      }),
    );
  });
  test('at maxStreamsPerConnector an idle stream (kept for a later request) gives way to a new one', () => {
    const p = new TunnelPool({ maxStreamsPerConnector: 2 });
    const a = entry('a', 1);
    p.add(a);
    const idle = p.openStream(T, 'tcp').stream;
    const busy = p.openStream(T, 'tcp').stream;
    assert.equal(connectorOf(idle), a, 'a stream knows its connector');
    a.setIdle(idle, true);
    assert.equal(a.idleStream(), idle);
    assert.equal(p.select(T, 'tcp'), a, 'still a candidate: it has an idle stream');
    const fresh = p.openStream(T, 'tcp').stream;
    assert.equal(idle.destroyed, true, 'the idle stream was closed');
    assert.equal(busy.destroyed, false, 'the busy one was not');
    assert.equal(a.streams, 2);
    assert.ok(a.openStreams.has(fresh) && !a.openStreams.has(idle));
    assert.equal(a.idleStream(), undefined, 'the reclaimed stream is no longer idle');
    assert.throws(() => p.openStream(T, 'tcp'), /not available/, 'no idle stream left');
  });
  test('limits on tunnels and connectors per tunnel', () => {
    const p = new TunnelPool({ maxTunnels: 1, maxConnectorsPerTunnel: 2 });
    p.add(entry('a', 1));
    p.add(entry('b', 1));
    assert.throws(() => p.add(entry('c', 1)), /connector limit/);
    assert.throws(() => p.add(new ConnectorEntry('d', 'other', 'tcp', 1, new FakeSession(), '')), /tunnel limit/);
  });
  test('remove drops empty tunnels', () => {
    const p = new TunnelPool();
    const a = entry('a', 1);
    p.add(a);
    assert.equal(p.tunnelCount, 1);
    p.remove(a);
    assert.equal(p.tunnelCount, 0);
  });
});

describe('CONNECT routing (behavior.md §2.1)', () => {
  const A = 'a';
  const B = 'b';
  const EP = 'ep';
  const cases: Array<[string, Parameters<typeof routeConnect>[0], string | number]> = [
    ['private visitor reaches its own tunnel through a rule', { host: 'h', route: { tunnelId: A, private: false }, visitorTunnelId: A, entrypointId: undefined, direct: false }, A],
    ['private visitor reaches a $ rule of its own tunnel', { host: 'h', route: { tunnelId: A, private: true }, visitorTunnelId: A, entrypointId: undefined, direct: false }, A],
    ['private visitor cannot reach another tunnel', { host: 'h', route: { tunnelId: B, private: false }, visitorTunnelId: A, entrypointId: undefined, direct: false }, 0x06],
    ['no rule, no direct mode', { host: 'h', route: undefined, visitorTunnelId: A, entrypointId: undefined, direct: false }, 0x06],
    ['direct mode routes by the visitor ID', { host: '', route: undefined, visitorTunnelId: A, entrypointId: undefined, direct: true }, A],
    ['public visitor, public rule', { host: 'h', route: { tunnelId: B, private: false }, visitorTunnelId: EP, entrypointId: EP, direct: false }, B],
    ['public visitor, private rule', { host: 'h', route: { tunnelId: B, private: true }, visitorTunnelId: EP, entrypointId: EP, direct: false }, 0x06],
    ['public visitor, no rule', { host: 'h', route: undefined, visitorTunnelId: EP, entrypointId: EP, direct: true }, 0x07],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      const d = routeConnect(input);
      if (typeof want === 'string') assert.deepEqual(d, { ok: true, tunnelId: want });
      else assert.equal(d.ok ? -1 : d.status, want);
    });
  }
});
