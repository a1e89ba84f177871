import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metadata } from '../../../src/core/metadata';
import { ConfigError } from '../../../src/core/errors';
import {
  clearAutoCertificateCache,
  loadClientTlsOptions,
  loadServerTlsOptions,
  parseTlsVersion,
} from '../../../src/transport/tls/certs';
import { makeCa, makeCert, type CertFiles, type TestCa } from '../../helpers/certs';
import { memoryLogger } from '../../helpers/net';

let ca: TestCa;
let a: CertFiles;
let b: CertFiles;
const { logger } = memoryLogger('silent');

before(async () => {
  ca = await makeCa();
  a = await makeCert(ca, { cn: 'a.test' });
  b = await makeCert(ca, { cn: 'b.test' });
});
after(() => ca.cleanup());

const cnOf = (pem: unknown): string => new X509Certificate(String(pem)).subject;

describe('parseTlsVersion', () => {
  for (const [input, want] of [
    ['VersionTLS12', 'TLSv1.2'],
    ['VersionTLS13', 'TLSv1.3'],
    ['1.2', 'TLSv1.2'],
    ['tls1.1', 'TLSv1.1'],
    ['VersionTLS10', 'TLSv1'],
    ['', undefined],
    ['ssl3', undefined],
  ] as const) {
    it(`${JSON.stringify(input)} → ${String(want)}`, () => assert.equal(parseTlsVersion(input), want));
  }
});

describe('loadClientTlsOptions', () => {
  it('defaults: no verification, SNI = node host name', async () => {
    const o = await loadClientTlsOptions(undefined, undefined, 'tunnel.example.com');
    assert.equal(o.rejectUnauthorized, false);
    assert.equal(o.servername, 'tunnel.example.com');
    assert.equal(o.host, 'tunnel.example.com');
    assert.equal(o.checkServerIdentity?.('x', {} as never), undefined);
  });

  it('omits SNI for IP literals (v4 and v6) and for an empty host', async () => {
    for (const host of ['127.0.0.1', '::1', '']) {
      const o = await loadClientTlsOptions({ secure: true }, undefined, host);
      assert.equal(o.servername, undefined, host);
    }
  });

  it('secure=true verifies chain and host name', async () => {
    const o = await loadClientTlsOptions({ secure: true }, undefined, 'h.test');
    assert.equal(o.rejectUnauthorized, true);
    assert.equal(o.checkServerIdentity, undefined);
  });

  it('caFile without secure verifies the chain only', async () => {
    const o = await loadClientTlsOptions({ caFile: ca.certFile }, undefined, 'h.test');
    assert.equal(o.rejectUnauthorized, true);
    assert.equal(typeof o.checkServerIdentity, 'function');
    assert.equal(cnOf(o.ca), cnOf(ca.certPem));
  });

  it('serverName overrides the host; metadata keys are a fallback', async () => {
    const o = await loadClientTlsOptions({ serverName: 'sni.test' }, undefined, '10.0.0.1');
    assert.equal(o.servername, 'sni.test');
    const m = await loadClientTlsOptions(undefined, new Metadata({ servername: 'md.test', secure: 'true' }), '10.0.0.1');
    assert.equal(m.servername, 'md.test');
    assert.equal(m.rejectUnauthorized, true);
  });

  it('loads a client certificate, and reports an unreadable file as a ConfigError', async () => {
    const o = await loadClientTlsOptions({ certFile: a.certFile, keyFile: a.keyFile }, undefined, 'h');
    assert.equal(cnOf(o.cert), cnOf(a.certPem));
    await assert.rejects(loadClientTlsOptions({ caFile: '/nonexistent/ca.pem' }, undefined, 'h'), ConfigError);
    await assert.rejects(loadClientTlsOptions({ certFile: a.certFile }, undefined, 'h'), /both certFile and keyFile/);
  });

  it('maps TLS options (versions, Go cipher names, ALPN)', async () => {
    const o = await loadClientTlsOptions(
      { options: { minVersion: 'VersionTLS12', maxVersion: 'VersionTLS13', cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'NOPE'], alpn: ['h2'] } },
      undefined,
      'h',
    );
    assert.equal(o.minVersion, 'TLSv1.2');
    assert.equal(o.maxVersion, 'TLSv1.3');
    assert.equal(o.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256');
    assert.deepEqual(o.ALPNProtocols, ['h2']);
  });
});

describe('loadServerTlsOptions', () => {
  it('prefers the listener certificate over the global one', async () => {
    const o = await loadServerTlsOptions({ tls: { certFile: a.certFile, keyFile: a.keyFile }, globalTls: { certFile: b.certFile, keyFile: b.keyFile }, logger });
    assert.equal(cnOf(o.cert), cnOf(a.certPem));
    assert.equal(o.requestCert, false);
  });

  it('falls back to the global section, and to metadata keys', async () => {
    const g = await loadServerTlsOptions({ globalTls: { certFile: b.certFile, keyFile: b.keyFile }, logger });
    assert.equal(cnOf(g.cert), cnOf(b.certPem));
    const m = await loadServerTlsOptions({ metadata: new Metadata({ cert: a.certFile, key: a.keyFile }), logger });
    assert.equal(cnOf(m.cert), cnOf(a.certPem));
  });

  it('caFile (listener or global) requires client certificates', async () => {
    const o = await loadServerTlsOptions({ tls: { certFile: a.certFile, keyFile: a.keyFile, caFile: ca.certFile }, logger });
    assert.equal(o.requestCert, true);
    assert.equal(o.rejectUnauthorized, true);
    const g = await loadServerTlsOptions({ tls: { certFile: a.certFile, keyFile: a.keyFile }, globalTls: { caFile: ca.certFile }, logger });
    assert.equal(g.requestCert, true);
  });

  it('refuses a key that does not match the certificate', async () => {
    await assert.rejects(
      loadServerTlsOptions({ tls: { certFile: a.certFile, keyFile: b.keyFile }, logger }),
      (err: Error) => err instanceof ConfigError && /does not match/.test(err.message),
    );
  });

  it('uses cert.pem/key.pem from the working directory before the auto certificate', async () => {
    const cwd = process.cwd();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-cwd-'));
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-home-'));
    const savedHome = process.env['BURROW_HOME'];
    try {
      await fs.copyFile(b.certFile, path.join(dir, 'cert.pem'));
      await fs.copyFile(b.keyFile, path.join(dir, 'key.pem'));
      process.env['BURROW_HOME'] = home;
      clearAutoCertificateCache();
      process.chdir(dir);
      const o = await loadServerTlsOptions({ logger });
      assert.equal(cnOf(o.cert), cnOf(b.certPem));
      assert.deepEqual(await fs.readdir(home), []);
      await fs.rm(path.join(dir, 'key.pem'));
      const auto = await loadServerTlsOptions({ logger });
      assert.match(cnOf(auto.cert), /CN=burrow/);
      assert.deepEqual((await fs.readdir(home)).sort(), ['auto-ca-cert.pem', 'auto-ca-key.pem']);
    } finally {
      process.chdir(cwd);
      if (savedHome === undefined) delete process.env['BURROW_HOME'];
      else process.env['BURROW_HOME'] = savedHome;
      clearAutoCertificateCache();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('keeps the auto certificate in memory when BURROW_HOME is not set: nothing written to HOME or the working directory', async () => {
    const cwd = process.cwd();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-cwd-'));
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-userhome-'));
    const saved = { BURROW_HOME: process.env['BURROW_HOME'], HOME: process.env['HOME'] };
    try {
      delete process.env['BURROW_HOME'];
      process.env['HOME'] = home;
      clearAutoCertificateCache();
      process.chdir(dir);
      const o = await loadServerTlsOptions({ logger });
      assert.match(cnOf(o.cert), /CN=burrow/);
      // One certificate per process: a second listener gets the same one.
      const again = await loadServerTlsOptions({ logger });
      assert.equal(String(again.cert), String(o.cert));
      assert.deepEqual(await fs.readdir(home), []);
      assert.deepEqual(await fs.readdir(dir), []);
    } finally {
      process.chdir(cwd);
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      clearAutoCertificateCache();
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('names the auto certificate after the global commonName/organization', async () => {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-home-'));
    const savedHome = process.env['BURROW_HOME'];
    try {
      process.env['BURROW_HOME'] = home;
      clearAutoCertificateCache();
      const o = await loadServerTlsOptions({ globalTls: { commonName: 'edge.test', organization: 'Edge', validity: '48h' }, logger });
      const x = new X509Certificate(String(o.cert));
      assert.equal(x.subject, 'O=Edge\nCN=edge.test');
      assert.equal(x.subjectAltName, 'DNS:edge.test');
      const hours = (Date.parse(x.validTo) - Date.now()) / 3_600_000;
      assert.ok(hours > 47 && hours <= 48.01);
    } finally {
      if (savedHome === undefined) delete process.env['BURROW_HOME'];
      else process.env['BURROW_HOME'] = savedHome;
      clearAutoCertificateCache();
      await fs.rm(home, { recursive: true, force: true });
    }
  });
});
