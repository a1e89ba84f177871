/**
 * A small edge for the certificate-provider tests: one port on 127.0.0.1 that serves plain
 * HTTP and TLS (told apart by the first byte), as burrow's entry point does. TLS handshakes get
 * their certificate from an ACME manager (a ClientHello offering `acme-tls/1` gets the
 * TLS-ALPN-01 answer); a name without one is "passed through" (here: counted and closed).
 * Requests to `/.well-known/acme-challenge/<token>` ask the manager; others get `hello <host>`.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { parseClientHelloSni } from '../../src/protocol/sniff/tls';
import { offersAcmeTls, ACME_TLS_ALPN } from '../../src/tls/acme/alpn';
import type { CertificateProvider } from '../../src/tls/provider';
import { LOCAL } from './local';

export interface ChallengeAnswerer {
  httpChallenge(host: string, path: string): string | undefined;
  alpnChallengeContext(servername: string): tls.SecureContext | undefined;
}

export interface Edge {
  port: number;
  /** SNI names that got no certificate (passed through). */
  passedThrough: string[];
  /** HTTP-01 requests answered 200 / 404. */
  challengeAnswers: { path: string; status: number }[];
  /** TLS-ALPN-01 handshakes answered / left unanswered (closed). */
  alpnAnswers: string[];
  alpnUnanswered: string[];
  /** Swaps who answers (HTTP-01 and TLS-ALPN-01) and who provides certificates. */
  provider: CertificateProvider;
  answerer: ChallengeAnswerer;
  close(): Promise<void>;
}

/** A stream over `sock` that first yields `head` (bytes already read from it). */
function replay(sock: net.Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read() {
      sock.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  d.push(head);
  sock.on('data', (c: Buffer) => {
    if (!d.push(c)) sock.pause();
  });
  sock.on('end', () => d.push(null));
  sock.on('error', (e) => d.destroy(e));
  sock.on('close', () => d.destroy());
  return d;
}

export async function startEdge(provider: CertificateProvider & ChallengeAnswerer): Promise<Edge> {
  const sockets = new Set<net.Socket>();
  const edge: Edge = {
    port: 0,
    passedThrough: [],
    challengeAnswers: [],
    alpnAnswers: [],
    alpnUnanswered: [],
    provider,
    answerer: provider,
    close: async () => undefined,
  };
  const web = http.createServer((req, res) => {
    const path = req.url ?? '/';
    if (path.startsWith('/.well-known/acme-challenge/')) {
      const answer = edge.answerer.httpChallenge(req.headers.host ?? '', path);
      edge.challengeAnswers.push({ path, status: answer === undefined ? 404 : 200 });
      res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(answer ?? 'not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello ${req.headers.host ?? ''}\n`);
  });
  const onTls = async (sock: net.Socket, head: Buffer, sni: string | undefined): Promise<void> => {
    let ctx: tls.SecureContext | undefined;
    let alpn: string[] | undefined;
    if (sni && offersAcmeTls(head)) {
      ctx = edge.answerer.alpnChallengeContext(sni);
      alpn = [ACME_TLS_ALPN];
      (ctx ? edge.alpnAnswers : edge.alpnUnanswered).push(sni);
      if (!ctx) return void sock.destroy();
    } else if (sni) {
      ctx = await edge.provider.contextFor(sni);
    }
    if (!ctx) {
      edge.passedThrough.push(sni ?? '');
      sock.destroy();
      return;
    }
    const t = new tls.TLSSocket(replay(sock, head), { isServer: true, secureContext: ctx, ALPNProtocols: alpn });
    t.on('error', () => t.destroy());
    if (!alpn) web.emit('connection', t);
    else t.on('secure', () => t.end());
  };
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.setTimeout(30_000, () => sock.destroy());
    let head = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      head = Buffer.concat([head, c]);
      if (head[0] !== 0x16) {
        sock.off('data', onData);
        sock.pause();
        web.emit('connection', replay(sock, head));
        return;
      }
      let r;
      try {
        r = parseClientHelloSni(head);
      } catch {
        sock.destroy();
        return;
      }
      if (!r.complete) return;
      sock.off('data', onData);
      sock.pause();
      onTls(sock, head, r.sni).catch(() => sock.destroy());
    };
    sock.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOCAL, () => resolve());
  });
  edge.port = (server.address() as net.AddressInfo).port;
  edge.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return edge;
}
