import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createCertificate, generateEcKeyPair } from '../../../src/transport/tls/x509';

describe('createCertificate', () => {
  it('writes a self-signed ECDSA P-256 CA that verifies with its own key', () => {
    const ca = createCertificate({ subject: { commonName: 'burrow', organization: 'burrow' }, isCa: true, keyUsage: ['digitalSignature', 'keyCertSign'] });
    const x = new X509Certificate(ca.certPem);
    assert.equal(x.subject, 'O=burrow\nCN=burrow');
    assert.equal(x.issuer, x.subject);
    assert.equal(x.ca, true);
    assert.ok(x.verify(ca.publicKey));
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('signs a leaf with DNS, IPv4 and IPv6 names for a CA', () => {
    const ca = createCertificate({ subject: { commonName: 'CA' }, isCa: true, keyUsage: ['keyCertSign'] });
    const leaf = createCertificate({
      subject: { commonName: 'host.test' },
      sans: ['host.test', '127.0.0.1', '::1', '2001:db8::42'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      issuer: { subject: { commonName: 'CA' }, privateKey: ca.privateKey, publicKey: ca.publicKey },
    });
    const x = new X509Certificate(leaf.certPem);
    assert.equal(x.ca, false);
    assert.ok(x.verify(ca.publicKey));
    assert.ok(x.checkIssued(new X509Certificate(ca.certPem)));
    assert.equal(x.checkHost('host.test'), 'host.test');
    assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x.checkIP('2001:db8::42'), '2001:db8::42');
    assert.equal(x.checkIP('::1'), '::1');
    assert.equal(x.checkIP('127.0.0.2'), undefined);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  });

  it('honours the validity and an RSA issuer', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const leaf = createCertificate({
      subject: { commonName: 'short' },
      validityMs: 24 * 3600 * 1000,
      keyPair: generateEcKeyPair(),
      issuer: { subject: { commonName: 'RSA CA' }, privateKey: rsa.privateKey, publicKey: rsa.publicKey },
    });
    const x = new X509Certificate(leaf.certPem);
    assert.ok(x.verify(rsa.publicKey));
    const hours = (Date.parse(x.validTo) - Date.now()) / 3_600_000;
    assert.ok(hours > 23 && hours <= 24.01, `${hours} hours left`);
    assert.ok(Date.parse(x.validFrom) <= Date.now());
  });

  it('uses GeneralizedTime past 2049', () => {
    const far = createCertificate({ subject: { commonName: 'far' }, validityMs: 40 * 365 * 24 * 3600 * 1000 });
    const x = new X509Certificate(far.certPem);
    assert.ok(new Date(x.validTo).getUTCFullYear() >= 2060);
  });
});
