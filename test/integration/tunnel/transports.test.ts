/**
 * The same end-to-end body over every transport under the tunnel: HTTP through the entry
 * point, a TCP visitor and a UDP visitor, with server, client and visitors all using
 * `tunnel+<transport>://`.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, httpServer, get } from '../../helpers/inproc';
import { listenEcho, listenUdpEcho, connect, readN, sha256, randomBytes } from '../../helpers/net';

// Self-signed server certificates are generated into a temporary home.
process.env.BURROW_HOME = mkdtempSync(join(tmpdir(), 'burrow-home-'));

const TID = '7b3e6b4a-2b0d-4a4f-9a64-3b4f1c0d2e11';
const UID = '0f8c2d55-6a7e-4c1b-8e9f-5d2a3b4c6d7e';

const W = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

for (const transport of ['tcp', 'tls', 'ws', 'wss', 'mtls', 'mws', 'mwss']) {
  describe(`tunnel over ${transport}`, () => {
    const scheme = transport === 'tcp' ? 'tunnel' : `tunnel+${transport}`;
    test('HTTP through the entry point, a TCP visitor and a UDP visitor', async () => {
      const web = await httpServer(`hello over ${transport}`);
      const echo = await listenEcho();
      const uecho = await listenUdpEcho();
      after(() => web.close());
      after(() => echo.close());
      after(() => uecho.close());
      const server = await startApp({
        L: [`${scheme}://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=web.local:${W},ssh.local:$${TID},dns.local:$${UID}`],
        level: 'info',
      });
      after(() => server.stop());
      const srv = server.addr();
      const clients = await Promise.all([
        startApp({ L: [`rtcp://:0/127.0.0.1:${web.port}`], F: [`${scheme}://${srv}?tunnel.id=${W}`], level: 'info' }),
        startApp({ L: [`rtcp://:0/127.0.0.1:${echo.port}`], F: [`${scheme}://${srv}?tunnel.id=${TID}`], level: 'info' }),
        startApp({ L: [`rudp://:0/127.0.0.1:${uecho.port}`], F: [`${scheme}://${srv}?tunnel.id=${UID}`], level: 'info' }),
      ]);
      for (const c of clients) after(() => c.stop());
      await Promise.all(clients.map((c) => c.bound));

      // HTTP through the public entry point.
      const r = await get(server.entrypoint(), 'web.local');
      assert.deepEqual(r, { status: 200, body: `hello over ${transport}` });
      // The private host is not reachable from the entry point.
      assert.equal((await get(server.entrypoint(), 'ssh.local')).status, 502);

      // TCP visitor for the private host: 1 MiB echoed.
      const visitor = await startApp({ L: [`tcp://127.0.0.1:0/ssh.local`], F: [`${scheme}://${srv}?tunnel.id=${TID}`], level: 'info' });
      after(() => visitor.stop());
      const data = randomBytes(1024 * 1024);
      const s = await connect(visitor.port(0));
      s.write(data);
      const back = await readN(s, data.length);
      s.destroy();
      assert.equal(sha256(back), sha256(data), 'TCP visitor echo');

      // UDP visitor: datagrams of several sizes round-trip intact.
      const uvisitor = await startApp({
        L: [`udp://127.0.0.1:0/dns.local?keepalive=true`],
        F: [`${scheme}://${srv}?tunnel.id=${UID}`],
        level: 'info',
      });
      after(() => uvisitor.stop());
      const u = dgram.createSocket('udp4');
      after(() => u.close());
      for (const size of [1, 512, 1400, 8000, 60000]) {
        const payload = randomBytes(size);
        const got = new Promise<Buffer>((res) => u.once('message', (m) => res(m)));
        u.send(payload, uvisitor.port(0), '127.0.0.1');
        assert.equal(sha256(await got), sha256(payload), `UDP datagram of ${size} bytes`);
      }
    });
  });
}
