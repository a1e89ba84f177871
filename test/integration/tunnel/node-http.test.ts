/**
 * A tunnel client's forwarder nodes with gost's `http` and `tls` settings (reverse-proxy docs:
 * Host rewrite, request/response headers, Basic auth, URL rewrite; TLS to the node), end to end:
 * entry point → tunnel → client (rtcp, sniffing) → local HTTP or HTTPS service.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startApp, type RunningApp } from '../../helpers/inproc';
import { makeCa, makeCert } from '../../helpers/certs';
import { loadConfig } from '../../../src/cli/load';
import { connect, listenEcho, readN } from '../../helpers/net';
import { ConfigError } from '../../../src/core/errors';

const TID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** An HTTP(S) backend that answers with what it saw, as JSON. */
async function backend(tlsFiles?: { certFile: string; keyFile: string; certPem: string; keyPem: string }) {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/big-html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.write('http://localhost:5173 ');
      res.end(Buffer.alloc(17 * 1024 * 1024, 'x'));
      return;
    }
    if (req.url === '/html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<a href="http://localhost:5173/app">app</a> <a href="http://localhost:5173/b">b</a> ae=${req.headers['accept-encoding'] ?? 'none'}`);
      return;
    }
    const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'yes', server: 'backend' });
    res.end(JSON.stringify(seen));
  };
  const server = tlsFiles ? https.createServer({ cert: tlsFiles.certPem, key: tlsFiles.keyPem }, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function request(
  ep: string,
  host: string,
  path = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const i = ep.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ep.slice(0, i), port: Number(ep.slice(i + 1)), path, headers: { host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('forwarder node http and tls settings through a tunnel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-node-http-'));
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  let server: RunningApp;
  let ep: string;
  let plainPort: number;
  let tlsPort: number;
  let caFile: string;

  before(async () => {
    const ca = await makeCa();
    cleanups.push(() => ca.cleanup());
    caFile = ca.certFile;
    const cert = await makeCert(ca, { cn: 'origin.internal', san: ['origin.internal'] });
    const plain = await backend();
    const secure = await backend(cert);
    cleanups.push(() => plain.close(), () => secure.close());
    plainPort = plain.port;
    tlsPort = secure.port;
    server = await startApp({ L: [`tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID}`] });
    cleanups.push(() => server.stop());
    ep = server.entrypoint();
    const yaml = `
services:
- name: web
  addr: :0
  handler:
    type: rtcp
    metadata:
      sniffing: true
  listener:
    type: rtcp
    chain: chain-0
  forwarder:
    nodes:
    - name: rewrite
      addr: 127.0.0.1:${plainPort}
      filter: {host: rewrite.example.com}
      http:
        host: localhost:5173
        requestHeader:
          X-Forwarded-Proto: https
          user-agent: burrow-test
        responseHeader:
          Strict-Transport-Security: max-age=60
          Server: burrow-edge
        rewriteBody:
        - match: http://localhost:5173
          replacement: https://rewrite.example.com
        rewriteURL:
        - match: ^/api/login$
          replacement: /user/login
        - match: ^/api/(.*)
          replacement: /\${1}
    - name: ruled-v2
      addr: 127.0.0.1:${plainPort}
      matcher:
        rule: Host(\`ruled.example.com\`) && (PathPrefix(\`/v2\`) || Header(\`X-Version\`, \`2\`))
      http:
        requestHeader: {X-Node: ruled-v2}
    - name: ruled-any
      addr: 127.0.0.1:${plainPort}
      matcher:
        rule: Host(\`*.ruled.example.com\`) || Host(\`ruled.example.com\`)
        priority: 1
      http:
        requestHeader: {X-Node: ruled-any}
    - name: private
      addr: 127.0.0.1:${plainPort}
      filter: {host: private.example.com}
      http:
        auth: {username: alice, password: s3cret}
    - name: secure-origin
      addr: 127.0.0.1:${tlsPort}
      filter: {host: secure.example.com}
      tls:
        secure: true
        serverName: origin.internal
        caFile: ${caFile}
    - name: insecure-origin
      addr: 127.0.0.1:${tlsPort}
      filter: {host: insecure.example.com}
      tls: {}
    - name: wrong-name
      addr: 127.0.0.1:${tlsPort}
      filter: {host: wrongname.example.com}
      tls:
        secure: true
        serverName: not-the-origin.internal
        caFile: ${caFile}
chains:
- name: chain-0
  hops:
  - name: hop-0
    nodes:
    - name: node-0
      addr: ${server.addr()}
      connector:
        type: tunnel
        metadata:
          tunnel.id: ${TID}
      dialer:
        type: tcp
`;
    const file = join(dir, 'client.yaml');
    writeFileSync(file, yaml);
    const loaded = await loadConfig([file], { listen: [], forward: [] }, { searchPaths: [], env: {} });
    assert.deepEqual(
      loaded.warnings.filter((w) => /http|tls/.test(w)),
      [],
    );
    const client = await startApp({ config: loaded.config });
    cleanups.push(() => client.stop());
    await client.bound;
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    rmSync(dir, { recursive: true, force: true });
  });

  test('Host rewritten, request headers set (replacing one of another case), response headers set', async () => {
    const r = await request(ep, 'rewrite.example.com', '/page?x=1', { 'User-Agent': 'curl/8' });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as Seen;
    assert.equal(seen.headers.host, 'localhost:5173');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['user-agent'], 'burrow-test');
    assert.equal(seen.url, '/page?x=1');
    assert.equal(r.headers['strict-transport-security'], 'max-age=60');
    assert.equal(r.headers.server, 'burrow-edge', 'an existing response header is replaced');
    assert.equal(r.headers['x-backend'], 'yes');
  });

  test('rewriteBody: text/html bodies rewritten (every match, Content-Length fixed, sent uncompressed); other types untouched', async () => {
    const r = await request(ep, 'rewrite.example.com', '/html', { 'Accept-Encoding': 'gzip, br' });
    assert.equal(r.status, 200);
    assert.equal(r.body, '<a href="https://rewrite.example.com/app">app</a> <a href="https://rewrite.example.com/b">b</a> ae=none');
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
    assert.equal(r.headers['transfer-encoding'], undefined);
    // Larger than 16 MiB: passed on as it came, not cut.
    const big = await request(ep, 'rewrite.example.com', '/big-html');
    assert.equal(big.body.length, 22 + 17 * 1024 * 1024);
    assert.ok(big.body.startsWith('http://localhost:5173 '));
    // JSON (not text/html): passed on as it came.
    const j = await request(ep, 'rewrite.example.com', '/data', { 'X-Echo': 'http://localhost:5173' });
    assert.ok(j.body.includes('http://localhost:5173'));
  });

  test('URL path rewritten by the first matching rule (Go ${1} replacements), query kept', async () => {
    const login = JSON.parse((await request(ep, 'rewrite.example.com', '/api/login?next=/')).body) as Seen;
    assert.equal(login.url, '/user/login?next=/');
    const other = JSON.parse((await request(ep, 'rewrite.example.com', '/api/v2/items')).body) as Seen;
    assert.equal(other.url, '/v2/items');
    const untouched = JSON.parse((await request(ep, 'rewrite.example.com', '/static/app.js')).body) as Seen;
    assert.equal(untouched.url, '/static/app.js');
  });

  test('matcher rules pick the node per request (path, header), the highest priority first', async () => {
    const node = async (host: string, path: string, headers: Record<string, string> = {}): Promise<unknown> =>
      (JSON.parse((await request(ep, host, path, headers)).body) as Seen).headers['x-node'];
    assert.equal(await node('ruled.example.com', '/v2/items'), 'ruled-v2');
    assert.equal(await node('ruled.example.com', '/v1/items'), 'ruled-any');
    assert.equal(await node('ruled.example.com', '/v1/items', { 'X-Version': '2' }), 'ruled-v2');
    assert.equal(await node('a.ruled.example.com', '/v2/items'), 'ruled-any');
  });

  test('Basic authentication: 401 with a challenge without or with wrong credentials, through with them', async () => {
    const none = await request(ep, 'private.example.com');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic realm=/);
    const wrong = await request(ep, 'private.example.com', '/', { Authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` });
    assert.equal(wrong.status, 401);
    const ok = await request(ep, 'private.example.com', '/', { Authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` });
    assert.equal(ok.status, 200);
    assert.equal((JSON.parse(ok.body) as Seen).headers.authorization, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
  });

  test('tls: the client speaks HTTPS to the node, verified against caFile with serverName', async () => {
    const r = await request(ep, 'secure.example.com', '/over-tls');
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as Seen;
    assert.equal(seen.url, '/over-tls');
    assert.equal(seen.headers.host, 'secure.example.com');
  });

  test('tls without secure: a certificate that is not checked (gost default) still works', async () => {
    const r = await request(ep, 'insecure.example.com');
    assert.equal(r.status, 200);
  });

  test('tls with secure and the wrong server name: the handshake fails, the visitor gets 503', async () => {
    const r = await request(ep, 'wrongname.example.com');
    assert.equal(r.status, 503);
  });

  test('plain port forwarding (tcp handler) to a node with tls: plain HTTP in, HTTPS to the node', async () => {
    const file = join(dir, 'forward.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '- name: fwd',
        '  addr: 127.0.0.1:0',
        '  handler: {type: tcp}',
        '  listener: {type: tcp}',
        '  forwarder:',
        '    nodes:',
        '    - name: origin',
        `      addr: 127.0.0.1:${tlsPort}`,
        '      tls: {secure: true, serverName: origin.internal, caFile: ' + caFile + '}',
      ].join('\n'),
    );
    const loaded = await loadConfig([file], { listen: [], forward: [] }, { searchPaths: [], env: {} });
    const fwd = await startApp({ config: loaded.config });
    cleanups.push(() => fwd.stop());
    const r = await request(fwd.addr(), 'anything.example', '/through-forward');
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as Seen).url, '/through-forward');
  });

  test("local forwarding with sniffing (gost's reverse-proxy example): Host and SNI pick the node", async () => {
    const other = await backend();
    cleanups.push(() => other.close());
    const echo = await listenEcho();
    cleanups.push(() => echo.close());
    const file = join(dir, 'sniffing.yaml');
    writeFileSync(
      file,
      [
        'services:',
        '- name: rp',
        '  addr: 127.0.0.1:0',
        '  handler: {type: tcp, metadata: {sniffing: true}}',
        '  listener: {type: tcp}',
        '  forwarder:',
        '    nodes:',
        '    - name: example-com',
        `      addr: 127.0.0.1:${plainPort}`,
        '      filter: {host: example.com}',
        '      http: {requestHeader: {X-Node: example-com}}',
        '    - name: example-org',
        `      addr: 127.0.0.1:${other.port}`,
        '      matcher: {rule: "Host(`example.org`) && PathPrefix(`/org`)"}',
        '      http: {requestHeader: {X-Node: example-org}}',
        '    - name: tls-origin',
        `      addr: 127.0.0.1:${tlsPort}`,
        '      matcher: {rule: "Host(`secure.local`) && Proto(`tls`)"}',
        '    - name: ssh-server',
        `      addr: 127.0.0.1:${echo.port}`,
        '      filter: {protocol: ssh}',
      ].join('\n'),
    );
    const loaded = await loadConfig([file], { listen: [], forward: [] }, { searchPaths: [], env: {} });
    const rp = await startApp({ config: loaded.config });
    cleanups.push(() => rp.stop());
    const seen = async (host: string, path: string): Promise<Seen> => JSON.parse((await request(rp.addr(), host, path)).body) as Seen;
    assert.equal((await seen('example.com', '/a')).headers['x-node'], 'example-com');
    assert.equal((await seen('example.org', '/org/x')).headers['x-node'], 'example-org');
    // No node for this request (the org rule wants /org, no fallback node): 502.
    assert.equal((await request(rp.addr(), 'example.org', '/elsewhere')).status, 502);
    // TLS: the SNI picks the node; the handshake goes through to the HTTPS origin.
    const { default: tls } = await import('node:tls');
    const [h, p] = [rp.addr().split(':')[0]!, Number(rp.addr().split(':')[1])];
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        { host: h, port: p, path: '/via-sni', servername: 'secure.local', rejectUnauthorized: false, agent: false, headers: { host: 'secure.local' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal((JSON.parse(body) as Seen).url, '/via-sni');
    // SSH (filter.protocol: ssh): the identification string goes to the ssh node (an echo here).
    const ssh = await connect(p, h);
    ssh.write('SSH-2.0-burrow-test\r\n');
    assert.equal((await readN(ssh, 21)).toString(), 'SSH-2.0-burrow-test\r\n');
    ssh.destroy();
    // An SNI no node takes: the connection is closed.
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const s = tls.connect({ host: h, port: p, servername: 'unknown.local', rejectUnauthorized: false }, () => resolve());
        s.on('error', reject);
        s.on('close', () => reject(new Error('closed')));
      }),
    );
  });

  test('a rewriteURL match that is not a regular expression is a config error naming its path', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      ['services:', '- name: s', '  addr: :0', '  handler: {type: tcp}', '  forwarder:', '    nodes:', '    - name: n', '      addr: 127.0.0.1:1', '      http:', '        rewriteURL:', '        - {match: "(", replacement: x}'].join('\n'),
    );
    await assert.rejects(loadConfig([file], { listen: [], forward: [] }, { searchPaths: [], env: {} }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.path, 'services[0].forwarder.nodes[0].http.rewriteURL[0].match');
      assert.match(err.message, /expected a regular expression, found "\("/);
      return true;
    });
  });
});
