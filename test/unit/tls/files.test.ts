/**
 * Certificate files (src/tls/files.ts): names from SANs (CN without SANs), the choice by SNI
 * (exact, then a wildcard one label deep), passthrough patterns, and load errors naming the file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { FileCertificates, HostPatterns, loadCertificate } from '../../../src/tls/files';
import { makeCa, makeCert, type CertFiles, type TestCa } from '../../helpers/certs';

let ca: TestCa;
let exact: CertFiles;
let wild: CertFiles;
let deep: CertFiles;
before(async () => {
  ca = await makeCa();
  exact = await makeCert(ca, { cn: 'exact', san: ['app.example.net', 'Other.Example.NET.'] });
  wild = await makeCert(ca, { cn: 'wild', san: ['*.example.net'] });
  deep = await makeCert(ca, { cn: 'deep', san: ['*.b.example.net'] });
});
after(() => ca.cleanup());

describe('FileCertificates', () => {
  test('exact names first, then a wildcard one label deep; case and a final dot do not matter', () => {
    const certs = FileCertificates.load([wild.certFile, exact.certFile, deep.certFile], [wild.keyFile, exact.keyFile, deep.keyFile]);
    const ctxOf = (name: string): unknown => certs.contextFor(name);
    const [w, e, d] = certs.certificates.map((c) => c.context);
    assert.deepEqual(certs.certificates[1]!.names, ['app.example.net', 'other.example.net']);
    assert.equal(ctxOf('app.example.net'), e, 'the exact certificate wins over the wildcard given first');
    assert.equal(ctxOf('APP.example.net.'), e);
    assert.equal(ctxOf('other.example.net'), e);
    assert.equal(ctxOf('www.example.net'), w);
    assert.equal(ctxOf('a.b.example.net'), d);
    assert.equal(ctxOf('example.net'), undefined, 'a wildcard does not cover its apex');
    assert.equal(ctxOf('x.a.example.net'), undefined, 'a wildcard covers one label only');
    assert.equal(ctxOf('example.org'), undefined);
    assert.equal(certs.has('www.example.net'), true);
    assert.equal(certs.has('nothing.test'), false);
  });

  test('load errors name the file at fault', async () => {
    assert.throws(() => FileCertificates.load(['/nope/cert.pem'], ['/nope/key.pem']), /certificate file \/nope\/cert\.pem: no such file/);
    assert.throws(() => FileCertificates.load([exact.certFile], [exact.keyFile, wild.keyFile]), /1 certificate file\(s\) but 2 key file\(s\)/);
    const junk = path.join(ca.dir, 'junk.pem');
    await fs.writeFile(junk, 'junk');
    assert.throws(() => loadCertificate(junk, exact.keyFile), new RegExp(`certificate file ${junk}: not a PEM certificate`));
    assert.throws(() => loadCertificate(exact.certFile, junk), new RegExp(`key file ${junk}: not a PEM private key`));
    assert.throws(() => loadCertificate(exact.certFile, wild.keyFile), /does not match the certificate in/);
  });
});

describe('HostPatterns', () => {
  test('exact names and one-label wildcards; a malformed wildcard is refused', () => {
    const p = new HostPatterns(['keep.test', '*.e2e.test']);
    assert.equal(p.matches('KEEP.test'), true);
    assert.equal(p.matches('a.e2e.test'), true);
    assert.equal(p.matches('e2e.test'), false);
    assert.equal(p.matches('a.b.e2e.test'), false);
    assert.equal(p.matches('other.test'), false);
    assert.throws(() => new HostPatterns(['a*.test']), /a wildcard is "\*\." followed by a domain/);
  });
});
