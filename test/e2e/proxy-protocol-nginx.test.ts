/**
 * The PROXY headers a client sends (`sendProxyProtocol=1|2`) read by a real implementation:
 * nginx with `listen … proxy_protocol` behind a burrow client answers with
 * `$proxy_protocol_addr`, which must be the visitor's own address (127.0.0.2, 127.0.0.3), for
 * both versions. nginx is started by the test on a loopback port of its own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { burrow, stopAll } from '../helpers/cli';
import { LOCAL } from '../helpers/local';

const NGINX = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOCAL, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** GET / through `port` from `from`; the response body ('' when closed without a response). */
function get(port: number, from: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: LOCAL, localAddress: from }, () => s.write('GET / HTTP/1.0\r\nHost: app\r\n\r\n'));
    let text = '';
    const guard = setTimeout(() => s.destroy(), 15_000);
    s.setEncoding('utf8');
    s.on('data', (c: string) => (text += c));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(guard);
      const at = text.indexOf('\r\n\r\n');
      resolve(at < 0 ? '' : text.slice(at + 4));
    });
  });
}

describe('sendProxyProtocol read by nginx (listen … proxy_protocol)', () => {
  let dir: string;
  let nginx: ChildProcess;
  let nginxPort: number;
  let serverPort: number;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'burrow-nginx-pp-'));
    mkdirSync(path.join(dir, 'logs'));
    nginxPort = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/logs/error.log;
pid ${dir}/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen ${LOCAL}:${nginxPort} proxy_protocol;
    location / { return 200 "$proxy_protocol_addr"; }
  }
}
`,
    );
    nginx = spawn(NGINX, ['-p', dir, '-c', conf], { stdio: 'ignore' });
    // Ready when it accepts.
    for (let i = 0; ; i++) {
      const ok = await new Promise<boolean>((r) => {
        const s = net.connect(nginxPort, LOCAL, () => {
          s.destroy();
          r(true);
        });
        s.on('error', () => r(false));
      });
      if (ok) break;
      if (i > 100) throw new Error('nginx did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const server = burrow(['-L', `tunnel://${LOCAL}:0?tunnel.direct=true`], { name: 'server-nginx' });
    serverPort = await server.listeningPort();
  });

  after(async () => {
    nginx?.kill();
    await stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const version of [1, 2]) {
    it(`version ${version}: nginx sees the visitor's address`, async () => {
      const tid = randomUUID();
      const client = burrow(['-L', `rtcp://:0/${LOCAL}:${nginxPort}?sendProxyProtocol=${version}`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: `client-nginx-v${version}` });
      await client.tunnelCreated();
      const visitor = burrow(['-L', `tcp://${LOCAL}:0/app.local:80`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: `visitor-nginx-v${version}` });
      const vport = await visitor.listeningPort();
      assert.equal(await get(vport, '127.0.0.2'), '127.0.0.2');
      assert.equal(await get(vport, '127.0.0.3'), '127.0.0.3');
      await Promise.all([client.stop(), visitor.stop()]);
    });
  }

  it('without sendProxyProtocol nginx refuses the connection (the header is what it reads)', async () => {
    const tid = randomUUID();
    const client = burrow(['-L', `rtcp://:0/${LOCAL}:${nginxPort}`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: 'client-nginx-none' });
    await client.tunnelCreated();
    const visitor = burrow(['-L', `tcp://${LOCAL}:0/app.local:80`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${tid}`], { name: 'visitor-nginx-none' });
    const vport = await visitor.listeningPort();
    assert.equal(await get(vport, '127.0.0.2'), '');
    await Promise.all([client.stop(), visitor.stop()]);
  });
});
