/**
 * gost's HTTP sd plugin form (`sds: [{plugin: {type: http, addr: URL}}]`, handler `sd: name`)
 * against a small plugin server written here: POST at BIND, PUT at each renewal, DELETE when
 * the connector goes, each with the body {id, name, node, network, address}; GET ?name=<tunnel>
 * for `lookup`. A plugin that fails is warned about once and sent every registration again when
 * it answers; a plugin answering garbage gets nothing routed to it and crashes nothing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { startApp, httpServer, Stops, type RunningApp } from '../../helpers/inproc';
import { waitFor } from '../../helpers/net';
import { parseConfigText } from '../../../src/config/load';
import type { SdRegistry } from '../../../src/sd/registry';

interface Seen {
  method: string;
  url: string;
  type: string | undefined;
  body: Record<string, unknown> | undefined;
}

/** An sd plugin keeping services in memory, as gost-plugins does with Redis. */
class Plugin {
  readonly seen: Seen[] = [];
  readonly services = new Map<string, Record<string, unknown>>();
  /** 'ok', or how it misbehaves. */
  mode: 'ok' | 'status500' | 'notJson' | 'notList' | 'huge' | 'badEntries' = 'ok';
  readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
      this.seen.push({ method: req.method!, url: req.url!, type: req.headers['content-type'], body });
      if (this.mode === 'status500') return void res.writeHead(500).end('down');
      if (req.method === 'GET') {
        const name = new URL(req.url!, 'http://x').searchParams.get('name');
        if (this.mode === 'notJson') return void res.end('<html>');
        if (this.mode === 'notList') return void res.end('{"services": {"a": 1}}');
        if (this.mode === 'huge') return void res.end(`{"services": [${'{"id":"x"},'.repeat(200_000)}{}]}`);
        if (this.mode === 'badEntries') return void res.end('{"services": [null, 7, "x", {"id": 1, "node": ["n"], "address": 5}]}');
        return void res.end(JSON.stringify({ services: [...this.services.values()].filter((s) => s.name === name) }));
      }
      // As gost-plugins: a renewal of an entry the plugin does not have is ignored.
      if (req.method === 'POST' || (req.method === 'PUT' && this.services.has(String(body!.id)))) this.services.set(String(body!.id), body!);
      if (req.method === 'DELETE') this.services.delete(String(body!.id));
      res.end('{"ok": true}');
    });
  });

  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(this.server.address() as { port: number }).port}/sd`)));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('service discovery through an HTTP sd plugin', () => {
  const stops = new Stops();
  const plugin = new Plugin();
  let url = '';

  before(async () => {
    url = await plugin.listen();
  });
  after(async () => {
    await stops.stopAll();
    await plugin.close();
  });

  const server = async (ep = '127.0.0.1:0', ttl = '100ms'): Promise<RunningApp> => {
    const yaml = `services:
- name: service-0
  addr: 127.0.0.1:0
  handler:
    type: tunnel
    metadata:
      entrypoint: "${ep}"
      tunnel.ttl: ${ttl}
      sd: sd-0
  listener:
    type: tcp
sds:
- name: sd-0
  plugin:
    type: http
    addr: ${url}
    timeout: 2s
`;
    return stops.track(await startApp({ config: parseConfigText(yaml, 'sd.yaml').config }));
  };
  const client = async (srv: RunningApp, port: number, id: string): Promise<RunningApp> =>
    startApp({ L: [`rtcp://:0/127.0.0.1:${port}`], F: [`tunnel://${srv.addr()}?tunnel.id=${id}`] });
  const registry = (srv: RunningApp): SdRegistry => srv.app.built.tunnelHandlers.get('service-0')!.server.sd!;
  const nodeOf = (srv: RunningApp): string => srv.app.built.tunnelHandlers.get('service-0')!.server.nodeId;
  const calls = (method: string, id: string): Seen[] => plugin.seen.filter((s) => s.method === method && s.body?.id === id);

  test('POST at BIND, PUT to renew, DELETE when the connector goes, with gost’s JSON body', async () => {
    const srv = await server();
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const c = await client(srv, svc.port, id);
    const b = await c.bound;
    await waitFor(() => calls('POST', b.connectorId).length === 1, 10_000, 'the registration');
    const expected = { id: b.connectorId, name: id, node: nodeOf(srv), network: 'tcp', address: srv.entrypoint() };
    const post = calls('POST', b.connectorId)[0]!;
    assert.deepEqual(post.body, expected);
    assert.equal(post.url, '/sd');
    assert.equal(post.type, 'application/json');
    await waitFor(() => calls('PUT', b.connectorId).length >= 2, 10_000, 'renewals');
    for (const put of calls('PUT', b.connectorId)) assert.deepEqual(put.body, expected);
    await c.stop();
    await waitFor(() => calls('DELETE', b.connectorId).length === 1, 10_000, 'the deregistration');
    assert.deepEqual(calls('DELETE', b.connectorId)[0]!.body, expected);
    assert.equal(calls('POST', b.connectorId).length, 1);
  });

  test('lookup asks GET ?name=<tunnel> and keeps the other nodes’ services', async () => {
    const a = await server();
    const bsrv = await server();
    const svc = stops.track(await httpServer('x'));
    const id = randomUUID();
    const b = await stops.track(await client(bsrv, svc.port, id)).bound;
    await waitFor(() => plugin.services.has(b.connectorId), 10_000, 'the registration');
    plugin.services.set('gost-conn', { id: 'gost-conn', name: id, node: 'gost-node', network: 'tcp', address: '10.0.0.1:80' });
    const before = plugin.seen.length;
    const found = await registry(a).lookup(id, 'tcp');
    assert.deepEqual(found.map((s) => s.id).sort(), [b.connectorId, 'gost-conn'].sort());
    const get = plugin.seen.slice(before).find((s) => s.method === 'GET')!;
    assert.equal(get.url, `/sd?name=${id}`);
    assert.deepEqual(
      (await registry(bsrv).lookup(id)).map((s) => s.id),
      ['gost-conn'],
      'its own connector is not a remote node',
    );
  });

  test('an entry point on all interfaces is registered as ":port", for the plugin to fill in (as gost)', async () => {
    const srv = await server('0.0.0.0:0');
    const svc = stops.track(await httpServer('x'));
    const b = await stops.track(await client(srv, svc.port, randomUUID())).bound;
    await waitFor(() => calls('POST', b.connectorId).length === 1, 10_000, 'the registration');
    assert.equal(calls('POST', b.connectorId)[0]!.body!.address, `:${srv.entrypoint().split(':').pop()}`);
  });

  test('a failing plugin: one warning, the registration is POSTed again once it answers', async () => {
    const srv = await server();
    const svc = stops.track(await httpServer('x'));
    plugin.mode = 'status500';
    try {
      const b = await stops.track(await client(srv, svc.port, randomUUID())).bound;
      const warns = (): unknown[] => srv.logs.filter((l) => l.level === 'warn' && /sd plugin/.test(String(l.msg)));
      await waitFor(() => plugin.seen.filter((s) => s.body?.id === b.connectorId).length >= 3, 10_000, 'attempts');
      assert.equal(warns().length, 1);
      assert.match(JSON.stringify(warns()[0]), /status 500/);
      plugin.mode = 'ok';
      // Only a POST adds an entry to this plugin: a PUT of a lost registration would not.
      await waitFor(() => plugin.services.has(b.connectorId), 10_000, 'the registration once the plugin answers');
      assert.equal(warns().length, 1);
    } finally {
      plugin.mode = 'ok';
    }
  });

  test('garbage from the plugin: lookup answers nothing usable and nothing crashes', async () => {
    const srv = await server();
    const id = randomUUID();
    try {
      for (const mode of ['notJson', 'notList', 'huge', 'status500'] as const) {
        plugin.mode = mode;
        assert.deepEqual(await registry(srv).lookup(id), [], mode);
      }
      plugin.mode = 'badEntries';
      // Entries of the wrong shape carry no node or address: never a target.
      const got = await registry(srv).lookup(id);
      assert.deepEqual(got, []);
    } finally {
      plugin.mode = 'ok';
    }
    assert.ok(srv.logs.some((l) => l.level === 'warn' && /not JSON|not a list|1 MiB|status 500/.test(String(l.msg))));
  });
});
