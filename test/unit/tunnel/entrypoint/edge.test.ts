/**
 * What the edge does to a request before routing (http/edge.ts): forwarded headers (trusted
 * peers appended to, anyone else replaced), the 308 to https, ACME HTTP-01 answers.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readRequestHead } from '../../../../src/handler/tunnel/entrypoint/http/head';
import { edgeRequest, withForwardedHeaders, type HttpEdgeOptions } from '../../../../src/handler/tunnel/entrypoint/http/edge';
import { TrustedPeers } from '../../../../src/limit/trusted-peers';
import type { HttpRequestHead } from '../../../../src/protocol/sniff/http';

function headOf(text: string): HttpRequestHead {
  const r = readRequestHead(Buffer.from(text, 'latin1'), false);
  assert.equal(r.kind, 'head');
  return (r as { head: HttpRequestHead }).head;
}
const fwd = (h: HttpRequestHead): Array<[string, string]> => h.headers.filter(([k]) => k.toLowerCase().startsWith('x-forwarded-'));

const SPOOF = 'GET /p HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 6.6.6.6\r\nx-forwarded-for: 7.7.7.7\r\nX-Forwarded-Proto: gopher\r\nX-Forwarded-Host: evil.test\r\nAccept: */*\r\n\r\n';

describe('withForwardedHeaders', () => {
  test('from an untrusted peer, all three are replaced', () => {
    const h = withForwardedHeaders(headOf(SPOOF), '10.1.2.3:5555', true, TrustedPeers.NONE);
    assert.deepEqual(fwd(h), [
      ['X-Forwarded-For', '10.1.2.3'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Host', 'app.test'],
    ]);
    assert.ok(h.headers.some(([k, v]) => k === 'Accept' && v === '*/*'), 'other headers stay');
  });

  test('from a trusted peer, its chain is appended to and its proto and host kept', () => {
    const h = withForwardedHeaders(headOf(SPOOF), '[::ffff:10.0.0.9]:1', false, new TrustedPeers(['10.0.0.0/8']));
    assert.deepEqual(fwd(h), [
      ['X-Forwarded-For', '6.6.6.6, 7.7.7.7, 10.0.0.9'],
      ['X-Forwarded-Proto', 'gopher'],
      ['X-Forwarded-Host', 'evil.test'],
    ]);
  });

  test('a trusted peer that sent none gets them set', () => {
    const h = withForwardedHeaders(headOf('GET / HTTP/1.1\r\nHost: a.test:8080\r\n\r\n'), '[::1]:2', false, new TrustedPeers(['::1']));
    assert.deepEqual(fwd(h), [
      ['X-Forwarded-For', '::1'],
      ['X-Forwarded-Proto', 'http'],
      ['X-Forwarded-Host', 'a.test:8080'],
    ]);
  });
});

describe('edgeRequest', () => {
  const edge = (o: Partial<HttpEdgeOptions> = {}): HttpEdgeOptions => ({
    forwarded: 'tls',
    trusted: TrustedPeers.NONE,
    redirectHttps: true,
    terminates: (h) => h === 'app.test',
    ...o,
  });
  const plain = (path: string, host = 'app.test'): HttpRequestHead => headOf(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);

  test('plain HTTP for a host with a certificate: 308 to https on port 443, path and query kept', () => {
    const r = edgeRequest(edge(), headOf('POST /a/b?c=1 HTTP/1.1\r\nHost: APP.test:8080\r\nContent-Length: 0\r\n\r\n'), '1.2.3.4:1', false, false);
    assert.ok('answer' in r);
    assert.match(r.answer, /^HTTP\/1\.1 308 Permanent Redirect\r\n/);
    assert.match(r.answer, /\r\nLocation: https:\/\/app\.test\/a\/b\?c=1\r\n/);
    assert.doesNotMatch(r.answer, /Connection: close/);
    assert.match((edgeRequest(edge(), plain('/'), 'x:1', false, true) as { answer: string }).answer, /\r\nConnection: close\r\n/);
  });

  test('no redirect: another host, the TLS side, redirectHttps off, an ACME challenge path', () => {
    assert.ok('head' in edgeRequest(edge(), plain('/', 'other.test'), 'x:1', false, false));
    assert.ok('head' in edgeRequest(edge(), plain('/'), 'x:1', true, false));
    assert.ok('head' in edgeRequest(edge({ redirectHttps: false }), plain('/'), 'x:1', false, false));
    assert.ok('head' in edgeRequest(edge(), plain('/.well-known/acme-challenge/abc'), 'x:1', false, false));
  });

  test('a pending HTTP-01 challenge is answered with its key authorization; others go on', () => {
    const e = edge({ httpChallenge: (host, path) => (host === 'app.test' && path.endsWith('/tok') ? 'tok.thumb' : undefined) });
    const r = edgeRequest(e, plain('/.well-known/acme-challenge/tok'), 'x:1', false, false);
    assert.ok('answer' in r);
    assert.match(r.answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 9\r\n\r\ntok\.thumb$/);
    assert.ok('head' in edgeRequest(e, plain('/.well-known/acme-challenge/other'), 'x:1', false, false));
  });

  test('forwarded headers: terminated only by default, every request with "all", never with "none"', () => {
    const has = (r: ReturnType<typeof edgeRequest>): boolean => 'head' in r && fwd(r.head).length > 0;
    const e = edge({ redirectHttps: false });
    assert.equal(has(edgeRequest(e, plain('/'), '1.1.1.1:1', true, false)), true);
    assert.equal(has(edgeRequest(e, plain('/'), '1.1.1.1:1', false, false)), false);
    assert.equal(has(edgeRequest({ ...e, forwarded: 'all' }, plain('/'), '1.1.1.1:1', false, false)), true);
    assert.equal(has(edgeRequest({ ...e, forwarded: 'none' }, plain('/'), '1.1.1.1:1', true, false)), false);
  });
});
