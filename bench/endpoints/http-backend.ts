/**
 * A tiny static HTTP/1.1 responder for the HTTP cases: answers every request head with a fixed
 * 2-byte body, keeps the connection open unless the request says `Connection: close`. It parses
 * no more than needed (requests without bodies, as wrk and the entry point send), so the
 * baseline measures the loopback path rather than a framework. Runs in its own process and
 * prints `{"port":N}` once listening.
 */
import net from 'node:net';

const BODY = 'ok';
const KEEP = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`);
const CLOSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`,
);
const END = Buffer.from('\r\n\r\n');

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => undefined);
  let pending: Buffer | undefined;
  sock.on('data', (chunk: Buffer) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    let out: Buffer[] | undefined;
    let close = false;
    for (;;) {
      const i = buf.indexOf(END);
      if (i < 0) break;
      const head = buf.toString('latin1', 0, i);
      buf = buf.subarray(i + 4);
      if (/\r\nconnection:\s*close/i.test(head)) {
        (out ??= []).push(CLOSE);
        close = true;
        break;
      }
      (out ??= []).push(KEEP);
    }
    pending = buf.length ? Buffer.from(buf) : undefined;
    if (pending && pending.length > 64 * 1024) {
      sock.destroy();
      return;
    }
    if (out) {
      const data = out.length === 1 ? out[0]! : Buffer.concat(out);
      if (close) sock.end(data);
      else sock.write(data);
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
