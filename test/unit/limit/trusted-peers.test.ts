/** TrustedPeers: IPs and CIDRs of both families, IPv4-mapped peers, bad entries, the default. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TrustedPeers } from '../../../src/limit/trusted-peers';

describe('TrustedPeers', () => {
  it('trusts nobody by default', () => {
    for (const v of [undefined, '', null]) {
      const t = TrustedPeers.parse(v);
      assert.equal(t.trusts('127.0.0.1'), false);
      assert.equal(t.clientAddress('127.0.0.1:5000', '203.0.113.7'), '127.0.0.1:5000');
    }
  });

  it('matches addresses and CIDRs of both families, IPv4-mapped and bracketed forms', () => {
    const t = TrustedPeers.parse('10.0.0.0/8, 127.0.0.1,fd00::/8,[::1]');
    for (const ip of ['10.1.2.3', '::ffff:10.9.9.9', '127.0.0.1', 'fd12::1', '::1', '[::1]']) assert.equal(t.trusts(ip), true, ip);
    for (const ip of ['11.0.0.1', '127.0.0.2', 'fe80::1', '::2', 'localhost', '']) assert.equal(t.trusts(ip), false, ip);
    assert.equal(TrustedPeers.parse(['192.168.0.0/16']).trusts('192.168.4.4'), true);
  });

  it('takes the forwarded address only from a trusted peer, and only when it is an IP', () => {
    const t = TrustedPeers.parse('127.0.0.1');
    assert.equal(t.clientAddress('127.0.0.1:5000', '203.0.113.7'), '203.0.113.7:0');
    assert.equal(t.clientAddress('127.0.0.1:5000', '2001:db8::1'), '[2001:db8::1]:0');
    assert.equal(t.clientAddress('127.0.0.1:5000', 'evil'), '127.0.0.1:5000');
    assert.equal(t.clientAddress('127.0.0.1:5000', undefined), '127.0.0.1:5000');
    assert.equal(t.clientAddress('127.0.0.2:5000', '203.0.113.7'), '127.0.0.2:5000');
  });

  it('refuses what is not an IP or CIDR, naming it', () => {
    assert.throws(() => TrustedPeers.parse('10.0.0.0/33'), /"10\.0\.0\.0\/33": prefix length must be 0\.\.32/);
    assert.throws(() => TrustedPeers.parse('lb.example.com'), /"lb\.example\.com" is not an IP address or CIDR/);
    assert.throws(() => TrustedPeers.parse('10.0.0.0/x'), /prefix length/);
  });
});
