/**
 * Visitors (private entry points) against the server of config.md §6.6, run with the real CLI:
 * TCP visitors (V3–V5) reaching services by host (§6.9), UDP visitors (V6, §6.11/§6.12) with and
 * without keepalive, HTTP visitors with a manual host and with sniffing (V2, V3), the
 * isolation rules of behavior.md §2.1 checked with raw relay CONNECTs, direct mode (§6.13),
 * the public visitor of `entrypoint.id` (§6.3), and one tunnel ID carrying web, TCP and UDP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { burrow, fixture, type BurrowProcess } from '../helpers/cli';
import { randomBytes, readN } from '../helpers/net';
import { encodeDatagram, UdpFrameDecoder } from '../../src/protocol/udp-frame';
import {
  Cleanup,
  LOCAL,
  TID,
  UdpClient,
  bannerExchange,
  expectClosed,
  httpRequest,
  rawHttp,
  relayConnect,
  relayStatus,
  startBannerEcho,
  startHttpService,
  startUdpService,
  type HttpService,
} from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

const S = {
  ok: 0x00,
  unavailable: 0x05,
  hostUnreachable: 0x06,
  networkUnreachable: 0x07,
} as const;

let server: BurrowProcess;
let serverPort: number;
let ep: number;
let web: HttpService;
let ssh: { port: number };
let redis: { port: number };
let tcpClient: BurrowProcess;
let udpClient: BurrowProcess;
let orgClient: BurrowProcess;

/** Waits until the server logged `n` established connectors for tunnel/network. */
async function established(tid: string, network: 'tcp' | 'udp', n = 1): Promise<void> {
  const pred = (l: { msg?: string }): boolean =>
    typeof l.msg === 'string' && l.msg.includes(`/${network}: tunnel=${tid},`) && l.msg.endsWith('established');
  await server.waitFor(() => server.count(pred) >= n, { what: `${n} ${network} connector(s) of ${tid}` });
}

/** A visitor process: the `-L` args plus `-F tunnel://<server>?tunnel.id=<tid>`. */
function visitor(tid: string, args: string[], name: string): BurrowProcess {
  return burrow([...args, '-F', `tunnel://127.0.0.1:${serverPort}?tunnel.id=${tid}`, '-D'], { name });
}

before(async () => {
  web = cleanup.add(await startHttpService('web-srv'));
  ssh = cleanup.add(await startBannerEcho('SSH-2.0-srv-2'));
  redis = cleanup.add(await startBannerEcho('REDIS-srv-3'));
  const dns2 = cleanup.add(await startUdpService('dns-srv-2'));
  const dns3 = cleanup.add(await startUdpService('dns-srv-3'));
  const orgUdp = cleanup.add(await startUdpService('org-udp'));

  const serverCfg = fixture('6.6-server-private-rules.yaml', [
    ['addr: :8443', 'addr: 127.0.0.1:0'],
    ['entryPoint: ":80"', `entryPoint: "127.0.0.1:0"\n      entrypoint.id: ${TID.public}`],
  ]);
  server = burrow(['-C', serverCfg, '-D'], { name: 'server-6.6' });
  serverPort = await server.listeningPort();
  ep = await server.entrypointPort();

  tcpClient = burrow(
    [
      '-C',
      fixture('6.9-tcp-services-client.yaml', [
        ['addr: :8443', `addr: 127.0.0.1:${serverPort}`],
        ['addr: 192.168.2.1:22', `addr: 127.0.0.1:${ssh.port}`],
        ['addr: 192.168.2.2:6379', `addr: 127.0.0.1:${redis.port}`],
      ]),
      '-D',
    ],
    { name: 'client-6.9' },
  );
  udpClient = burrow(
    [
      '-C',
      fixture('6.11-udp-services-client.yaml', [
        ['addr: :8443', `addr: 127.0.0.1:${serverPort}`],
        ['addr: 192.168.2.1:53', `addr: 127.0.0.1:${dns2.port}`],
        ['addr: 192.168.2.2:53', `addr: 127.0.0.1:${dns3.port}`],
      ]),
      '-D',
    ],
    { name: 'client-6.11' },
  );
  // C2 plus a UDP service on the same tunnel ID (web, TCP and UDP on one tunnel).
  orgClient = burrow(
    [
      '-L',
      `rtcp://:0/127.0.0.1:${web.port}`,
      '-L',
      `rudp://:0/127.0.0.1:${orgUdp.port}`,
      '-F',
      `tunnel://127.0.0.1:${serverPort}?tunnel.id=${TID.org}`,
      '-D',
    ],
    { name: 'client-org' },
  );
  await Promise.all([
    established(TID.services, 'tcp'),
    established(TID.services, 'udp'),
    established(TID.org, 'tcp'),
    established(TID.org, 'udp'),
  ]);
});

describe('TCP visitors (V4, V5) and the §6.9 client', () => {
  let v: BurrowProcess;
  let sshPort: number;
  let redisPort: number;
  let wrongPort: number;
  before(async () => {
    v = visitor(
      TID.services,
      ['-L', 'tcp://127.0.0.1:0/ssh.srv-2.local', '-L', 'tcp://127.0.0.1:0/redis.srv-3.local', '-L', 'tcp://127.0.0.1:0/srv-3.local'],
      'visitor-tcp',
    );
    sshPort = await v.listeningPort({ service: 'service-0' });
    redisPort = await v.listeningPort({ service: 'service-1' });
    wrongPort = await v.listeningPort({ service: 'service-2' });
  });

  it('ssh.srv-2.local reaches the ssh service and echoes 1 MiB', async () => {
    const payload = randomBytes(1024 * 1024);
    const r = await bannerExchange(sshPort, payload);
    assert.equal(r.banner, 'SSH-2.0-srv-2');
    assert.ok(r.echoed.equals(payload));
  });

  it('redis.srv-3.local is picked by its host filter', async () => {
    const r = await bannerExchange(redisPort, Buffer.from('PING\r\n'));
    assert.equal(r.banner, 'REDIS-srv-3');
    assert.equal(r.echoed.toString(), 'PING\r\n');
  });

  it('carries 20 concurrent connections to both services', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => bannerExchange(i % 2 ? redisPort : sshPort, randomBytes(10_000 + i))),
    );
    results.forEach((r, i) => assert.equal(r.banner, i % 2 ? 'REDIS-srv-3' : 'SSH-2.0-srv-2'));
  });

  it('a visitor of tunnel A asking for a host of tunnel B gets its connection closed (0x06)', async () => {
    const got = await expectClosed(wrongPort, 'GET / HTTP/1.1\r\nHost: srv-3.local\r\n\r\n');
    assert.equal(got.length, 0);
    await server.waitForMsg(/^no route to host srv-3\.local for tunnel aede1f6a/);
    // The same on the wire.
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.services, dst: 'srv-3.local:0' }), S.hostUnreachable);
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.org, dst: 'ssh.srv-2.local:0' }), S.hostUnreachable);
    // No rule at all, and the empty host of direct mode on a server without it: also 0x06.
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.services, dst: 'nothing.local:0' }), S.hostUnreachable);
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.services, dst: ':0' }), S.hostUnreachable);
    // A rule without a connected client: 0x05.
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.example, dst: 'srv-0.local:0' }), S.unavailable);
  });

  it('a raw CONNECT for ssh.srv-2.local gets 0x00 and the stream header names the host', async () => {
    const mark = tcpClient.mark();
    const r = await relayConnect(serverPort, { tunnelId: TID.services, dst: 'ssh.srv-2.local:0', src: '192.0.2.10:4242' });
    try {
      assert.equal(r.status, S.ok);
      const banner = await readN(r.socket, 'SSH-2.0-srv-2\n'.length - r.rest.length);
      assert.equal(Buffer.concat([r.rest, banner]).toString(), 'SSH-2.0-srv-2\n');
      // The client saw the visitor's src and the requested host in the stream header.
      await tcpClient.waitFor((l) => l.remote === '192.0.2.10:4242' && /\(host ssh\.srv-2\.local:0\)$/.test(String(l.msg)), {
        from: mark,
        what: 'client log for src 192.0.2.10:4242',
      });
    } finally {
      r.socket.destroy();
    }
  });
});

describe('UDP visitors (V6, §6.11 / §6.12)', () => {
  let v6: BurrowProcess;
  let port2: number;
  let port3: number;
  let vk: BurrowProcess;
  let keepPort: number;
  let ttlPort: number;
  const clients: UdpClient[] = [];
  after(() => clients.forEach((c) => c.close()));
  async function udp(port: number): Promise<UdpClient> {
    const c = await new UdpClient(port).bind();
    clients.push(c);
    return c;
  }

  before(async () => {
    v6 = burrow(
      [
        '-C',
        fixture('6.12-udp-visitors.yaml', [
          ['addr: :1053', 'addr: 127.0.0.1:0'],
          ['addr: :2053', 'addr: 127.0.0.1:0'],
          ['addr: :8443', `addr: 127.0.0.1:${serverPort}`],
        ]),
        '-D',
      ],
      { name: 'visitor-6.12' },
    );
    port2 = await v6.listeningPort({ service: 'service-0', network: 'udp' });
    port3 = await v6.listeningPort({ service: 'service-1', network: 'udp' });
    vk = visitor(
      TID.services,
      ['-L', 'udp://127.0.0.1:0/dns.srv-2.local?keepalive=true', '-L', 'udp://127.0.0.1:0/dns.srv-3.local?keepalive=true&ttl=1s'],
      'visitor-udp-keepalive',
    );
    keepPort = await vk.listeningPort({ service: 'service-0' });
    ttlPort = await vk.listeningPort({ service: 'service-1' });
  });

  it('dns.srv-2.local and dns.srv-3.local reach their own servers by host filter', async () => {
    const a = await udp(port2);
    const b = await udp(port3);
    assert.equal((await a.ask('who', 3_000))?.toString(), 'dns-srv-2');
    assert.equal((await b.ask('who', 3_000))?.toString(), 'dns-srv-3');
  });

  it('without keepalive a session ends after the first reply', async () => {
    const c = await udp(port2);
    const remote = `${LOCAL}:${c.localPort}`;
    const opened = (l: { msg?: string; remote?: unknown }): boolean => l.remote === remote && / <> /.test(String(l.msg));
    const closed = (l: { msg?: string; remote?: unknown }): boolean => l.remote === remote && / >< /.test(String(l.msg));
    assert.equal((await c.ask('who'))?.toString(), 'dns-srv-2');
    await v6.waitFor(closed, { what: `session of ${remote} closed` });
    // The next datagram from the same client opens a new session (a new CONNECT).
    assert.equal((await c.ask('who'))?.toString(), 'dns-srv-2');
    await v6.waitFor(() => v6.count(closed) >= 2, { what: 'second session closed' });
    assert.equal(v6.count(opened), 2);
    // The client side saw two streams from this visitor client, both ended.
    await udpClient.waitFor(() => udpClient.count(closed) >= 2, { what: 'client-side streams closed' });
  });

  it(
    'without keepalive only the first reply reaches the client',
    async () => {
      // Five replies sent back to back, ten clients at once: only the first reply of each may
      // reach its client.
      const counts = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = await udp(port2);
          const first = (await c.ask('who5'))?.toString();
          let more = 0;
          while (await c.recv(400)) more++;
          return `${first}+${more}`;
        }),
      );
      assert.deepEqual(counts, Array(10).fill('dns-srv-2#1+0'));
    },
  );

  it('with keepalive=true 1,000 datagrams of mixed sizes up to 65,507 bytes round-trip intact in one session', async () => {
    const c = await udp(keepPort);
    const remote = `${LOCAL}:${c.localPort}`;
    const fixed = [0, 1, 2, 100, 1200, 1472, 1473, 4095, 4096, 4097, 8192, 16_384, 32_767, 32_768, 32_769, 65_000, 65_507];
    const sizes = Array.from({ length: 1000 }, (_, i) => (i < fixed.length ? fixed[i]! : Math.floor(Math.random() ** 3 * 65_508)));
    sizes[999] = 65_507;
    // The first datagram may race the session set-up; retry it.
    assert.equal((await c.ask('who', 2_000, 3))?.toString(), 'dns-srv-2');
    for (let i = 0; i < sizes.length; i++) {
      const n = sizes[i]!;
      const d = randomBytes(n);
      if (n >= 4) d.writeUInt32BE(i, 0);
      // Avoid the text queries of the UDP service.
      if (n > 0 && n <= 4 && /^who\d?$/.test(d.toString())) d[0] = 0;
      const r = await c.ask(d, 3_000);
      assert.ok(r, `datagram #${i} (${n} bytes) got no reply`);
      assert.equal(r.length, n, `datagram #${i}: size`);
      assert.ok(r.equals(d), `datagram #${i} (${n} bytes) corrupted`);
    }
    // One session for all of it.
    assert.equal(vk.count((l) => l.remote === remote && / <> /.test(String(l.msg))), 1);
    assert.equal(vk.count((l) => l.remote === remote && / >< /.test(String(l.msg))), 0);
    // Several replies per request get through in keepalive mode.
    assert.equal((await c.ask('who2'))?.toString(), 'dns-srv-2#1');
    assert.equal((await c.recv(2_000))?.toString(), 'dns-srv-2#2');
  });

  it('an idle session ends after ttl (1 s) and its stream is freed; the next datagram opens a new one', async () => {
    const c = await udp(ttlPort);
    const remote = `${LOCAL}:${c.localPort}`;
    const closed = (l: { msg?: string; remote?: unknown }): boolean => l.remote === remote && / >< /.test(String(l.msg));
    assert.equal((await c.ask('who', 2_000, 3))?.toString(), 'dns-srv-3');
    const t0 = Date.now();
    await vk.waitFor(closed, { timeoutMs: 5_000, what: 'ttl expiry' });
    const idle = Date.now() - t0;
    assert.ok(idle >= 900 && idle <= 60_000, `session closed after ${idle} ms of idleness (ttl 1 s)`);
    // The client behind the tunnel closed its UDP stream for this visitor client too.
    await udpClient.waitFor(closed, { timeoutMs: 3_000, what: 'client-side stream closed' });
    assert.equal((await c.ask('who'))?.toString(), 'dns-srv-3');
    assert.equal(vk.count((l) => l.remote === remote && / <> /.test(String(l.msg))), 2);
  });
});

describe('HTTP visitors (V2 sniffing, V3 manual host) and isolation', () => {
  let v: BurrowProcess;
  let manualPort: number;
  let sniffPort: number;
  let udpPort: number;
  before(async () => {
    v = visitor(
      TID.org,
      ['-L', 'tcp://127.0.0.1:0/srv-2.local', '-L', 'tcp://127.0.0.1:0?sniffing=true', '-L', 'udp://127.0.0.1:0/srv-3.local?keepalive=true'],
      'visitor-org',
    );
    manualPort = await v.listeningPort({ service: 'service-0' });
    sniffPort = await v.listeningPort({ service: 'service-1' });
    udpPort = await v.listeningPort({ service: 'service-2' });
  });

  it('the entry point refuses the private rule srv-2.local (502) and serves srv-3.local', async () => {
    const priv = await httpRequest(ep, { host: 'srv-2.local' });
    assert.equal(priv.status, 502);
    await server.waitForMsg(/^tunnel ac74d9dd-3125-442a-a7c1-f9e49e05faca is private for host srv-2\.local/);
    const pub = await httpRequest(ep, { host: 'srv-3.local', path: '/pub' });
    assert.equal(pub.status, 200);
    assert.equal(pub.body, 'web-srv GET /pub host=srv-3.local');
    assert.equal((await httpRequest(ep, { host: 'srv-0.local' })).status, 503);
  });

  it('V3: a manual host (srv-2.local) reaches the private tunnel; dst is srv-2.local:0', async () => {
    const mark = orgClient.mark();
    const r = await httpRequest(manualPort, { host: 'anything.example', path: '/v3' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'web-srv GET /v3 host=anything.example');
    await orgClient.waitFor((l) => /\(host srv-2\.local:0\)$/.test(String(l.msg)), { from: mark, what: 'stream header host srv-2.local:0' });
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.org, dst: 'srv-2.local:0' }), S.ok);
  });

  it('V2: sniffing routes by Host: srv-2.local and srv-3.local pass, srv-0.local is refused (0x06)', async () => {
    const mark = orgClient.mark();
    const a = await httpRequest(sniffPort, { host: 'srv-2.local', path: '/v2a' });
    assert.equal(a.status, 200);
    assert.equal(a.body, 'web-srv GET /v2a host=srv-2.local');
    const b = await httpRequest(sniffPort, { host: 'srv-3.local', path: '/v2b' });
    assert.equal(b.status, 200);
    await orgClient.waitFor((l) => /\(host srv-2\.local:80\)$/.test(String(l.msg)), { from: mark, what: 'dst srv-2.local:80' });
    await orgClient.waitFor((l) => /\(host srv-3\.local:80\)$/.test(String(l.msg)), { from: mark, what: 'dst srv-3.local:80' });
    // Sniffed HTTP is proxied per request: a host the server refuses (0x06) gets an empty 502.
    const refused = await rawHttp(sniffPort, 'GET / HTTP/1.1\r\nHost: srv-0.local\r\nConnection: close\r\n\r\n');
    assert.match(refused.data, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(refused.data, /\r\nContent-Length: 0\r\n/);
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.org, dst: 'srv-0.local:80' }), S.hostUnreachable);
  });

  it(
    'V2: sniffed HTTP is proxied per request (each request of one connection routed by its Host)',
    async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const mark = orgClient.mark();
      try {
        assert.equal((await httpRequest(sniffPort, { host: 'srv-2.local', agent })).status, 200);
        assert.equal((await httpRequest(sniffPort, { host: 'srv-3.local', agent })).status, 200);
      } finally {
        agent.destroy();
      }
      await orgClient.waitFor((l) => /\(host srv-3\.local:80\)$/.test(String(l.msg)), {
        from: mark,
        timeoutMs: 2_000,
        what: 'a second stream for srv-3.local:80',
      });
    },
  );

  it('the entry point relay path ignores ingress and privacy (protocol.md §3.4)', async () => {
    const r = await relayConnect(ep, { tunnelId: TID.org, dst: 'srv-2.local:80' });
    try {
      assert.equal(r.status, S.ok);
      r.socket.resume();
      r.socket.write('GET /ep-relay HTTP/1.1\r\nHost: srv-2.local\r\nConnection: close\r\n\r\n');
      const text = await new Promise<string>((resolve) => {
        let s = r.rest.toString();
        r.socket.on('data', (c: Buffer) => (s += c.toString()));
        r.socket.on('end', () => resolve(s));
      });
      assert.match(text, /^HTTP\/1\.1 200 /);
      assert.match(text, /web-srv GET \/ep-relay host=srv-2\.local$/);
    } finally {
      r.socket.destroy();
    }
    assert.equal(await relayStatus(ep, { tunnelId: TID.example, dst: 'srv-0.local:80' }), S.unavailable);
  });

  it('multiplexing: one tunnel ID carries web, TCP and UDP; each visitor kind reaches its own connector', async () => {
    const u = await new UdpClient(udpPort).bind();
    try {
      assert.equal((await u.ask('who', 2_000, 3))?.toString(), 'org-udp');
      const tcp = Array.from({ length: 30 }, (_, i) => httpRequest(manualPort, { host: 'x', path: `/mux/${i}` }));
      const webReqs = Array.from({ length: 30 }, (_, i) => httpRequest(ep, { host: 'srv-3.local', path: `/muxweb/${i}` }));
      const udpReplies: string[] = [];
      for (let i = 0; i < 30; i++) udpReplies.push(String((await u.ask(`d${i}`))?.toString()));
      for (const r of await Promise.all([...tcp, ...webReqs])) assert.equal(r.status, 200);
      assert.deepEqual(udpReplies, Array.from({ length: 30 }, (_, i) => `d${i}`));
      // Separate UDP clients, one session (one stream) each.
      const more = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = await new UdpClient(udpPort).bind();
          try {
            return (await c.ask('who', 2_000, 2))?.toString();
          } finally {
            c.close();
          }
        }),
      );
      assert.deepEqual(more, Array(10).fill('org-udp'));
    } finally {
      u.close();
    }
  });
});

describe('public visitor: tunnel.id = entrypoint.id (§6.3, V1)', () => {
  let sniffPort: number;
  before(async () => {
    const v = visitor(TID.public, ['-L', 'tcp://127.0.0.1:0?sniffing=true'], 'visitor-public');
    sniffPort = await v.listeningPort();
  });

  it('reaches public rules of any tunnel', async () => {
    const r = await httpRequest(sniffPort, { host: 'srv-3.local', path: '/public' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'web-srv GET /public host=srv-3.local');
    const raw = await relayConnect(serverPort, { tunnelId: TID.public, dst: 'ssh.srv-2.local:0' });
    try {
      assert.equal(raw.status, S.ok);
      const banner = Buffer.concat([raw.rest, await readN(raw.socket, 'SSH-2.0-srv-2\n'.length - raw.rest.length)]);
      assert.equal(banner.toString(), 'SSH-2.0-srv-2\n');
    } finally {
      raw.socket.destroy();
    }
  });

  it('gets 0x06 for a private rule and 0x07 for no rule; the sniffing visitor answers 502', async () => {
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.public, dst: 'srv-2.local:80' }), S.hostUnreachable);
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.public, dst: 'nothing.local:80' }), S.networkUnreachable);
    assert.equal(await relayStatus(serverPort, { tunnelId: TID.public, dst: 'srv-0.local:80' }), S.unavailable);
    // Sniffed HTTP is proxied per request, so a refused host gets an empty 502, not a silent close.
    for (const host of ['srv-2.local', 'nothing.local']) {
      const r = await rawHttp(sniffPort, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.match(r.data, /^HTTP\/1\.1 502 Bad Gateway\r\n/, host);
      assert.equal(r.closed, true, host);
    }
  });
});

describe('direct mode server (S3, §6.13)', () => {
  let dport: number;
  let direct: BurrowProcess;
  const udpOnly = randomUUID();
  let udpEcho: { port: number };
  before(async () => {
    udpEcho = cleanup.add(await startUdpService('direct-udp'));
    direct = burrow(['-C', fixture('6.13-direct-server.yaml', [['addr: :8443', 'addr: 127.0.0.1:0']]), '-D'], { name: 'server-direct' });
    dport = await direct.listeningPort();
    const c1 = burrow(['-L', `rtcp://:0/127.0.0.1:${ssh.port}`, '-F', `tunnel://127.0.0.1:${dport}?tunnel.id=${TID.services}`], {
      name: 'client-direct',
    });
    const c2 = burrow(['-L', `rudp://:0/127.0.0.1:${udpEcho.port}`, '-F', `tunnel://127.0.0.1:${dport}?tunnel.id=${udpOnly}`], {
      name: 'client-direct-udp',
    });
    await Promise.all([c1.tunnelCreated(), c2.tunnelCreated()]);
    await direct.waitFor(() => direct.count((l) => /established$/.test(String(l.msg))) >= 2, { what: 'two connectors' });
  });

  it('a visitor without a target (dst :0) reaches its own tunnel', async () => {
    const v = burrow(['-L', 'tcp://127.0.0.1:0', '-F', `tunnel://127.0.0.1:${dport}?tunnel.id=${TID.services}`], { name: 'visitor-direct' });
    const port = await v.listeningPort();
    const r = await bannerExchange(port, Buffer.from('hello direct'));
    assert.equal(r.banner, 'SSH-2.0-srv-2');
    assert.equal(r.echoed.toString(), 'hello direct');
    assert.equal(await relayStatus(dport, { tunnelId: TID.services, dst: ':0' }), S.ok);
    // The host is not looked up in direct mode.
    assert.equal(await relayStatus(dport, { tunnelId: TID.services, dst: 'whatever.local:0' }), S.ok);
    // Another tunnel ID without a client: no connector.
    assert.equal(await relayStatus(dport, { tunnelId: TID.org, dst: ':0' }), S.unavailable);
  });

  it('TCP visitors only reach TCP connectors: a UDP-only tunnel refuses TCP (0x05) and carries UDP frames', async () => {
    // burrow refuses a TCP CONNECT to a tunnel whose only connector is UDP (gost would hand it
    // over and the client would mishandle it; behavior.md §3.2, recorded deviation).
    assert.equal(await relayStatus(dport, { tunnelId: udpOnly, dst: ':0' }), S.unavailable);
    const r = await relayConnect(dport, { tunnelId: udpOnly, dst: ':0', udp: true });
    try {
      assert.equal(r.status, S.ok);
      const dec = new UdpFrameDecoder();
      const got: Buffer[] = [...dec.push(r.rest)];
      r.socket.on('data', (c: Buffer) => got.push(...dec.push(c)));
      r.socket.resume();
      const big = randomBytes(40_000);
      r.socket.write(encodeDatagram(Buffer.from('who')));
      r.socket.write(encodeDatagram(big));
      const deadline = Date.now() + 5_000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
      assert.equal(got[0]?.toString(), 'direct-udp');
      assert.ok(got[1]?.equals(big), 'a 40,000-byte datagram comes back whole');
    } finally {
      r.socket.destroy();
    }
  });
});
