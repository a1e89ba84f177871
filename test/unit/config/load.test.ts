import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseArgs } from '../../../src/cli/args';
import { buildConfigFromCli } from '../../../src/cli/build';
import type { Config } from '../../../src/core/config';
import { loadConfigSource, mergeConfigs, parseConfigText } from '../../../src/config/load';
import { loadConfig } from '../../../src/cli/load';
import { renderConfig } from '../../../src/config/output';
import { ConfigError } from '../../../src/core/errors';
import { Metadata } from '../../../src/core/metadata';
import { argvOf, DOC_COMMANDS } from '../cli/doc-commands';

const FIXTURES = join(__dirname, '../../fixtures/config');
const fixture = (name: string) => join(FIXTURES, name);
const NO_DEFAULTS = { searchPaths: [], env: {} };
const load = (file: string) => loadConfig([fixture(file)], { listen: [], forward: [] }, NO_DEFAULTS);

const node0 = (cfg: Config) => cfg.chains![0]!.hops[0]!.nodes![0]!;
const cliConfig = (id: string): Config => {
  const args = parseArgs(argvOf(DOC_COMMANDS.find((c) => c.id === id)!.command));
  return buildConfigFromCli(args.listen, args.forward);
};
const DIALER_DEFECT = /connector\.dialer \(line \d+\): unknown key 'dialer' in a connector is ignored \(gost ignores it too\); 'dialer' is a key of chains\[0\]\.hops\[0\]\.nodes\[0\] — check its indentation/;

/** What each §6 fixture must load into (beyond loading and round-tripping). */
const FIXTURE_CHECKS: Record<string, (cfg: Config, warnings: string[]) => void> = {
  '6.1-server.yaml': (cfg, w) => {
    const svc = cfg.services![0]!;
    assert.deepEqual([svc.name, svc.addr, svc.handler.type, svc.listener.type], ['service-0', ':8443', 'tunnel', 'tcp']);
    assert.deepEqual(svc.handler.metadata, { entrypoint: ':80', ingress: 'ingress-0' });
    assert.deepEqual(cfg.ingresses, [
      {
        name: 'ingress-0',
        rules: [
          { hostname: '.example.com', endpoint: '4d21094e-b74c-4916-86c1-d9fa36ea677b' },
          { hostname: 'example.org', endpoint: 'ac74d9dd-3125-442a-a7c1-f9e49e05faca' },
        ],
      },
    ]);
    assert.deepEqual(w, []);
  },
  '6.2-client.yaml': (cfg, w) => {
    // The YAML form of C1: the same service; the chain has typed (not string) metadata.
    assert.deepEqual(cfg.services, cliConfig('C1').services);
    assert.deepEqual(node0(cfg).connector, {
      type: 'tunnel',
      metadata: { 'tunnel.id': '4d21094e-b74c-4916-86c1-d9fa36ea677b', 'tunnel.weight': 1 },
    });
    assert.deepEqual(node0(cfg).dialer, { type: 'tcp' });
    assert.deepEqual(w, []);
  },
  '6.3-server-entrypoint-id.yaml': (cfg) => {
    assert.equal(new Metadata(cfg.services![0]!.handler.metadata).getString('entrypoint.id'), '9fd6c586-86f9-49c1-a03a-d4876851695a');
  },
  '6.4-public-visitor-sniffing.yaml': (cfg, w) => {
    assert.deepEqual(node0(cfg).dialer, { type: 'tcp' }, 'the mis-indented dialer is ignored; the default applies');
    assert.equal(new Metadata(cfg.services![0]!.handler.metadata).getBool('sniffing'), true);
    assert.equal(w.length, 1);
    assert.match(w[0]!, DIALER_DEFECT);
  },
  '6.5-client-host-routing.yaml': (cfg) => {
    assert.deepEqual(cfg.services![0]!.forwarder!.nodes, [
      { name: 'example-com', addr: '192.168.1.1:80', filter: { host: 'example.com' } },
      { name: 'sub-example-com', addr: '192.168.1.2:80', filter: { host: 'sub.example.com' } },
      { name: 'fallback', addr: '192.168.2.1:80' },
    ]);
  },
  '6.6-server-private-rules.yaml': (cfg) => {
    const md = cfg.services![0]!.handler.metadata!;
    assert.deepEqual(Object.keys(md), ['entryPoint', 'ingress'], 'metadata keys are kept as written');
    assert.equal(new Metadata(md).getString('entrypoint'), ':80', 'and looked up case-insensitively');
    assert.equal(cfg.ingresses![0]!.rules!.length, 8);
    assert.equal(cfg.ingresses![0]!.rules![2]!.endpoint, '$ac74d9dd-3125-442a-a7c1-f9e49e05faca');
  },
  '6.7-private-client.yaml': (cfg) => {
    assert.deepEqual(cfg.services![0]!.forwarder!.nodes, [{ name: 'srv-2.local', addr: '192.168.2.1:80' }]);
  },
  '6.8-private-visitor-sniffing.yaml': (cfg, w) => {
    assert.deepEqual(node0(cfg).dialer, { type: 'tcp' });
    assert.match(w[0]!, DIALER_DEFECT);
  },
  '6.9-tcp-services-client.yaml': (cfg) => {
    assert.deepEqual(cfg.services![0]!.forwarder!.nodes!.map((n) => [n.addr, n.filter?.host]), [
      ['192.168.2.1:22', 'ssh.srv-2.local'],
      ['192.168.2.2:6379', 'redis.srv-3.local'],
    ]);
  },
  '6.10-tcp-visitor.yaml': (cfg, w) => {
    assert.deepEqual(cfg.services![0]!.forwarder!.nodes, [{ name: 'ssh', addr: 'ssh.srv-2.local' }]);
    assert.equal(cfg.services![0]!.handler.chain, 'chain-0');
    assert.match(w[0]!, DIALER_DEFECT);
  },
  '6.11-udp-services-client.yaml': (cfg) => {
    assert.deepEqual([cfg.services![0]!.handler.type, cfg.services![0]!.listener.type, cfg.services![0]!.listener.chain], ['rudp', 'rudp', 'chain-0']);
  },
  '6.12-udp-visitors.yaml': (cfg, w) => {
    assert.deepEqual(cfg.services!.map((s) => [s.name, s.addr, s.handler.type, s.listener.type]), [
      ['service-0', ':1053', 'udp', 'udp'],
      ['service-1', ':2053', 'udp', 'udp'],
    ]);
    assert.match(w[0]!, DIALER_DEFECT);
  },
  '6.13-direct-server.yaml': (cfg) => {
    assert.deepEqual(cfg.services![0]!.handler.metadata, { 'tunnel.direct': true });
  },
  '6.14-iperf-server.yaml': (cfg) => {
    assert.deepEqual(cfg.services![0]!.handler.metadata, { ingress: 'ingress-0' });
  },
  '6.15-iperf-client.yaml': (cfg) => {
    assert.deepEqual(cfg.services!.map((s) => `${s.name}:${s.handler.type}/${s.listener.type}`), ['iperf-tcp:rtcp/rtcp', 'iperf-udp:rudp/rudp']);
  },
  '6.16-iperf-visitor.yaml': (cfg, w) => {
    assert.deepEqual(cfg.services![1]!.listener.metadata, { keepalive: true });
    assert.deepEqual(w, []);
  },
  '6.18-gost-plus-server.yaml': (cfg, w) => {
    assert.equal(cfg.services![0]!.listener.type, 'ws');
    assert.deepEqual(cfg.ingresses![0]!.plugin, { type: 'grpc', addr: 'gost-plugins:8000' });
    assert.equal(w.length, 1);
    assert.match(w[0]!, /6\.18-gost-plus-server\.yaml: ingresses\[0\]\.plugin \(line 14\): ingress plugins are not implemented by burrow/);
  },
  '6.19-ha-server.yaml': (cfg, w) => {
    assert.deepEqual(cfg.sds, [{ name: 'sd-0', plugin: { type: 'grpc', addr: 'sd-plugin:8000' } }]);
    assert.deepEqual(cfg.log, { level: 'debug' });
    assert.equal(w.length, 2);
    assert.match(w[0]!, /6\.19-ha-server\.yaml: ingresses\[0\]\.plugin \(line 15\): ingress plugins are not implemented/);
    assert.match(w[1]!, /6\.19-ha-server\.yaml: sds\[0\]\.plugin\.type: grpc sd plugins are not implemented by burrow \(only type: http, or the built-in redis form\); connectors are not registered/);
  },
  '6.20-ingress-sources.yaml': (cfg, w) => {
    assert.deepEqual(cfg.ingresses, [
      {
        name: 'ingress-0',
        reload: '10s',
        file: { path: '/path/to/file' },
        redis: { addr: '127.0.0.1:6379', db: 1, username: 'user', password: '123456', key: 'gost:ingresses:ingress-0', type: 'hash' },
        http: { url: 'http://127.0.0.1:8000', timeout: '10s' },
      },
    ]);
    assert.deepEqual(w, []);
  },
};

describe('spec/config.md §6 YAML fixtures', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.yaml') && !f.includes('docs-original'));

  it('every fixture has a check', () => {
    assert.deepEqual(files.sort(), Object.keys(FIXTURE_CHECKS).sort());
  });

  for (const file of files) {
    it(`${file} loads and round-trips through renderConfig`, async () => {
      const { config, warnings } = await load(file);
      FIXTURE_CHECKS[file]!(config, warnings);
      for (const format of ['yaml', 'json'] as const) {
        const text = renderConfig(config, format);
        const back = parseConfigText(text, `${file}.${format}`, format);
        assert.deepEqual(back.config, config, `${format} round trip:\n${text}`);
        assert.deepEqual(back.warnings.filter((x) => !/not implemented/.test(x)), []);
      }
    });
  }

  it("rejects the docs' original iperf visitor (two top-level services: keys), naming file and line", async () => {
    const file = fixture('6.16-iperf-visitor-docs-original.yaml');
    await assert.rejects(loadConfig([file], { listen: [], forward: [] }, NO_DEFAULTS), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.source, file);
      assert.equal(err.message, `${file}: duplicate key 'services' at line 15 (first defined at line 3)`);
      return true;
    });
  });
});

describe('loading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-load-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('matches keys case-insensitively and uses the canonical spelling', () => {
    const { config, warnings } = parseConfigText(
      [
        'Services:',
        '- NAME: s',
        '  Addr: ":8443"',
        '  HANDLER: {TYPE: tunnel, MetaData: {EntryPoint: ":80"}}',
        '  listener:',
        '    type: tls',
        '    TLS: {certfile: /c.pem, KEYFILE: /k.pem, servername: x}',
      ].join('\n'),
      'caps.yaml',
    );
    assert.deepEqual(warnings, []);
    assert.deepEqual(config.services, [
      {
        name: 's',
        addr: ':8443',
        handler: { type: 'tunnel', metadata: { EntryPoint: ':80' } },
        listener: { type: 'tls', tls: { certFile: '/c.pem', keyFile: '/k.pem', serverName: 'x' } },
      },
    ]);
  });

  it('applies gost defaults: listener tcp, dialer tcp', () => {
    const { config } = parseConfigText(
      'services: [{name: s, addr: ":1", handler: {type: tunnel}}]\nchains: [{name: c, hops: [{name: h, nodes: [{name: n, addr: "h:1", connector: {type: tunnel}}]}]}]',
      'd.yaml',
    );
    assert.deepEqual(config.services![0]!.listener, { type: 'tcp' });
    assert.deepEqual(node0(config).dialer, { type: 'tcp' });
  });

  it('coerces scalars like gost (numeric strings, bool strings, nanosecond durations, numeric passwords)', () => {
    const { config } = parseConfigText(
      JSON.stringify({
        services: [
          {
            name: 's',
            addr: ':1',
            handler: { type: 'tcp', retries: '2', auth: { username: 'u', password: 123456 } },
            forwarder: { nodes: [{ name: 't', addr: 'a:1' }], selector: { strategy: 'fifo', maxFails: '3', failTimeout: 30000000000 } },
          },
        ],
        api: { addr: ':18080', accesslog: 'true' },
      }),
      'c.json',
    );
    const svc = config.services![0]!;
    assert.equal(svc.handler.retries, 2);
    assert.deepEqual(svc.handler.auth, { username: 'u', password: '123456' });
    assert.deepEqual(svc.forwarder!.selector, { strategy: 'fifo', maxFails: 3, failTimeout: '30s' });
    assert.deepEqual(config.api, { addr: ':18080', accesslog: true });
  });

  it('warns about gost keys burrow ignores and about keys gost does not know', () => {
    const { config, warnings } = parseConfigText(
      ['services:', '- name: s', '  addr: ":1"', '  bypass: b-0', '  colour: blue', '  handler: {type: tunnel}', 'limiters: []'].join('\n'),
      'w.yaml',
    );
    assert.deepEqual(Object.keys(config.services![0]!), ['name', 'addr', 'handler', 'listener']);
    assert.deepEqual(warnings, [
      "w.yaml: services[0].bypass (line 4): gost key 'bypass' of a service is ignored (not implemented by burrow)",
      "w.yaml: services[0].colour (line 5): unknown key 'colour' in a service is ignored (gost ignores it too)",
      "w.yaml: limiters (line 7): gost key 'limiters' of a config is ignored (not implemented by burrow)",
    ]);
  });

  it('reads JSON files, sniffs extension-less files, inline JSON and stdin', async () => {
    const json = write('c.json', '{"services": [{"name": "j", "addr": ":1", "handler": {"type": "tunnel"}}]}');
    const sniffJson = write('c.conf', ' {"services": [{"name": "k", "addr": ":1", "handler": {"type": "tunnel"}}]}');
    const sniffYaml = write('c.cfg', 'services: [{name: y, addr: ":1", handler: {type: tunnel}}]');
    assert.equal((await loadConfigSource(json)).config.services![0]!.name, 'j');
    assert.equal((await loadConfigSource(sniffJson)).config.services![0]!.name, 'k');
    assert.equal((await loadConfigSource(sniffYaml)).config.services![0]!.name, 'y');
    const inline = await loadConfigSource('{"services": [{"name": "i", "addr": ":1", "handler": {"type": "tunnel"}}]}');
    assert.equal(inline.config.services![0]!.name, 'i');
    const stdin = await loadConfigSource('-', { readStdin: async () => 'services: [{name: si, addr: ":1", handler: {type: tunnel}}]' });
    assert.equal(stdin.config.services![0]!.name, 'si');
  });

  it('loads http(s) sources with the format from Content-Type', async () => {
    const fakeFetch = (async (url: string) => {
      if (url.endsWith('/404')) return new Response('nope', { status: 404 });
      return new Response('{"services": [{"name": "h", "addr": ":1", "handler": {"type": "tunnel"}}]}', {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    }) as unknown as typeof fetch;
    assert.equal((await loadConfigSource('http://config.local/x', { fetch: fakeFetch })).config.services![0]!.name, 'h');
    await assert.rejects(loadConfigSource('http://config.local/404', { fetch: fakeFetch }), /HTTP status 404 \(expected 200\)/);
  });

  it("merges in gost's order: each -C source, then -L/-F; lists concatenated, single objects replaced", async () => {
    const a = write('a.yaml', 'services: [{name: a, addr: ":1", handler: {type: tunnel}}]\nlog: {level: warn}\ntls: {certFile: /a.pem}');
    const b = write('b.yaml', 'services: [{name: b, addr: ":2", handler: {type: tunnel}}]\nlog: {level: error}');
    const { config } = await loadConfig([a, b], { listen: ['tunnel://:3'], forward: [] }, NO_DEFAULTS);
    assert.deepEqual(config.services!.map((s) => s.name), ['a', 'b', 'service-0']);
    assert.deepEqual(config.log, { level: 'error' });
    assert.deepEqual(config.tls, { certFile: '/a.pem' });
  });

  it('mergeConfigs keeps list items by identity', () => {
    const s = { name: 'x', addr: ':1', handler: { type: 'tunnel' }, listener: { type: 'tcp' } };
    assert.equal(mergeConfigs([{ services: [s] }, {}]).services![0], s);
  });

  it('-D/-DD, -api, -metrics and GOST_* environment override the files', async () => {
    const a = write('o.yaml', 'services: [{name: a, addr: ":1", handler: {type: tunnel}}]\nlog: {level: warn, format: text}');
    const { config } = await loadConfig(
      [a],
      { listen: [], forward: [], logLevel: 'trace', api: 'admin:pw@:18080?pathPrefix=/api&accesslog=true' },
      { searchPaths: [], env: { GOST_METRICS: ':9000?path=/m', GOST_LOGGER_LEVEL: 'debug' } },
    );
    assert.deepEqual(config.log, { level: 'trace', format: 'text' });
    assert.deepEqual(config.api, { addr: ':18080', pathPrefix: '/api', accesslog: true, auth: { username: 'admin', password: 'pw' } });
    assert.deepEqual(config.metrics, { addr: ':9000', path: '/m' });
  });

  it('falls back to gost.yaml in the search path when nothing is given', async () => {
    const sub = mkdtempSync(join(dir, 'search-'));
    writeFileSync(join(sub, 'gost.yaml'), 'services: [{name: found, addr: ":1", handler: {type: tunnel}}]');
    const { config } = await loadConfig([], { listen: [], forward: [] }, { searchPaths: [join(dir, 'none'), sub], env: {} });
    assert.equal(config.services![0]!.name, 'found');
    const none = await loadConfig([], { listen: [], forward: [] }, { searchPaths: [join(dir, 'none')], env: {} });
    assert.deepEqual(none.config, {});
  });

  it('a missing ingress is not an error (gost falls back to tunnel= rules) but is warned about', async () => {
    const { warnings } = await loadConfig([], { listen: ['tunnel://:8443?ingress=nope&tunnel=a.local:4d21094e-b74c-4916-86c1-d9fa36ea677b'], forward: [] }, NO_DEFAULTS);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /^-L "tunnel:.*": services\[0\]\.handler: ingress 'nope' is not defined; the handler uses its inline "tunnel" rules instead/);
  });
});
