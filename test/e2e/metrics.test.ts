/**
 * Metrics of public traffic with real processes: visitors' requests through the entry point
 * are counted in gost_service_* under `<service>-ep-<addr>` and per tunnel
 * (burrow_tunnel_*), the client counts its sessions, reconnects and streams, and the
 * per-tunnel series stop at `metrics.maxTunnels` with one warning.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { burrow, tempFile, type BurrowProcess } from '../helpers/cli';
import { apiCall, apiPort, basic, metricsPort } from '../helpers/api';
import { Cleanup, TID, eventually, httpRequest, startHttpService, type HttpService } from './support';

const cleanup = new Cleanup();
after(() => cleanup.run());

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of a scrape of `port`'s /metrics. */
async function scrape(port: number): Promise<Sample[]> {
  const r = await apiCall(port, 'GET', '/metrics');
  assert.equal(r.status, 200);
  const out: Sample[] = [];
  for (const line of r.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the sample named `name` whose labels include `labels` (undefined if none). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s?.value;
}

const EP = 'service-0-ep-127.0.0.1:0';
const AUTH = { authorization: basic('ops', 'pw-m1'), 'content-type': 'application/json' };

describe('metrics of public traffic', () => {
  let server: BurrowProcess;
  let client: BurrowProcess;
  let web: HttpService;
  let entry: number;
  let serverMetrics: number;
  let clientMetrics: number;
  let api: number;

  before(async () => {
    web = await startHttpService('web');
    cleanup.add(web);
    server = burrow(
      [
        '-L',
        `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=app.local:${TID.example},other.local:${TID.org}`,
        '-metrics',
        '127.0.0.1:0',
        '-api',
        'ops:pw-m1@127.0.0.1:0',
      ],
      { name: 'server' },
    );
    const tunnelPort = await server.listeningPort();
    entry = await server.entrypointPort();
    serverMetrics = await metricsPort(server);
    api = await apiPort(server);
    client = burrow(
      ['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${TID.example}`, '-metrics', '127.0.0.1:0'],
      { name: 'client' },
    );
    clientMetrics = await metricsPort(client);
    await client.tunnelCreated({ timeoutMs: 20_000 });
  });

  const BODY = 'x'.repeat(1000);
  let sent = 0;
  let received = 0;

  it('counts requests per tunnel, host and status; unrouted ones without a host', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await httpRequest(entry, { host: 'app.local', path: `/get/${i}` });
      assert.equal(r.status, 200);
      received += r.body.length;
    }
    const post = await httpRequest(entry, { host: 'APP.local:80', path: '/post', method: 'POST', body: BODY });
    assert.equal(post.status, 200);
    assert.match(post.body, /bytes=1000 /);
    sent += BODY.length;
    received += post.body.length;
    // Configured but not connected: 503. Unknown: 502.
    assert.equal((await httpRequest(entry, { host: 'other.local' })).status, 503);
    assert.equal((await httpRequest(entry, { host: 'nowhere.local' })).status, 502);

    const m = await scrape(serverMetrics);
    assert.equal(value(m, 'burrow_tunnel_requests_total', { tunnel: TID.example, host: 'app.local', code: '200' }), 4);
    assert.equal(value(m, 'burrow_tunnel_requests_total', { tunnel: TID.org, host: 'other.local', code: '503' }), 1);
    assert.equal(value(m, 'burrow_tunnel_requests_total', { tunnel: '', host: '', code: '502' }), 1);
    assert.equal(m.filter((s) => s.name === 'burrow_tunnel_requests_total').length, 3, 'no other series');
    assert.equal(value(m, 'burrow_tunnel_connectors_per_tunnel', { tunnel: TID.example }), 1);
    assert.equal(value(m, 'burrow_tunnel_connectors_per_tunnel', { tunnel: TID.org }), undefined, 'not live');
    // Bytes into the tunnel: request heads (rewritten) and the body; out: response heads and bodies.
    const bin = value(m, 'burrow_tunnel_transfer_input_bytes_total', { tunnel: TID.example })!;
    const bout = value(m, 'burrow_tunnel_transfer_output_bytes_total', { tunnel: TID.example })!;
    assert.ok(bin > sent && bin < sent + 4 * 2048, `input bytes ${bin}`);
    assert.ok(bout > received && bout < received + 4 * 2048, `output bytes ${bout}`);
  });

  it('the entry point counts its connections and bytes in gost_service_* under its own name', async () => {
    const m = await scrape(serverMetrics);
    // One connection per request (no agent keeps them).
    assert.equal(value(m, 'gost_service_requests_total', { service: EP }), 6);
    assert.equal(value(m, 'gost_service_requests_in_flight', { service: EP }), 0);
    assert.ok(value(m, 'gost_service_transfer_input_bytes_total', { service: EP })! > sent);
    assert.ok(value(m, 'gost_service_transfer_output_bytes_total', { service: EP })! > received);
    assert.equal(value(m, 'gost_service_request_duration_seconds_count', { service: EP }), 6);
  });

  it('the client counts its session and the streams it was sent', async () => {
    const m = await scrape(clientMetrics);
    assert.equal(value(m, 'burrow_client_tunnel_sessions', { service: 'service-0' }), 1);
    assert.equal(value(m, 'burrow_client_tunnel_sessions_total', { service: 'service-0' }), 1);
    assert.equal(value(m, 'burrow_client_tunnel_reconnects_total', { service: 'service-0' }), 0);
    // Four requests: a stream each, or fewer when the entry point kept one for the next.
    const streams = value(m, 'burrow_client_streams_total', { service: 'service-0' })!;
    assert.ok(streams >= 1 && streams <= 4, `streams ${streams}`);
    // A stream the entry point keeps idle for a later request stays open.
    const open = value(m, 'burrow_client_streams_open', { service: 'service-0' })!;
    assert.ok(open >= 0 && open <= streams, `open streams ${open}`);
  });

  it('a reconnect is counted by the client; the tunnel\'s byte counters never go back', async () => {
    const before = await scrape(serverMetrics);
    const bin = value(before, 'burrow_tunnel_transfer_input_bytes_total', { tunnel: TID.example })!;
    // A request whose bytes are moved by the connector about to go, not yet scraped.
    assert.equal((await httpRequest(entry, { host: 'app.local', path: '/last', method: 'POST', body: BODY })).status, 200);
    const st = await apiCall(api, 'GET', '/status', { headers: AUTH });
    const id = st.json.tunnels[0].connectors[0].id;
    const mark = client.mark();
    assert.equal((await apiCall(api, 'POST', `/status/connectors/${id}/disconnect`, { headers: AUTH })).status, 200);
    await client.tunnelCreated({ from: mark, timeoutMs: 20_000 });
    const cm = await eventually(async () => {
      const s = await scrape(clientMetrics);
      assert.equal(value(s, 'burrow_client_tunnel_sessions', { service: 'service-0' }), 1);
      return s;
    }, 10_000);
    assert.equal(value(cm, 'burrow_client_tunnel_sessions_total', { service: 'service-0' }), 2);
    assert.equal(value(cm, 'burrow_client_tunnel_reconnects_total', { service: 'service-0' }), 1);
    const after = await scrape(serverMetrics);
    // The gone connector's bytes (the last body included) are kept.
    assert.ok(value(after, 'burrow_tunnel_transfer_input_bytes_total', { tunnel: TID.example })! >= bin + BODY.length);
    assert.equal(value(after, 'burrow_tunnel_requests_total', { tunnel: TID.example, host: 'app.local', code: '200' }), 5);
  });
});

describe('the per-tunnel series cap (metrics.maxTunnels)', () => {
  it('counts at most that many tunnels and warns once', async () => {
    const web = await startHttpService('web');
    cleanup.add(web);
    const ids = [TID.example, TID.org, TID.services];
    const rules = ids.map((id, i) => `t${i}.local:${id}`).join(',');
    const server = burrow(['-L', `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=${rules}`, '-metrics', '127.0.0.1:0?maxTunnels=2'], {
      name: 'server-cap',
    });
    const tunnelPort = await server.listeningPort();
    const entry = await server.entrypointPort();
    const mport = await metricsPort(server);
    for (const [i, id] of ids.entries()) {
      const c = burrow(['-L', `rtcp://:0/127.0.0.1:${web.port}`, '-F', `tunnel://127.0.0.1:${tunnelPort}?tunnel.id=${id}`], { name: `client-${i}` });
      await c.tunnelCreated({ timeoutMs: 20_000 });
      // Requests in bind order: the first two tunnels take the two places.
      for (let k = 0; k < 2; k++) assert.equal((await httpRequest(entry, { host: `t${i}.local` })).status, 200);
    }
    const m = await scrape(mport);
    const tunnels = (name: string) => new Set(m.filter((s) => s.name === name).map((s) => s.labels.tunnel));
    assert.deepEqual(tunnels('burrow_tunnel_requests_total'), new Set([TID.example, TID.org]));
    assert.deepEqual(tunnels('burrow_tunnel_connectors_per_tunnel'), new Set([TID.example, TID.org]));
    assert.deepEqual(tunnels('burrow_tunnel_transfer_input_bytes_total'), new Set([TID.example, TID.org]));
    assert.equal(value(m, 'burrow_tunnel_requests_total', { tunnel: TID.org, code: '200' }), 2);
    // Every tunnel still counts in the totals.
    assert.equal(value(m, 'burrow_tunnels'), 3);
    assert.equal(value(m, 'burrow_tunnel_connectors'), 3);
    await httpRequest(entry, { host: 't2.local' });
    await scrape(mport);
    const warnings = server.filter((l) => /per-tunnel series are capped at 2 tunnels/.test(String(l.msg)));
    assert.equal(warnings.length, 1, 'one warning');
    assert.match(String(warnings[0]!.msg), new RegExp(TID.services));
    await server.stop();
  });

  it('a bad maxTunnels is a config error naming the flag or the file and line', async () => {
    const p = burrow(['-L', 'tunnel://127.0.0.1:0', '-metrics', '127.0.0.1:0?maxTunnels=lots']);
    const exit = await p.exited;
    assert.equal(exit.code, 2);
    assert.match(p.output.join('\n'), /-metrics: metrics\.maxTunnels: maxTunnels "lots": expected a whole number/);
    const file = tempFile(
      'metrics-cap.yaml',
      'services:\n  - name: s\n    addr: 127.0.0.1:0\n    handler: {type: tunnel}\n    listener: {type: tcp}\nmetrics:\n  addr: 127.0.0.1:0\n  maxTunnels: -3\n',
    );
    const f = burrow(['-C', file]);
    assert.equal((await f.exited).code, 2);
    assert.match(f.output.join('\n'), /metrics-cap\.yaml: metrics\.maxTunnels: expected 0 or more \(line 8\)/);
  });
});
