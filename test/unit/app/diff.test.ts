/**
 * What a reload counts as changed: a service's own config and every part it references (a
 * chain, the named hop of that chain, an auther, an ingress's sources, an sd, the global TLS);
 * an ingress's inline rules are not (they change in place). And the ports a service binds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Config } from '../../../src/core/config';
import { boundPorts, diffServices, fingerprints } from '../../../src/app/diff';

function base(): Config {
  return {
    services: [
      { name: 'tun', addr: ':8443', handler: { type: 'tunnel', ingress: 'rules', auther: 'users', metadata: { entrypoint: ':80', sd: 'disc' } }, listener: { type: 'tcp' } },
      { name: 'fwd', addr: ':2222', handler: { type: 'tcp', chain: 'c' }, listener: { type: 'tcp' }, forwarder: { nodes: [{ name: 'n', addr: '10.0.0.1:22' }] } },
      { name: 'plain', addr: ':3333', handler: { type: 'tcp' }, listener: { type: 'tcp' }, forwarder: { nodes: [{ name: 'n', addr: '10.0.0.2:22' }] } },
    ],
    chains: [{ name: 'c', hops: [{ name: 'h' }] }],
    hops: [{ name: 'h', nodes: [{ name: 'x', addr: '10.0.0.9:8443' }] }],
    authers: [{ name: 'users', auths: [{ username: 'a', password: 'b' }] }],
    ingresses: [{ name: 'rules', rules: [{ hostname: 'a.test', endpoint: '0b2f4a5e-1c3d-4e5f-8a9b-0c1d2e3f4a5b' }] }],
    sds: [{ name: 'disc', plugin: { addr: 'http://10.0.0.5:8000' } }],
  } as Config;
}

function changedBy(edit: (c: Config) => void): string[] {
  const next = base();
  edit(next);
  return diffServices(fingerprints(base()), fingerprints(next)).changed;
}

describe('reload difference', () => {
  it('finds nothing in an equal config, whatever the key order', () => {
    const reordered = JSON.parse(JSON.stringify(base(), (_k, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v))) as Config;
    const d = diffServices(fingerprints(base()), fingerprints(reordered));
    assert.deepEqual(d, { added: [], changed: [], removed: [], unchanged: ['tun', 'fwd', 'plain'] });
  });

  it('counts a change to a referenced part as a change of the service, and only of it', () => {
    assert.deepEqual(changedBy((c) => (c.hops![0]!.nodes![0]!.addr = '10.0.0.9:9443')), ['fwd']);
    assert.deepEqual(changedBy((c) => (c.chains![0]!.hops = [{ name: 'h', nodes: [{ name: 'y', addr: '10.0.0.8:1' }] }])), ['fwd']);
    assert.deepEqual(changedBy((c) => (c.authers![0]!.auths![0]!.password = 'c')), ['tun']);
    assert.deepEqual(changedBy((c) => (c.sds![0]!.plugin!.addr = 'http://10.0.0.6:8000')), ['tun']);
    assert.deepEqual(changedBy((c) => (c.ingresses![0]!.redis = { addr: '10.0.0.7:6379' })), ['tun']);
    assert.deepEqual(changedBy((c) => (c.services![2]!.forwarder!.nodes![0]!.addr = '10.0.0.3:22')), ['plain']);
    assert.deepEqual(changedBy((c) => (c.tls = { certFile: 'x.pem', keyFile: 'x.key' })), ['tun', 'fwd', 'plain']);
  });

  it('leaves inline ingress rules to the in-place update', () => {
    assert.deepEqual(changedBy((c) => (c.ingresses![0]!.rules = [])), []);
  });

  it('names added and removed services', () => {
    const next = base();
    next.services = [next.services![0]!, { ...next.services![2]!, name: 'new' }];
    const d = diffServices(fingerprints(base()), fingerprints(next));
    assert.deepEqual(d, { added: ['new'], changed: [], removed: ['fwd', 'plain'], unchanged: ['tun'] });
  });

  it('lists the ports a service binds: its address and its entry points', () => {
    const c = base();
    assert.deepEqual([...boundPorts(c.services![0]!)].sort(), ['tcp:80', 'tcp:8443']);
    const udp = { name: 'u', addr: '127.0.0.1:53', handler: { type: 'udp', metadata: { entrypoints: [{ addr: ':443', ingress: 'rules' }] } }, listener: { type: 'udp' } };
    assert.deepEqual([...boundPorts(udp)].sort(), ['tcp:443', 'udp:53']);
    assert.deepEqual([...boundPorts({ ...udp, addr: '127.0.0.1:0', handler: { type: 'udp' } })], []);
  });
});
