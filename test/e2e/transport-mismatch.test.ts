/**
 * A client and a server with different transports (tunnel, tunnel+tls, tunnel+ws, tunnel+wss),
 * as real processes: the client's error says what the server's first bytes were (an HTTP
 * response, a TLS record, a close during the handshake) and which scheme to use; the server's
 * warning says what the client spoke.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { burrow, stopAll, type BurrowProcess } from '../helpers/cli';
import { LOCAL } from '../helpers/local';

const SCHEMES = ['tunnel', 'tunnel+tls', 'tunnel+ws', 'tunnel+wss'] as const;
type Scheme = (typeof SCHEMES)[number];

/** What the client must say, by client → server. */
const CLIENT_SAYS: Record<string, RegExp> = {
  'tunnel+tls → tunnel+wss': /answered with an HTTP response.*use tunnel\+wss:\/\//,
  'tunnel → tunnel+ws': /answered with an HTTP response.*use tunnel\+ws:\/\//,
  'tunnel+tls → tunnel+ws': /does not answer with TLS.*tunnel\+ws:\/\//,
  'tunnel+wss → tunnel+ws': /does not answer with TLS.*tunnel\+ws:\/\//,
  'tunnel+tls → tunnel': /during the TLS handshake.*tunnel:\/\//,
  'tunnel+wss → tunnel': /during the TLS handshake.*tunnel:\/\//,
  'tunnel+ws → tunnel': /without answering the WebSocket handshake.*use tunnel:\/\//,
  'tunnel+wss → tunnel+tls': /without answering the WebSocket handshake.*use tunnel\+tls:\/\//,
  'tunnel+ws → tunnel+tls': /(something other than HTTP.*tunnel\+wss:\/\/|without answering the WebSocket handshake)/,
  'tunnel+ws → tunnel+wss': /(something other than HTTP.*tunnel\+wss:\/\/|without answering the WebSocket handshake)/,
  'tunnel → tunnel+tls': /(TLS.*use tunnel\+tls:\/\/|closed the connection without answering.*tunnel\+tls:\/\/)/,
  'tunnel → tunnel+wss': /(TLS.*use tunnel\+tls:\/\/|closed the connection without answering.*tunnel\+wss:\/\/)/,
};

describe('transport mismatches between client and server', () => {
  const servers = new Map<Scheme, { proc: BurrowProcess; port: number }>();
  const home = mkdtempSync(path.join(os.tmpdir(), 'burrow-home-'));

  before(async () => {
    for (const s of SCHEMES) {
      const proc = burrow(['-L', `${s}://${LOCAL}:0?tunnel.direct=true`], { name: `server ${s}`, env: { BURROW_HOME: home } });
      servers.set(s, { proc, port: await proc.listeningPort({ timeoutMs: 60_000 }) });
    }
  });
  after(async () => {
    await stopAll();
    rmSync(home, { recursive: true, force: true });
  });

  for (const client of SCHEMES) {
    for (const server of SCHEMES) {
      if (client === server) continue;
      const pair = `${client} → ${server}`;
      it(`${pair}: the client names what the server spoke and the scheme to use`, async (t) => {
        const srv = servers.get(server)!;
        const p = burrow(['-L', `rtcp://:0/${LOCAL}:9`, '-F', `${client}://${LOCAL}:${srv.port}?tunnel.id=${randomUUID()}`], { name: `client ${pair}` });
        const line = await p.waitFor((l) => l.level === 'warn' && /^accept: .*retrying in/.test(String(l.msg)), {
          timeoutMs: 60_000,
          what: 'the failed attempt',
        });
        await p.stop(60_000);
        t.diagnostic(String(line.msg));
        assert.match(String(line.msg), CLIENT_SAYS[pair]!, `${pair}: ${String(line.msg)}`);
      });
    }
  }

  it('servers name what a client of another transport spoke', () => {
    const said = (s: Scheme): string =>
      servers
        .get(s)!
        .proc.lines.map((l) => `${String(l.msg)}${l.hint ? `: ${String(l.hint)}` : ''}`)
        .join('\n');
    // The plain relay listener got TLS ClientHellos and a WebSocket request (one warning per
    // peer address a minute: the first of them).
    assert.match(said('tunnel'), /bad relay version 0x(16: the client speaks TLS|47: the client sent an HTTP request \(a WebSocket client)/);
    // The TLS listener got plain relay bytes and a plain HTTP request.
    assert.match(said('tunnel+tls'), /tls handshake failed: the client does not speak TLS/);
    // The WebSocket listener got relay bytes and a TLS ClientHello.
    assert.match(said('tunnel+ws'), /bad HTTP request: the client speaks the relay protocol without WebSocket/);
    assert.match(said('tunnel+ws'), /bad HTTP request: the client speaks TLS/);
  });
});
