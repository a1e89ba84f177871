/**
 * The parts registry and the option declarations: every part has an implementation and
 * documented options; values are parsed with their ranges (config errors naming the key and the
 * range), keys match case-insensitively with gost's aliases, misspelled keys get the nearest
 * declared one, and a command-line key is unknown only when no scope it reaches declares it.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../src/core/errors';
import { Metadata } from '../../../src/core/metadata';
import {
  CONNECTOR_TYPES,
  DIALER_TYPES,
  GOST_ONLY_DIALERS,
  HANDLER_TYPES,
  LISTENER_TYPES,
  PARTS,
  partOf,
} from '../../../src/core/parts';
import { editDistance, list, nearestKey, parseOption, parseOptions } from '../../../src/core/options/options';
import { TUNNEL_CONNECTOR_OPTIONS, TUNNEL_HANDLER_OPTIONS, effectiveWeight } from '../../../src/core/options/tunnel';
import { UDP_LISTENER_OPTIONS, WS_DIALER_OPTIONS } from '../../../src/core/options/transport';
import { parseTunnelRules } from '../../../src/core/options/tunnel-rules';
import { DIALERS, LISTENERS } from '../../../src/transport';
import { HELP_TEXT } from '../../../src/cli/args';
import { buildConfigFromCli } from '../../../src/cli/build';
import { verifyConfig } from '../../../src/config/verify';
import { parseConfigText } from '../../../src/config/load';

const ID = '4d21094e-b74c-4916-86c1-d9fa36ea677b';

/** The config error of `f`, or a failure when it does not throw one. */
function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** Warnings and error of checking a -L/-F command line. */
function checkCli(listen: string[], forward: string[] = []): { warnings: string[]; error?: ConfigError } {
  const warnings: string[] = [];
  try {
    verifyConfig(buildConfigFromCli(listen, forward, warnings), warnings);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { warnings, error: err };
  }
  return { warnings };
}

function checkYaml(text: string): { warnings: string[]; error?: ConfigError } {
  const { config, warnings } = parseConfigText(text, 'test.yaml');
  try {
    verifyConfig(config, warnings);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { warnings, error: err };
  }
  return { warnings };
}

describe('parts registry', () => {
  test('every registered stream transport has an implementation and every implementation is registered', () => {
    assert.deepEqual(Object.keys(DIALERS).sort(), [...DIALER_TYPES].sort());
    // udp, rtcp and rudp listeners are built in app/build.ts (a table typed by the registry's names).
    assert.deepEqual([...Object.keys(LISTENERS), 'udp', 'rtcp', 'rudp'].sort(), [...LISTENER_TYPES].sort());
  });

  test('every part and every option is documented, and no part declares a key twice with different types', () => {
    for (const [kind, parts] of Object.entries(PARTS)) {
      for (const [name, part] of Object.entries(parts)) {
        assert.ok(part.doc.length > 5, `${kind} ${name} has no documentation`);
        const types = new Map<string, string>();
        for (const d of Object.values(part.options)) {
          assert.ok(d.doc.length > 2, `${kind} ${name}: ${d.key} has no documentation`);
          for (const k of [d.key, ...d.aliases]) {
            const t = types.get(k.toLowerCase());
            if (d.implemented) assert.ok(t === undefined || t === d.type || t === 'any', `${kind} ${name}: ${k} declared as ${t} and ${d.type}`);
            types.set(k.toLowerCase(), d.type);
          }
        }
      }
    }
  });

  test('--help lists the registered parts', () => {
    for (const names of [HANDLER_TYPES, LISTENER_TYPES, CONNECTOR_TYPES, DIALER_TYPES]) {
      assert.ok(HELP_TEXT.includes(names.join(', ')), `help lacks ${names.join(', ')}`);
    }
    assert.ok(!DIALER_TYPES.includes('udp' as never));
    assert.ok(GOST_ONLY_DIALERS.includes('udp'));
  });

  test('tunnel+udp:// as a node is refused by the check with the reason, as a listener it is accepted', () => {
    const { error } = checkCli(['rtcp://:0/127.0.0.1:80'], [`tunnel+udp://127.0.0.1:8443?tunnel.id=${ID}`]);
    assert.match(error!.message, /^-F "tunnel\+udp:\/\/[^"]+": dialer "udp" is not supported by burrow \(supported dialers: tcp, tls, ws/);
    assert.match(error!.message, /stream transport/);
    assert.equal(checkCli(['tunnel+udp://127.0.0.1:8443']).error, undefined);
    const yaml = checkYaml(`chains: [{name: c, hops: [{name: h, nodes: [{name: n, addr: "127.0.0.1:1", connector: {type: tunnel}, dialer: {type: udp}}]}]}]`);
    assert.match(yaml.error!.message, /dialer\.type: dialer type 'udp' is not supported by burrow/);
  });

  test('partOf knows registered names only (not inherited object keys)', () => {
    assert.ok(partOf('handler', 'tunnel'));
    assert.equal(partOf('handler', 'constructor'), undefined);
    assert.equal(partOf('dialer', 'udp'), undefined);
  });
});

describe('option values', () => {
  test('tunnel.weight takes 0–255; 256, 1000, abc, -5 and 1.5 are errors naming the key and the range', () => {
    for (const v of ['0', '1', '255', 0, 255]) assert.equal(parseOption(TUNNEL_CONNECTOR_OPTIONS.weight, new Metadata({ 'tunnel.weight': v })), Number(v));
    for (const v of ['256', '1000', 'abc', '-5', 1.5, '0x10']) {
      const e = configError(() => parseOption(TUNNEL_CONNECTOR_OPTIONS.weight, new Metadata({ 'tunnel.weight': v }), { source: 'x', path: 'p' }));
      assert.equal(e.path, 'p.tunnel.weight');
      assert.match(e.message, /^x: p\.tunnel\.weight: expected an integer from 0 to 255, found /);
    }
    assert.equal(parseOption(TUNNEL_CONNECTOR_OPTIONS.weight, new Metadata({})), 0, 'gost sends 0 by default');
    assert.equal(effectiveWeight(0), 1);
    assert.equal(effectiveWeight(7), 7);
  });

  test('durations: Go syntax or seconds; zero means the default where declared so; junk and negatives are errors', () => {
    const d = TUNNEL_HANDLER_OPTIONS.entrypointIdleTimeout;
    assert.equal(parseOption(d, new Metadata({})), 60_000);
    assert.equal(parseOption(d, new Metadata({ 'entrypoint.idleTimeout': '1m30s' })), 90_000);
    assert.equal(parseOption(d, new Metadata({ 'entrypoint.idleTimeout': 5 })), 5000);
    assert.equal(parseOption(d, new Metadata({ 'entrypoint.idleTimeout': '7' })), 7000);
    assert.equal(parseOption(d, new Metadata({ 'entrypoint.idleTimeout': '0s' })), 60_000);
    assert.equal(parseOption(d, new Metadata({ 'entrypoint.idleTimeout': '' })), 60_000, 'an empty query value means "not given"');
    // sendTimeout: 0 means "never", not the default.
    assert.equal(parseOption(TUNNEL_HANDLER_OPTIONS.sendTimeout, new Metadata({ sendTimeout: '0' })), 0);
    assert.match(configError(() => parseOption(d, new Metadata({ 'entrypoint.idleTimeout': 'soon' }))).message, /expected a duration .* found 'soon'/);
    assert.match(configError(() => parseOption(d, new Metadata({ 'entrypoint.idleTimeout': '-1s' }))).message, /of at least 0s, found '-1s'/);
  });

  test("booleans take Go's spellings; anything else is an error", () => {
    const d = TUNNEL_HANDLER_OPTIONS.direct;
    for (const [v, want] of [['true', true], ['T', true], ['1', true], ['False', false], ['0', false], [true, true], [0, false]] as const) {
      assert.equal(parseOption(d, new Metadata({ 'tunnel.direct': v })), want, String(v));
    }
    assert.match(configError(() => parseOption(d, new Metadata({ 'tunnel.direct': 'yes' }))).message, /tunnel\.direct: expected true or false, found 'yes'/);
  });

  test('keys match case-insensitively, with aliases; the key itself wins over an alias', () => {
    assert.equal(parseOptions(TUNNEL_CONNECTOR_OPTIONS, new Metadata({ TUNNELID: ID })).tunnelId, ID);
    assert.equal(parseOptions(TUNNEL_CONNECTOR_OPTIONS, new Metadata({ 'Tunnel.Weight': '9' })).weight, 9);
    const udp = parseOptions(UDP_LISTENER_OPTIONS, new Metadata({ 'KeepAlive.TTL': '9s', recvQueueSize: 7, 'udp.bufferSize': 1500 }));
    assert.deepEqual([udp.ttl, udp.readQueueSize, udp.readBufferSize], [9000, 7, 1500]);
    assert.equal(parseOptions(UDP_LISTENER_OPTIONS, new Metadata({ ttl: '1s', 'keepalive.ttl': '9s' })).ttl, 1000);
    // An error names the spelling that was given.
    assert.match(configError(() => parseOptions(UDP_LISTENER_OPTIONS, new Metadata({ recvqueuesize: 'x' }))).message, /recvQueueSize: expected an integer/);
  });

  test('typed values: maps and lists', () => {
    const o = parseOptions(WS_DIALER_OPTIONS, new Metadata({ 'ws.header': { 'X-A': 1 }, path: 'tun' }));
    assert.deepEqual(o.header, { 'X-A': '1' });
    assert.equal(o.path, 'tun');
    const hosts = { ...TUNNEL_HANDLER_OPTIONS, hosts: list('hosts', { doc: 'test' }) };
    assert.deepEqual(parseOptions(hosts, new Metadata({ hosts: '10.0.0.0/8, 127.0.0.1' })).hosts, ['10.0.0.0/8', '127.0.0.1']);
    assert.deepEqual(parseOptions(hosts, new Metadata({ hosts: ['a', 1] })).hosts, ['a', '1']);
  });
});

describe('nearest key', () => {
  test('transpositions and small typos find the declared key; unrelated keys find none', () => {
    assert.equal(editDistance('entrypiont', 'entrypoint'), 1);
    assert.equal(nearestKey('entrypiont', [TUNNEL_HANDLER_OPTIONS]), 'entrypoint');
    assert.equal(nearestKey('Tunnel.Wieght', [TUNNEL_CONNECTOR_OPTIONS]), 'tunnel.weight');
    assert.equal(nearestKey('entrypoint.readTimout', [TUNNEL_HANDLER_OPTIONS]), 'entrypoint.readTimeout');
    assert.equal(nearestKey('colour', [TUNNEL_HANDLER_OPTIONS]), undefined);
  });
});

describe('option checks at load', () => {
  test('a misspelled -L key warns once, naming the flag and the nearest key; the service still builds', () => {
    const { warnings, error } = checkCli(['tunnel://:8443?entrypiont=:80']);
    assert.equal(error, undefined);
    const w = warnings.filter((x) => x.includes('entrypiont'));
    assert.deepEqual(w, ['-L "tunnel://:8443?entrypiont=:80": unknown option "entrypiont" (did you mean entrypoint?); ignored']);
  });

  test('a port range makes several services from one -L, still one warning per key', () => {
    const { warnings } = checkCli(['tunnel://:8443-8445?entrypiont=:80']);
    assert.equal(warnings.filter((x) => x.includes('entrypiont')).length, 1);
  });

  test('a -L key is known when any scope it reaches declares it: handler, listener or service', () => {
    // backlog: the listener's; entrypoint: the handler's; interface: the service's (gost's, not implemented).
    const { warnings, error } = checkCli(['tunnel+ws://:8443?backlog=64&entrypoint=:80&path=/t&Tunnel.Direct=true']);
    assert.equal(error, undefined);
    assert.deepEqual(warnings, []);
    const svc = checkCli(['tunnel://:8443?interface=eth0']).warnings;
    assert.equal(svc.length, 1);
    assert.match(svc[0]!, /"interface" \(outgoing network interface\) is a gost option burrow does not implement \(ignored\)/);
  });

  test('a -F key is known when the connector or the dialer declares it; a misspelling names the nearest', () => {
    const ok = checkCli(['rtcp://:0/127.0.0.1:80'], [`tunnel+wss://127.0.0.1:443?tunnelID=${ID}&path=/x&tunnel.weight=3&connectTimeout=5s`]);
    assert.equal(ok.error, undefined);
    assert.deepEqual(ok.warnings, []);
    const bad = checkCli(['rtcp://:0/127.0.0.1:80'], [`tunnel://127.0.0.1:443?tunnel.id=${ID}&tunnel.wieght=3`]);
    assert.deepEqual(bad.warnings, [`-F "tunnel://127.0.0.1:443?tunnel.id=${ID}&tunnel.wieght=3": unknown option "tunnel.wieght" (did you mean tunnel.weight?); ignored`]);
  });

  test("gost's own keys that burrow does not implement warn, not fail", () => {
    const { warnings, error } = checkCli([`tunnel://:8443?entrypoint.compression=true&observePeriod=5s`]);
    assert.equal(error, undefined);
    assert.equal(warnings.length, 2);
    assert.ok(warnings.every((w) => /is a gost option burrow does not implement \(ignored\)$/.test(w)));
  });

  test('in YAML, a key counts only for the part whose metadata holds it, and the warning gives the path', () => {
    const { warnings } = checkYaml(
      'services:\n- name: s\n  addr: ":8443"\n  handler: {type: tunnel, metadata: {backlog: 9, entrypiont: ":80"}}\n  listener: {type: tcp, metadata: {backlog: 9}}\n',
    );
    assert.deepEqual(warnings, [
      'test.yaml: services[0].handler.metadata.backlog: unknown option "backlog"; ignored',
      'test.yaml: services[0].handler.metadata.entrypiont: unknown option "entrypiont" (did you mean entrypoint?); ignored',
    ]);
  });

  test('out-of-range values are config errors naming the flag, the path of the option and the range', () => {
    for (const w of ['256', '1000', 'abc', '-5']) {
      const { error } = checkCli(['rtcp://:0/127.0.0.1:80'], [`tunnel://127.0.0.1:1?tunnel.id=${ID}&tunnel.weight=${w}`]);
      assert.equal(error?.source, `-F "tunnel://127.0.0.1:1?tunnel.id=${ID}&tunnel.weight=${w}"`);
      assert.equal(error?.path, 'chains[0].hops[0].nodes[0].connector.metadata.tunnel.weight');
      assert.match(error!.message, new RegExp(`expected an integer from 0 to 255, found '${w}'$`));
    }
    const y = checkYaml('services:\n- name: s\n  addr: ":8443"\n  handler: {type: tunnel, metadata: {tunnel.maxStreams: -1}}\n  listener: {type: tcp}\n');
    assert.equal(y.error?.message, 'test.yaml: services[0].handler.metadata.tunnel.maxStreams: expected an integer of at least 0, found -1');
  });

  test('malformed tunnel= rules warn, naming the rule; well-formed ones stay', () => {
    const r = parseTunnelRules(`.example.com=${ID}, ${ID},a.com:${ID},b.com:,:${ID},,c.com:$${ID}`);
    assert.deepEqual(r.rules, [
      { hostname: 'a.com', endpoint: ID },
      { hostname: 'c.com', endpoint: `$${ID}` },
    ]);
    assert.deepEqual(r.malformed.map((m) => m.rule), [`.example.com=${ID}`, ID, 'b.com:', `:${ID}`]);
    assert.match(r.malformed[0]!.reason, /with ":" not "="/);
    assert.match(r.malformed[1]!.reason, /a tunnel ID needs a host/);

    const { warnings, error } = checkCli([`tunnel://:8443?tunnel=.example.com=${ID}`]);
    assert.equal(error, undefined);
    assert.deepEqual(warnings, [`-L "tunnel://:8443?tunnel=.example.com=${ID}": tunnel rule ".example.com=${ID}" ignored: expected host:tunnel-id (a rule is host:tunnel-id, with ":" not "=")`]);
  });
});
