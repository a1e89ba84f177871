import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseArgs } from '../../../src/cli/args';
import { buildConfigFromCli } from '../../../src/cli/build';
import type { ChainConfig, Config, MetadataMap, NodeConfig, ServiceConfig } from '../../../src/core/config';
import { parseConfigText } from '../../../src/config/load';
import { loadConfig } from '../../../src/cli/load';
import { renderConfig } from '../../../src/config/output';
import { ConfigError } from '../../../src/core/errors';
import { argvOf, DOC_COMMANDS } from './doc-commands';

// ---------------------------------------------------------------------------------------------
// Expected models, written out from spec/config.md §4.2/§4.3.

const ID = {
  a: '4d21094e-b74c-4916-86c1-d9fa36ea677b',
  b: 'ac74d9dd-3125-442a-a7c1-f9e49e05faca',
  ssh: 'aede1f6a-762b-45da-b937-b6632356555a',
  iperf: '22f43305-42f7-4232-bbbc-aa6c042e3bc3',
  pub: '9fd6c586-86f9-49c1-a03a-d4876851695a',
  wisper: '893787fd-fcd2-46a0-8dd4-f9103ae84df4',
  f8: 'f8baa731-4057-4300-ab75-c4e603834f1b',
  ha: '381433e1-7980-11ee-bbdb-60f262c1e32d',
};

/** -L query metadata lands in handler, listener and service metadata. */
function service(
  addr: string,
  type: string,
  opts: { listener?: string; md?: MetadataMap; targets?: string[]; chain?: boolean } = {},
): ServiceConfig {
  const listener = opts.listener ?? type;
  const binds = listener === 'rtcp' || listener === 'rudp';
  const md = opts.md ? { metadata: { ...opts.md } } : {};
  return {
    name: '',
    addr,
    handler: { type, ...(opts.chain && !binds ? { chain: 'chain-0' } : {}), ...(opts.md ? { metadata: { ...opts.md } } : {}) },
    listener: { type: listener, ...(opts.chain && binds ? { chain: 'chain-0' } : {}), ...(opts.md ? { metadata: { ...opts.md } } : {}) },
    ...(opts.targets ? { forwarder: { nodes: opts.targets.map((a, k) => ({ name: `target-${k}`, addr: a })) } } : {}),
    ...md,
  };
}

/** -F query metadata lands in hop, node, connector and dialer metadata. */
function chain(addr: string, dialer: string, md?: MetadataMap, serverName?: string): ChainConfig {
  const m = md ? { metadata: { ...md } } : {};
  const node: NodeConfig = {
    name: 'node-0',
    addr,
    connector: { type: 'tunnel', ...(md ? { metadata: { ...md } } : {}) },
    dialer: { type: dialer, ...(serverName ? { tls: { serverName } } : {}), ...(md ? { metadata: { ...md } } : {}) },
    ...m,
  };
  return { name: 'chain-0', hops: [{ name: 'hop-0', ...m, nodes: [node] }] };
}

function config(services: ServiceConfig[], chains?: ChainConfig[]): Config {
  services.forEach((s, i) => (s.name = `service-${i}`));
  return { ...(services.length ? { services } : {}), ...(chains ? { chains } : {}) };
}

const wisper = (id?: string) => chain('wisper.gost.run:443', 'wss', id ? { 'tunnel.id': id } : undefined, 'wisper.gost.run');
const plus = (id?: string) => chain('tunnel.gost.plus:443', 'wss', id ? { 'tunnel.id': id } : undefined, 'tunnel.gost.plus');
const local = (id: string) => chain(':8443', 'tcp', { 'tunnel.id': id });

const EXPECTED: Record<string, Config | RegExp> = {
  S1: config([
    service(':8443', 'tunnel', {
      listener: 'tcp',
      md: { entrypoint: ':80', tunnel: `.example.com:${ID.a},example.org:${ID.b}` },
    }),
  ]),
  S2: config([service(':8443', 'tunnel', { listener: 'tcp', md: { 'entrypoint.id': ID.pub } })]),
  S3: config([service(':8443', 'tunnel', { listener: 'tcp', md: { 'tunnel.direct': 'true' } })]),
  S4: config([service(':8443', 'tunnel', { listener: 'tcp', md: { tunnel: `iperf.local:${ID.iperf}` } })]),
  // C1 is spelled out literally, exactly as §4.3 prints it.
  C1: {
    services: [
      {
        name: 'service-0',
        addr: ':0',
        handler: { type: 'rtcp' },
        listener: { type: 'rtcp', chain: 'chain-0' },
        forwarder: { nodes: [{ name: 'target-0', addr: '192.168.1.1:80' }] },
      },
    ],
    chains: [
      {
        name: 'chain-0',
        hops: [
          {
            name: 'hop-0',
            metadata: { 'tunnel.id': ID.a, 'tunnel.weight': '1' },
            nodes: [
              {
                name: 'node-0',
                addr: ':8443',
                metadata: { 'tunnel.id': ID.a, 'tunnel.weight': '1' },
                connector: { type: 'tunnel', metadata: { 'tunnel.id': ID.a, 'tunnel.weight': '1' } },
                dialer: { type: 'tcp', metadata: { 'tunnel.id': ID.a, 'tunnel.weight': '1' } },
              },
            ],
          },
        ],
      },
    ],
  },
  C2: config([service(':0', 'rtcp', { targets: ['192.168.2.1:80'], chain: true })], [local(ID.b)]),
  C3: config(
    [service(':0', 'rtcp', { targets: [':5201'], chain: true }), service(':0', 'rudp', { targets: [':5201'], chain: true })],
    [local(ID.iperf)],
  ),
  C4: config([service(':0', 'rtcp', { targets: ['192.168.1.1:80'], chain: true })], [wisper()]),
  C5: config([service(':0', 'rtcp', { targets: ['192.168.1.1:80'], chain: true })], [wisper(ID.wisper)]),
  C6: config([service(':0', 'rtcp', { targets: ['192.168.1.1:22'], chain: true })], [wisper(ID.f8)]),
  C7: config([service(':0', 'rudp', { targets: ['192.168.1.1:53'], chain: true })], [wisper(ID.f8)]),
  C8: config([service(':0', 'rtcp', { targets: ['192.168.1.1:80'], chain: true })], [plus(ID.f8)]),
  C9: config([service(':0', 'rtcp', { targets: ['192.168.1.1:80'], chain: true })], [plus()]),
  C10: config([service('hello', 'rtcp', { targets: ['192.168.1.1:80'], chain: true })], [plus(ID.f8)]),
  C11: config([service(':0', 'rtcp', { targets: ['192.168.1.1:22'], chain: true })], [plus(ID.f8)]),
  C12: config([service(':0', 'rudp', { targets: ['192.168.1.1:53'], chain: true })], [plus(ID.f8)]),
  // gost's `file` handler serves a directory over HTTP; burrow does not have it.
  C13: /^-L "file:\/\/:8000": handler "file" is not supported by burrow \(supported handlers: tunnel, tcp, udp, rtcp, rudp, forward\)$/,
  V1: config([service(':8000', 'tcp', { md: { sniffing: 'true' }, chain: true })], [local(ID.pub)]),
  V2: config([service(':8000', 'tcp', { md: { sniffing: 'true' }, chain: true })], [local(ID.b)]),
  V3: config([service(':8000', 'tcp', { targets: ['srv-2.local'], chain: true })], [local(ID.b)]),
  V4: config([service(':2222', 'tcp', { targets: ['ssh.srv-2.local'], chain: true })], [local(ID.ssh)]),
  V5: config([service(':6379', 'tcp', { targets: ['redis.srv-3.local'], chain: true })], [local(ID.ssh)]),
  V6: config(
    [service(':1053', 'udp', { targets: ['dns.srv-2.local'], chain: true }), service(':2053', 'udp', { targets: ['dns.srv-3.local'], chain: true })],
    [local(ID.ssh)],
  ),
  V7: config(
    [
      service(':15201', 'tcp', { targets: ['iperf.local'], chain: true }),
      service(':15201', 'udp', { targets: ['iperf.local'], md: { keepalive: 'true' }, chain: true }),
    ],
    [local(ID.iperf)],
  ),
  V8: config(
    [service(':15201', 'tcp', { chain: true }), service(':15201', 'udp', { md: { keepalive: 'true' }, chain: true })],
    [local(ID.iperf)],
  ),
  V9: config([service(':2222', 'tcp', { targets: ['f1bbbb4aa9d9868a.gost.run'], chain: true })], [wisper(ID.f8)]),
  V10: config([service(':1053', 'udp', { targets: ['f1bbbb4aa9d9868a.gost.run'], chain: true })], [wisper(ID.f8)]),
  V11: config([service(':2222', 'tcp', { targets: ['f1bbbb4aa9d9868a.gost.plus'], chain: true })], [plus(ID.f8)]),
  V12: config([service(':1053', 'udp', { targets: ['f1bbbb4aa9d9868a.gost.plus'], chain: true })], [plus(ID.f8)]),
};

describe('buildConfigFromCli: spec/config.md §5 command lines', () => {
  it('covers every command of §5', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), DOC_COMMANDS.map((c) => c.id).sort());
  });

  for (const { id, command } of DOC_COMMANDS) {
    const expected = EXPECTED[id]!;
    it(`${id}: ${command}`, async () => {
      const args = parseArgs(argvOf(command));
      if (expected instanceof RegExp) {
        assert.throws(() => buildConfigFromCli(args.listen, args.forward), (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.match(err.message, expected);
          return true;
        });
        return;
      }
      const built = buildConfigFromCli(args.listen, args.forward);
      assert.deepEqual(built, expected);

      // The same command through the full loader (verify included) gives the same model.
      const loaded = await loadConfig([], { listen: args.listen, forward: args.forward }, { searchPaths: [], env: {} });
      assert.deepEqual(loaded.config, expected);
      assert.deepEqual(loaded.warnings, []);

      // -O yaml / -O json output loads back into the same model.
      for (const format of ['yaml', 'json'] as const) {
        const text = renderConfig(built, format);
        const back = parseConfigText(text, `${id}.${format}`, format);
        assert.deepEqual(back.config, built, `${format} round trip:\n${text}`);
        assert.deepEqual(back.warnings, []);
      }
    });
  }
});

describe('buildConfigFromCli: mapping rules', () => {
  it('prints §4.3 C1 as gost-style YAML, CLI values quoted as strings', () => {
    const args = parseArgs(argvOf(DOC_COMMANDS.find((c) => c.id === 'C1')!.command));
    const yaml = renderConfig(buildConfigFromCli(args.listen, args.forward), 'yaml');
    assert.match(yaml, /^services:\n- name: service-0\n {2}addr: :0\n {2}handler:\n {4}type: rtcp\n {2}listener:\n {4}type: rtcp\n {4}chain: chain-0\n {2}forwarder:\n/);
    assert.match(yaml, /tunnel\.weight: "1"/);
  });

  it('a port range makes one service per port; targets are dealt out by index', () => {
    const cfg = buildConfigFromCli(['tcp://:8000-8002/a:1,b:2'], []);
    assert.deepEqual(
      cfg.services!.map((s) => [s.name, s.addr, s.forwarder?.nodes?.map((n) => `${n.name}=${n.addr}`)]),
      [
        ['service-0', ':8000', ['target-0=a:1']],
        ['service-1', ':8001', ['target-1=b:2']],
        ['service-2', ':8002', undefined],
      ],
    );
  });

  it('a port range with one target gives every service that target', () => {
    const cfg = buildConfigFromCli(['udp://:53-54/dns.local'], []);
    assert.deepEqual(cfg.services!.map((s) => s.forwarder!.nodes![0]!.addr), ['dns.local', 'dns.local']);
  });

  it('a target port range expands into several targets', () => {
    const cfg = buildConfigFromCli(['tcp://:80/10.0.0.1:8000-8001'], []);
    assert.deepEqual(cfg.services![0]!.forwarder!.nodes, [
      { name: 'target-0', addr: '10.0.0.1:8000' },
      { name: 'target-1', addr: '10.0.0.1:8001' },
    ]);
  });

  it('no scheme with targets is tcp forwarding (auto → listener type)', () => {
    const cfg = buildConfigFromCli([':8080/10.0.0.1:80'], []);
    assert.equal(cfg.services![0]!.handler.type, 'tcp');
    assert.equal(cfg.services![0]!.listener.type, 'tcp');
  });

  it('targets on a non-forwarding listener make a forward handler', () => {
    const cfg = buildConfigFromCli(['tls://:8443/10.0.0.1:80'], []);
    assert.deepEqual([cfg.services![0]!.handler.type, cfg.services![0]!.listener.type], ['forward', 'tls']);
  });

  it('-L prefixes scope a key; unprefixed keys go to handler, listener and service', () => {
    const cfg = buildConfigFromCli(['tunnel://:8443?handler.a=1&listener.b=2&service.c=3&d=4'], []);
    const s = cfg.services![0]!;
    assert.deepEqual(s.handler.metadata, { a: '1', d: '4' });
    assert.deepEqual(s.listener.metadata, { b: '2', d: '4' });
    assert.deepEqual(s.metadata, { c: '3', d: '4' });
  });

  it('-F prefixes scope a key; unprefixed keys go to hop, node, connector and dialer', () => {
    const cfg = buildConfigFromCli([], ['tunnel://:8443?hop.a=1&node.b=2&connector.c=3&dialer.d=4&e=5']);
    const hop = cfg.chains![0]!.hops[0]!;
    const node = hop.nodes![0]!;
    assert.deepEqual(hop.metadata, { a: '1', e: '5' });
    assert.deepEqual(node.metadata, { b: '2', e: '5' });
    assert.deepEqual(node.connector!.metadata, { c: '3', e: '5' });
    assert.deepEqual(node.dialer!.metadata, { d: '4', e: '5' });
  });

  it('several -F addresses make one hop with several nodes; each -F is one hop', () => {
    const cfg = buildConfigFromCli([], ['tunnel://a:1,b:2?tunnel.id=' + ID.a, 'tunnel+ws://c:3']);
    const hops = cfg.chains![0]!.hops;
    assert.deepEqual(hops.map((h) => [h.name, h.nodes!.map((n) => `${n.name}@${n.addr}`)]), [
      ['hop-0', ['node-0@a:1', 'node-1@b:2']],
      ['hop-1', ['node-0@c:3']],
    ]);
    assert.deepEqual(hops[0]!.nodes!.map((n) => n.dialer!.tls?.serverName), ['a', 'b']);
  });

  it('user:pass@ → handler auth (-L) and connector auth (-F); ?auth= is base64 user:pass', () => {
    const cfg = buildConfigFromCli(['tunnel://admin:s3cret@:8443'], [`tunnel://:8443?auth=${Buffer.from('u:p').toString('base64')}`]);
    assert.deepEqual(cfg.services![0]!.handler.auth, { username: 'admin', password: 's3cret' });
    assert.deepEqual(cfg.chains![0]!.hops[0]!.nodes![0]!.connector!.auth, { username: 'u', password: 'p' });
    assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.metadata, undefined);
  });

  it('TLS keys move to listener.tls (-L) and dialer.tls (-F)', () => {
    const cfg = buildConfigFromCli(
      ['tunnel+tls://:8443?certFile=/c.pem&key=/k.pem&ca=/ca.pem'],
      ['tunnel+tls://srv:8443?secure=true&serverName=example.com&caFile=/ca.pem'],
    );
    assert.deepEqual(cfg.services![0]!.listener.tls, { certFile: '/c.pem', keyFile: '/k.pem', caFile: '/ca.pem' });
    assert.equal(cfg.services![0]!.listener.metadata, undefined);
    assert.deepEqual(cfg.chains![0]!.hops[0]!.nodes![0]!.dialer!.tls, { caFile: '/ca.pem', secure: true, serverName: 'example.com' });
  });

  it('selector keys become the forwarder selector (-L) and hop selector (-F)', () => {
    const cfg = buildConfigFromCli(['tcp://:80/a:1,b:2?strategy=rand&maxFails=3'], ['tunnel://a:1,b:2?failTimeout=5s']);
    assert.deepEqual(cfg.services![0]!.forwarder!.selector, { strategy: 'rand', maxFails: 3, failTimeout: '30s' });
    assert.deepEqual(cfg.chains![0]!.hops[0]!.selector, { strategy: 'round', maxFails: 1, failTimeout: '5s' });
    assert.equal(cfg.services![0]!.handler.metadata, undefined);
  });

  it('retries moves to handler.retries (only the handler copy is removed, as gost)', () => {
    const cfg = buildConfigFromCli(['tcp://:80/a:1?retries=2'], []);
    assert.equal(cfg.services![0]!.handler.retries, 2);
    assert.equal(cfg.services![0]!.handler.metadata, undefined);
    assert.deepEqual(cfg.services![0]!.listener.metadata, { retries: '2' });
  });

  it('features burrow does not implement are warned about, not fatal', () => {
    const warnings: string[] = [];
    const cfg = buildConfigFromCli(['tcp://:80/a:1?bypass=10.0.0.0/8&limiter.in=1MB'], ['tunnel://h:1?hosts=a:1.2.3.4'], warnings);
    assert.equal(cfg.services![0]!.handler.metadata, undefined);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^-F "tunnel:\/\/h:1\?hosts=a:1\.2\.3\.4": "hosts" not supported by burrow/);
    assert.match(warnings[1]!, /"bypass", "limiter\.in" not supported by burrow/);
  });

  it('the listener part of tunnel:// is tcp; of tunnel+ws:// is ws; dialer of tunnel+wss:// is wss', () => {
    const cfg = buildConfigFromCli(['tunnel://:1', 'tunnel+ws://:2', 'tunnel+wss://:3'], ['tunnel+wss://h:443']);
    assert.deepEqual(cfg.services!.map((s) => s.listener.type), ['tcp', 'ws', 'wss']);
    assert.equal(cfg.chains![0]!.hops[0]!.nodes![0]!.dialer!.type, 'wss');
  });

  it('no -F means no chain and no chain references', () => {
    const cfg = buildConfigFromCli(['tcp://:80/a:1'], []);
    assert.equal(cfg.chains, undefined);
    assert.equal(cfg.services![0]!.handler.chain, undefined);
  });
});
