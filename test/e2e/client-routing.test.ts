/**
 * Client-side routing by host (config.md §6.5, behavior.md §5.2): three forwarder targets, two
 * with `filter.host` and one unfiltered fallback, behind the S1 server. With `sniffing=true` the
 * HTTP Host of the traffic picks the node; without it the host of the stream header does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { burrow, fixture } from '../helpers/cli';
import { Cleanup, TID, httpRequest, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

interface Setup {
  ep: number;
  visitorPort: number;
}

let node1: HttpService;
let node2: HttpService;
let fallback: HttpService;

before(async () => {
  node1 = cleanup.add(await startHttpService('node-1'));
  node2 = cleanup.add(await startHttpService('node-2'));
  fallback = cleanup.add(await startHttpService('fallback'));
});

async function setup(sniffing: boolean, tag: string): Promise<Setup> {
  const server = burrow(
    ['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${TID.example},example.org:${TID.org}`, '-D'],
    { name: `server-${tag}` },
  );
  const port = await server.listeningPort();
  const ep = await server.entrypointPort();
  const cfg = fixture('6.5-client-host-routing.yaml', [
    ['addr: :8443', `addr: 127.0.0.1:${port}`],
    ['addr: 192.168.1.1:80', `addr: 127.0.0.1:${node1.port}`],
    ['addr: 192.168.1.2:80', `addr: 127.0.0.1:${node2.port}`],
    ['addr: 192.168.2.1:80', `addr: 127.0.0.1:${fallback.port}`],
    ...(sniffing ? [] : ([['sniffing: true', 'sniffing: false']] as const)),
  ]);
  const client = burrow(['-C', cfg, '-D'], { name: `client-${tag}` });
  await client.tunnelCreated();
  await server.waitForMsg(/established$/);
  // A private visitor of the same tunnel with a fixed target host (stream header host
  // "example.com"), to tell the sniffed Host from the header host apart.
  const visitor = burrow(
    ['-L', 'tcp://127.0.0.1:0/example.com', '-F', `tunnel://127.0.0.1:${port}?tunnel.id=${TID.example}`, '-D'],
    { name: `visitor-${tag}` },
  );
  const visitorPort = await visitor.listeningPort();
  return { ep, visitorPort };
}

async function whoServes(port: number, host: string, agent?: http.Agent): Promise<string> {
  const r = await httpRequest(port, { host, agent });
  assert.equal(r.status, 200, `status for ${host}: ${r.status} ${r.body}`);
  return String(r.headers['x-service']);
}

for (const sniffing of [true, false]) {
  describe(`client routing by host, sniffing=${sniffing}`, () => {
    let s: Setup;
    before(async () => {
      s = await setup(sniffing, sniffing ? 'sniff' : 'header');
    });

    it('example.com → node 1, sub.example.com → node 2, abc.example.com → fallback', async () => {
      assert.equal(await whoServes(s.ep, 'example.com'), 'node-1');
      assert.equal(await whoServes(s.ep, 'sub.example.com'), 'node-2');
      assert.equal(await whoServes(s.ep, 'abc.example.com'), 'fallback');
      // A port in the Host does not change the choice.
      assert.equal(await whoServes(s.ep, 'sub.example.com:8080'), 'node-2');
    });

    it('routes each request on one keep-alive connection by its own host', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const seen: string[] = [];
        for (let i = 0; i < 4; i++) {
          for (const h of ['example.com', 'sub.example.com', 'abc.example.com']) seen.push(await whoServes(s.ep, h, agent));
        }
        assert.deepEqual(seen, Array.from({ length: 4 }, () => ['node-1', 'node-2', 'fallback']).flat());
      } finally {
        agent.destroy();
      }
    });

    it(
      sniffing
        ? 'a visitor stream for example.com carrying Host: sub.example.com goes by the sniffed Host'
        : 'a visitor stream for example.com goes by the stream header host, whatever the HTTP Host',
      async () => {
        assert.equal(await whoServes(s.visitorPort, 'sub.example.com'), sniffing ? 'node-2' : 'node-1');
        assert.equal(await whoServes(s.visitorPort, 'abc.example.com'), sniffing ? 'fallback' : 'node-1');
      },
    );

    it(
      sniffing
        ? 'sniffed HTTP is proxied per request: one visitor connection, each request by its own Host'
        : 'without sniffing one visitor connection is spliced to one node',
      {},
      async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          const seen: string[] = [];
          for (const h of ['sub.example.com', 'abc.example.com', 'example.com', 'sub.example.com']) {
            seen.push(await whoServes(s.visitorPort, h, agent));
          }
          assert.deepEqual(seen, sniffing ? ['node-2', 'fallback', 'node-1', 'node-2'] : ['node-1', 'node-1', 'node-1', 'node-1']);
        } finally {
          agent.destroy();
        }
      },
    );
  });
}
