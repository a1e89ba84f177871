/** The ClientHello ALPN reader that tells a TLS-ALPN-01 validation from a visitor's handshake. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { clientHelloAlpn, offersAcmeTls } from '../../../src/tls/acme/alpn';

/** The ClientHello bytes node's TLS client sends with these options (captured on a loopback server). */
function captureHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          sock.destroy();
          srv.close();
          resolve(buf);
        }
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      const c = tls.connect({ host: '127.0.0.1', port, ...opts });
      c.on('error', () => undefined);
    });
    srv.on('error', reject);
  });
}

test('reads the ALPN list of real ClientHellos', async () => {
  const acmeHello = await captureHello({ servername: 'a.example.test', ALPNProtocols: ['acme-tls/1'] });
  assert.deepEqual(clientHelloAlpn(acmeHello), ['acme-tls/1']);
  assert.equal(offersAcmeTls(acmeHello), true);
  const browser = await captureHello({ servername: 'a.example.test', ALPNProtocols: ['h2', 'http/1.1'] });
  assert.deepEqual(clientHelloAlpn(browser), ['h2', 'http/1.1']);
  assert.equal(offersAcmeTls(browser), false);
  const none = await captureHello({ servername: 'a.example.test' });
  assert.deepEqual(clientHelloAlpn(none), []);
  // Incomplete: not (yet) an answer.
  assert.deepEqual(clientHelloAlpn(acmeHello.subarray(0, acmeHello.length - 1)), []);
});

test('garbage and mutilated ClientHellos never throw', async () => {
  const hello = await captureHello({ servername: 'a.example.test', ALPNProtocols: ['acme-tls/1', 'h2'] });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const r = clientHelloAlpn(Buffer.from(bytes));
      assert.ok(Array.isArray(r));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.nat(hello.length - 1), fc.nat(255), (pos, byte) => {
      const b = Buffer.from(hello);
      b[pos] = byte;
      assert.ok(Array.isArray(clientHelloAlpn(b)));
    }),
    { numRuns: 3000 },
  );
});
