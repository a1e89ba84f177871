/**
 * Sending the PROXY protocol to a tunnel client's local service (`sendProxyProtocol=1|2` on an
 * rtcp/rudp service, as frp's `transport.proxyProtocolVersion`): the service learns the
 * visitor's address (the source the server put in the tunnel stream's header) instead of the
 * client's own loopback address.
 *
 * - rtcp: one header at the start of the connection to the target, destination = the target's
 *   address as dialed.
 * - rudp (v2 only): a header before every datagram sent to the target, as HAProxy's spec
 *   describes for datagrams; replies from the target are passed back unchanged.
 *
 * A source or destination that is not an IP (a server that sent no source) gives v1's UNKNOWN
 * or v2's UNSPEC: the service then keeps the connection's own address.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import { dialHost, formatAddress } from '../../transport/tcp/socket';
import { splitHostPort } from '../../core/addr';
import { encodeProxyHeader, type ProxyAddress } from '../../protocol/proxy/codec';

function address(hostport: string): ProxyAddress | undefined {
  try {
    const { host, port } = splitHostPort(hostport);
    const h = host === 'localhost' ? '127.0.0.1' : dialHost(host);
    return net.isIP(h) ? { host: h, port } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The header for one tunnel stream: `visitor` is the stream header's source ("host:port", may be
 * empty), `target` the address dialed ("host:port") or the socket's peer once connected.
 */
export function proxyHeaderFor(version: 1 | 2, protocol: 'tcp' | 'udp', visitor: string, target: string): Buffer {
  return encodeProxyHeader(version, { protocol, source: address(visitor), destination: address(target) });
}

/** The connected peer of a dialed TCP stream ("host:port"), when it is a socket. */
export function peerOf(stream: Duplex, fallback: string): string {
  const s = stream as Partial<net.Socket>;
  return typeof s.remoteAddress === 'string' ? formatAddress(s.remoteAddress, s.remotePort) : fallback;
}

/**
 * A datagram stream (objectMode, one chunk a datagram) that writes `header` before every
 * datagram it sends to `port`; what `port` receives is read unchanged.
 */
export function withProxyHeaders(port: Duplex, header: Buffer): Duplex {
  const out = new Duplex({
    objectMode: true,
    allowHalfOpen: false,
    read() {
      port.resume();
    },
    write(chunk: Buffer, _enc, done) {
      if (port.write(Buffer.concat([header, chunk]))) done();
      else port.once('drain', () => done());
    },
    final(done) {
      port.end();
      done();
    },
    destroy(err, done) {
      port.destroy();
      done(err);
    },
  });
  port.on('data', (d: Buffer) => {
    if (!out.push(d)) port.pause();
  });
  port.once('end', () => out.push(null));
  port.once('error', (err) => out.destroy(err));
  port.once('close', () => out.destroy());
  return out;
}
