/** The shared socket helpers in test/helpers/net.ts work as documented. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { connect, listenEcho, listenUdpEcho, readAll, randomBytes, sha256, waitFor } from '../../helpers/net';

describe('test helpers', () => {
  it('listenEcho echoes and passes a half-close back', async () => {
    const echo = await listenEcho();
    after(() => echo.close());
    const sock = await connect(echo.port);
    const data = randomBytes(200_000);
    const back = readAll(sock);
    sock.end(data);
    assert.equal(sha256(await back), sha256(data));
    sock.destroy();
  });

  it('listenUdpEcho sends each datagram back', async () => {
    const echo = await listenUdpEcho();
    after(() => echo.close());
    const sock = dgram.createSocket('udp4');
    after(() => sock.close());
    const got: string[] = [];
    sock.on('message', (m) => got.push(m.toString()));
    sock.send('one', echo.port, '127.0.0.1');
    sock.send('two', echo.port, '127.0.0.1');
    await waitFor(() => got.length === 2, 2_000, 'two datagrams');
    assert.deepEqual(got.sort(), ['one', 'two']);
  });

  it('waitFor rejects with what it waited for', async () => {
    await assert.rejects(waitFor(() => false, 50, 'nothing'), /waiting for nothing/);
  });
});
