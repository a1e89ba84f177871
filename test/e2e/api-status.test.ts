/**
 * Readiness, status and events with real processes: a tunnel server in public mode with the web
 * API, a client (with its own API and metrics address) that reaches it through a gate this test
 * controls (first refusing every connection, then passing them on), and a client killed later.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { burrow, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort, metricsPort, EventStream } from '../helpers/api';
import { listenLocal } from '../helpers/local';
import { Cleanup, TID, eventually, httpRequest, startHttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

/** A TCP gate on loopback: closes every connection until `open()`, then relays to `target`. */
async function startGate(target: number): Promise<{ port: number; open(): void; close(): Promise<void> }> {
  let open = false;
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => undefined);
    if (!open) {
      sock.destroy();
      return;
    }
    const up = net.connect(target, '127.0.0.1');
    up.on('error', () => sock.destroy());
    sock.on('close', () => up.destroy());
    up.on('close', () => sock.destroy());
    sock.pipe(up).pipe(sock);
  });
  const l = await listenLocal(server);
  return {
    port: l.port,
    open: () => {
      open = true;
    },
    close: async () => {
      for (const s of socks) s.destroy();
      await l.close();
    },
  };
}

describe('readiness, /status and /events', () => {
  let server: BurrowProcess;
  let client: BurrowProcess;
  let serverApi: number;
  let clientApi: number;
  let clientMetrics: number;
  let gate: Awaited<ReturnType<typeof startGate>>;
  let events: EventStream;

  before(async () => {
    server = burrow(['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel.publicDomain=example.test', '-api', '127.0.0.1:0', '-D'], {
      name: 'server',
    });
    const tunnelPort = await server.listeningPort();
    serverApi = await apiPort(server);
    gate = await startGate(tunnelPort);
    cleanup.add(gate);
    const web = await startHttpService('web');
    cleanup.add(web);
    events = await EventStream.open(serverApi);
    cleanup.fn(() => events.close());
    client = burrow(
      [
        '-L',
        `rtcp://:0/127.0.0.1:${web.port}`,
        '-F',
        `tunnel://127.0.0.1:${gate.port}?tunnel.id=${TID.public}&tunnel.weight=3`,
        '-api',
        '127.0.0.1:0',
        '-metrics',
        '127.0.0.1:0',
        '-D',
      ],
      { name: 'client' },
    );
    clientApi = await apiPort(client);
    clientMetrics = await metricsPort(client);
  });

  it('the server is ready once its listeners are bound; its event stream starts with the status', async () => {
    const r = await apiCall(serverApi, 'GET', '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { ready: true, checks: { listeners: { ok: true } } });
    const first = await events.next(() => true);
    assert.equal(first.event, 'status');
    assert.deepEqual(first.data.tunnels, []);
    assert.equal(first.data.services[0].handler, 'tunnel');
  });

  it('a client is not ready before its first tunnel session, on the API and the metrics address', async () => {
    // The gate refuses: the client has failed at least one bind.
    await client.waitForMsg(/^accept: .*retrying in/, { timeoutMs: 15_000 });
    for (const port of [clientApi, clientMetrics]) {
      const r = await apiCall(port, 'GET', '/readyz');
      assert.equal(r.status, 503, `port ${port}`);
      assert.equal(r.json.ready, false);
      assert.equal(r.json.checks.tunnels.ok, false);
      assert.equal((await apiCall(port, 'GET', '/healthz')).status, 200);
    }
    const st = await apiCall(clientApi, 'GET', '/status');
    assert.equal(st.json.services[0].listener, 'rtcp');
    assert.equal(st.json.services[0].tunnelBound, false);
  });

  let connectorId = '';

  it('is ready after the bind; the server reports connector-up and the name claim', async () => {
    gate.open();
    await client.tunnelCreated({ timeoutMs: 20_000 });
    for (const port of [clientApi, clientMetrics]) {
      const r = await eventually(async () => {
        const a = await apiCall(port, 'GET', '/readyz');
        assert.equal(a.status, 200);
        return a;
      }, 10_000);
      assert.equal(r.json.checks.tunnels.ok, true);
    }
    const up = await events.next((e) => e.event === 'connector-up');
    assert.equal(up.data.tunnelId, TID.public);
    assert.equal(up.data.weight, 3);
    assert.equal(up.data.network, 'tcp');
    assert.equal(up.data.draining, false);
    assert.match(up.data.client, /^127\.0\.0\.1:\d+$/);
    connectorId = up.data.id;
    const claim = await events.next((e) => e.event === 'name-claim');
    assert.equal(claim.data.tunnelId, TID.public);
    assert.equal(claim.data.connector, connectorId);
    assert.match(claim.data.host, /^[0-9a-f]{16}\.example\.test$/);
  });

  it('/status lists the tunnel with its connector and the public name', async () => {
    const st = await apiCall(serverApi, 'GET', '/status');
    assert.equal(st.status, 200);
    assert.equal(st.json.ready, true);
    assert.equal(st.json.tunnels.length, 1);
    const t = st.json.tunnels[0];
    assert.equal(t.id, TID.public);
    assert.equal(t.service, 'service-0');
    assert.equal(t.connectors.length, 1);
    const c = t.connectors[0];
    assert.equal(c.id, connectorId);
    assert.equal(c.weight, 3);
    assert.equal(c.draining, false);
    assert.equal(typeof c.streams, 'number');
    assert.match(c.client, /^127\.0\.0\.1:\d+$/);
    assert.ok(!Number.isNaN(Date.parse(c.since)));
    assert.equal(c.names.length, 1);
    assert.equal(st.json.names.length, 1);
    assert.equal(st.json.names[0].tunnelId, TID.public);
    assert.equal(st.json.names[0].holders, 1);
    assert.equal(st.json.names[0].host, `${c.names[0]}.example.test`);
    const cst = await apiCall(clientApi, 'GET', '/status');
    assert.equal(cst.json.services[0].tunnelBound, true);
  });

  it('/status counts entry point traffic: connections, bytes, requests by code, bytes per connector', async () => {
    const before = await apiCall(serverApi, 'GET', '/status');
    assert.equal(before.json.entryPoints.length, 1);
    const ep0 = before.json.entryPoints[0];
    assert.equal(ep0.service, 'service-0');
    assert.match(ep0.name, /^service-0-ep-127\.0\.0\.1:/);
    const epPort = Number(/:(\d+)$/.exec(ep0.addr)![1]);
    const host = `${before.json.tunnels[0].connectors[0].names[0]}.example.test`;
    const ok = await httpRequest(epPort, { host, path: '/counted', headers: { Connection: 'close' } });
    assert.equal(ok.status, 200);
    const miss = await httpRequest(epPort, { host: 'nobody.example.test', headers: { Connection: 'close' } });
    assert.equal(miss.status, 502);
    await eventually(async () => {
      const st = await apiCall(serverApi, 'GET', '/status');
      const ep = st.json.entryPoints[0];
      assert.equal(ep.connections - ep0.connections, 2, 'two connections finished');
      assert.ok(ep.outputBytes - ep0.outputBytes > 0 && ep.inputBytes - ep0.inputBytes > 0, 'bytes counted both ways');
      const codes = st.json.requests.find((r: { service: string }) => r.service === 'service-0').byCode;
      const was = before.json.requests[0].byCode;
      assert.equal((codes['200'] ?? 0) - (was['200'] ?? 0), 1);
      assert.equal((codes['502'] ?? 0) - (was['502'] ?? 0), 1);
      const c = st.json.tunnels[0].connectors[0];
      assert.ok(c.bytesOut > before.json.tunnels[0].connectors[0].bytesOut, 'the request went to the connector');
      assert.ok(c.bytesIn > before.json.tunnels[0].connectors[0].bytesIn, 'the response came from it');
    });
    assert.deepEqual(before.json.sd, [], 'no service discovery configured');
  });

  it('a killed client: connector-down, the name released, /status without the tunnel', async () => {
    await client.kill('SIGKILL');
    const down = await events.next((e) => e.event === 'connector-down', 20_000);
    assert.equal(down.data.id, connectorId);
    assert.equal(down.data.tunnelId, TID.public);
    const rel = await events.next((e) => e.event === 'name-release');
    assert.equal(rel.data.connector, connectorId);
    const st = await apiCall(serverApi, 'GET', '/status');
    assert.deepEqual(st.json.tunnels, []);
    // The name outlives its last holder for its TTL.
    assert.equal(st.json.names.length, 1);
    assert.equal(st.json.names[0].holders, 0);
    assert.ok(!Number.isNaN(Date.parse(st.json.names[0].expiresAt)));
  });

  it('a second subscriber sees the current state first', async () => {
    const late = await EventStream.open(serverApi);
    try {
      const first = await late.next(() => true);
      assert.equal(first.event, 'status');
      assert.deepEqual(first.data.tunnels, []);
    } finally {
      late.close();
    }
  });
});
