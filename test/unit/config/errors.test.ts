import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseArgs } from '../../../src/cli/args';
import { loadConfig } from '../../../src/cli/load';
import { ConfigError } from '../../../src/core/errors';

type Input =
  | { args: string[] }
  | { listen?: string[]; forward?: string[] }
  | { file: string; text: string }
  | { sources: string[] };

interface Case {
  name: string;
  input: Input;
  /** Fragments the message must contain (source, path, what was found, what was expected). */
  message: Array<string | RegExp>;
  /** Expected err.source; "$file" stands for the temporary file of the case. */
  source?: string;
  /** Expected err.path. */
  path?: string;
}

const TUNNEL_ID = 'ac74d9dd-3125-442a-a7c1-f9e49e05faca';
const CHAIN = [
  'chains:',
  '- name: chain-0',
  '  hops:',
  '  - name: hop-0',
  '    nodes:',
  '    - name: node-0',
  '      addr: ":8443"',
  '      connector:',
  '        type: tunnel',
];
const SERVICE = ['services:', '- name: s', '  addr: ":8000"', '  handler:', '    type: tcp'];

const CASES: Case[] = [
  // --- command line -----------------------------------------------------------------------
  { name: 'unknown flag', input: { args: ['-X'] }, source: 'command line', message: ['flag provided but not defined: -X'] },
  { name: '-O with a bad value', input: { args: ['-O', 'toml'] }, message: ['invalid value "toml" for -O', 'expected yaml or json'] },
  { name: '-L without a value', input: { args: ['-L'] }, message: ['flag needs an argument: -L'] },
  { name: '-R with a bad duration', input: { args: ['-R', '10 seconds'] }, message: ['for -R', 'expected a duration'] },
  {
    name: 'bad port',
    input: { listen: ['tcp://:80x/10.0.0.1:80'] },
    source: '-L "tcp://:80x/10.0.0.1:80"',
    message: ['bad port "80x" in address ":80x"', 'expected a number 0-65535'],
  },
  { name: 'port 70000', input: { listen: ['tunnel://:70000'] }, message: ['-L "tunnel://:70000"', 'port 70000 out of range', 'expected 0-65535'] },
  { name: 'port 70000 in a target', input: { listen: ['tcp://:80/h:70000'] }, message: ['forward target: port 70000 out of range'] },
  {
    name: 'unknown scheme',
    input: { listen: ['tunnle://:8443'] },
    message: ['-L "tunnle://:8443"', 'unknown handler "tunnle"', 'burrow handlers: tunnel, tcp, udp, rtcp, rudp, forward'],
  },
  { name: 'unknown listener', input: { listen: ['tunnel+wws://:8443'] }, message: ['unknown listener "wws"', 'burrow listeners: tcp, udp, rtcp'] },
  { name: 'gost-only handler', input: { listen: ['socks5://:1080'] }, message: ['handler "socks5" is not supported by burrow', 'supported handlers: tunnel'] },
  { name: 'gost-only dialer', input: { forward: ['tunnel+kcp://h:8443'] }, message: ['-F "tunnel+kcp://h:8443"', 'dialer "kcp" is not supported by burrow'] },
  {
    name: 'a -F value without a connector',
    input: { forward: ['wss://h:443'] },
    message: ['connector "http"', "gost's default when the scheme \"wss\" names no connector", 'not supported by burrow', 'did you mean tunnel+wss://'],
  },
  { name: 'no handler and no targets (auto)', input: { listen: [':8080'] }, message: ['no handler in scheme "auto"', '"auto" proxy handler', 'use one of: tunnel'] },
  { name: '-F without a port', input: { forward: ['tunnel+wss://tunnel.gost.plus'] }, message: ['address "tunnel.gost.plus" has no port', 'expected host:port'] },
  { name: 'bad base64 auth', input: { listen: ['tunnel://:8443?auth=%%%'] }, message: ['bad escape'] },
  { name: 'auth that is not base64', input: { forward: ['tunnel://h:1?auth=a*b'] }, message: ['auth: "a*b" is not base64', 'expected base64 of "user:pass"'] },
  {
    name: 'bad tunnel.id text in connector metadata',
    input: { forward: ['tunnel://:8443?tunnel.id=not-a-uuid'] },
    source: '-F "tunnel://:8443?tunnel.id=not-a-uuid"',
    path: 'chains[0].hops[0].nodes[0].connector.metadata.tunnel.id',
    message: ['invalid tunnel ID "not-a-uuid"', 'expected a UUID'],
  },
  {
    name: '$ in connector tunnel.id',
    input: { forward: [`tunnel://:8443?tunnel.id=$${TUNNEL_ID}`] },
    path: 'chains[0].hops[0].nodes[0].connector.metadata.tunnel.id',
    message: [`invalid tunnel ID "$${TUNNEL_ID}"`, 'the "$" private-tunnel marker belongs in ingress rules'],
  },
  {
    name: 'the nil UUID as tunnel ID',
    input: { forward: ['tunnel://:8443?tunnelID=00000000-0000-0000-0000-000000000000'] },
    path: 'chains[0].hops[0].nodes[0].connector.metadata.tunnelID',
    message: ['the nil UUID is not a tunnel ID'],
  },
  // --- files --------------------------------------------------------------------------------
  {
    name: 'duplicate service name',
    input: { file: 'dup.yaml', text: [...SERVICE, '- name: s', '  addr: ":8001"', '  handler: {type: tcp}'].join('\n') },
    source: '$file',
    path: 'services[1].name',
    message: ["duplicate service name 's'", 'also defined at $file: services[0]'],
  },
  {
    name: 'duplicate chain name across a file and -F',
    input: { file: 'chain.yaml', text: CHAIN.join('\n') },
    message: ["duplicate chain name 'chain-0'"],
  },
  {
    name: 'wrong type (handler.type: 5)',
    input: { file: 'type.yaml', text: ['services:', '- name: s', '  addr: ":1"', '  handler:', '    type: 5'].join('\n') },
    source: '$file',
    path: 'services[0].handler.type',
    message: ['$file: services[0].handler.type: expected a string, found number 5 (line 5)'],
  },
  {
    name: 'wrong type (services is a mapping)',
    input: { file: 'map.yaml', text: 'services:\n  name: s\n' },
    path: 'services',
    message: ['expected a list, found a mapping (line 1)'],
  },
  {
    name: 'wrong type (maxFails: abc), all problems listed',
    input: {
      file: 'int.yaml',
      text: [...SERVICE, '  forwarder:', '    nodes: [{name: t, addr: "a:1"}]', '    selector: {maxFails: abc, failTimeout: 10 parsecs}'].join('\n'),
    },
    path: 'services[0].forwarder.selector.maxFails',
    message: ['expected an integer, found string "abc"', 'services[0].forwarder.selector.failTimeout (line 8): expected a duration such as "10s"'],
  },
  {
    name: 'YAML syntax error',
    input: { file: 'syntax.yaml', text: 'services:\n- name: [s\n  addr: ":1"\n' },
    source: '$file',
    message: ['$file: YAML syntax error at line ', /column \d+: .*/],
  },
  { name: 'empty file', input: { file: 'empty.yaml', text: '  \n\n' }, source: '$file', message: ['the config is empty'] },
  { name: 'file with only comments', input: { file: 'comments.yaml', text: '# nothing\n' }, message: ['the config is empty (it holds only comments or null)'] },
  {
    name: 'missing file',
    input: { sources: ['/nonexistent/burrow.yaml'] },
    source: '/nonexistent/burrow.yaml',
    message: ['/nonexistent/burrow.yaml: cannot read config file: no such file'],
  },
  {
    name: 'chain reference to an unknown chain',
    input: { file: 'ref.yaml', text: [...SERVICE, '    chain: chain-9', ...CHAIN].join('\n') },
    path: 'services[0].handler.chain',
    message: ["chain 'chain-9' is not defined (defined: chain-0)"],
  },
  {
    name: 'auther reference to an unknown auther',
    input: { file: 'auther.yaml', text: [...SERVICE, '    auther: admins'].join('\n') },
    path: 'services[0].handler.auther',
    message: ["auther 'admins' is not defined (none are defined)"],
  },
  {
    name: 'bad tunnel.id in a file',
    input: { file: 'id.yaml', text: [...CHAIN, '        metadata:', '          tunnel.id: 4d21094e-b74c'].join('\n') },
    source: '$file',
    path: 'chains[0].hops[0].nodes[0].connector.metadata.tunnel.id',
    message: ['invalid tunnel ID "4d21094e-b74c"'],
  },
  {
    name: 'duplicate YAML key',
    input: { file: 'dupkey.yaml', text: ['services:', '- name: s', '  addr: ":1"', '  handler: {type: tcp}', '  addr: ":2"'].join('\n') },
    source: '$file',
    message: ["$file: duplicate key 'addr' at line 5 (first defined at line 3)"],
  },
  {
    name: 'duplicate key differing in case',
    input: { file: 'case.yaml', text: ['services: []', 'Services: []'].join('\n') },
    message: ["duplicate key 'services' at line 2", '"services" (line 1) and "Services" are the same key'],
  },
  {
    name: 'JSON syntax error',
    input: { file: 'bad.json', text: '{\n  "services": [\n    {"name": "s",}\n  ]\n}\n' },
    source: '$file',
    message: ['$file: JSON syntax error at line 3, column '],
  },
  { name: 'duplicate JSON key', input: { file: 'dup.json', text: '{"services": [],\n "services": []}' }, message: ["duplicate key 'services' at line 2"] },
  { name: 'inline JSON syntax error', input: { sources: ['{"services": ['] }, source: 'inline JSON (-C)', message: ['JSON syntax error at line 1'] },
  { name: 'a list at the top level', input: { file: 'list.yaml', text: '- a\n- b\n' }, message: ['expected a mapping at the top level', 'found a list'] },
  {
    name: 'missing handler type',
    input: { file: 'nohandler.yaml', text: 'services:\n- name: s\n  addr: ":1"\n' },
    path: 'services[0].handler.type',
    message: ['missing handler type', 'set handler.type to one of: tunnel, tcp'],
  },
  {
    name: 'missing connector type',
    input: { file: 'noconn.yaml', text: CHAIN.slice(0, 7).join('\n') },
    path: 'chains[0].hops[0].nodes[0].connector.type',
    message: ['missing connector type', 'gost would use "http"', 'one of: tunnel'],
  },
  {
    name: 'unknown listener type in a file',
    input: { file: 'ln.yaml', text: [...SERVICE, '  listener: {type: tcpp}'].join('\n') },
    path: 'services[0].listener.type',
    message: ["unknown listener type 'tcpp'", 'burrow supports: tcp, udp'],
  },
  {
    name: 'gost-only handler in a file',
    input: { file: 'socks.yaml', text: 'services: [{name: s, addr: ":1080", handler: {type: socks5}}]' },
    path: 'services[0].handler.type',
    message: ["handler type 'socks5' is not supported by burrow"],
  },
  {
    name: 'service address without a port',
    input: { file: 'noport.yaml', text: 'services: [{name: s, addr: "localhost", handler: {type: tunnel}}]' },
    path: 'services[0].addr',
    message: ['address "localhost" has no port'],
  },
  {
    name: 'port 70000 in a file',
    input: { file: 'port.yaml', text: 'services: [{name: s, addr: ":70000", handler: {type: tunnel}}]' },
    path: 'services[0].addr',
    message: ['port 70000 out of range'],
  },
  {
    name: 'ingress redis source with an unknown key type',
    input: { file: 'redis-type.yaml', text: ['ingresses:', '- name: i', '  redis: {addr: "127.0.0.1:6379", type: list}'].join('\n') },
    source: '$file',
    path: 'ingresses[0].redis.type',
    message: ["expected hash or set, found 'list'"],
  },
  {
    name: 'ingress redis source with a bad port',
    input: { file: 'redis-addr.yaml', text: ['ingresses:', '- name: i', '  redis: {addr: "127.0.0.1:99999"}'].join('\n') },
    source: '$file',
    path: 'ingresses[0].redis.addr',
    message: ['expected a Redis address host:port', 'port 99999 out of range'],
  },
  {
    name: 'auther http source that is not an http URL',
    input: { file: 'auther-http.yaml', text: ['authers:', '- name: a', '  http: {url: "ftp://127.0.0.1/users"}'].join('\n') },
    source: '$file',
    path: 'authers[0].http.url',
    message: ["expected an http:// or https:// URL, found 'ftp://127.0.0.1/users'"],
  },
  {
    name: 'tunnel.publicStore that is not a Redis URL',
    input: { listen: ['tunnel://:8443?tunnel.publicDomain=example.net&tunnel.publicStore=http://u:secret@127.0.0.1:6379'] },
    path: 'services[0].handler.metadata.tunnel.publicStore',
    message: ['expected a Redis URL redis://[[user]:password@]host:port[/db] (or rediss://)', "found 'http://u:***@127.0.0.1:6379'"],
  },
  {
    name: 'forwarder node matcher rule with an unknown matcher',
    input: {
      file: 'matcher.yaml',
      text: ['services:', '- name: s', '  addr: ":0"', '  handler: {type: rtcp}', '  listener: {type: rtcp}', '  forwarder:', '    nodes:', '    - name: n', '      addr: 127.0.0.1:80', '      matcher: {rule: "Hots(`a.com`)"}'].join('\n'),
    },
    source: '$file',
    path: 'services[0].forwarder.nodes[0].matcher.rule',
    message: ['unknown matcher Hots (burrow knows Host, HostRegexp', 'in "Hots(`a.com`)"'],
  },
];

describe('bad input: every error names source, path and what was expected', () => {
  const dir = mkdtempSync(join(tmpdir(), 'burrow-errors-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('has at least 20 cases', () => assert.ok(CASES.length >= 20));

  for (const c of CASES) {
    it(c.name, async () => {
      let file = '';
      const run = async (): Promise<unknown> => {
        const input = c.input;
        if ('args' in input) return parseArgs(input.args);
        if ('sources' in input) return loadConfig(input.sources, { listen: [], forward: [] }, { searchPaths: [], env: {} });
        if ('file' in input) {
          file = join(dir, input.file);
          writeFileSync(file, input.text);
          const forward = c.name.includes('-F') ? ['tunnel://:8443'] : [];
          return loadConfig([file], { listen: [], forward }, { searchPaths: [], env: {} });
        }
        return loadConfig([], { listen: input.listen ?? [], forward: input.forward ?? [] }, { searchPaths: [], env: {} });
      };
      await assert.rejects(run(), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
        for (const fragment of c.message) {
          if (typeof fragment === 'string') assert.ok(err.message.includes(fragment.replaceAll('$file', file)), `"${fragment}" not in:\n${err.message}`);
          else assert.match(err.message, fragment);
        }
        if (c.source !== undefined) assert.equal(err.source, c.source === '$file' ? file : c.source);
        if (c.path !== undefined) assert.equal(err.path, c.path);
        return true;
      });
    });
  }
});
