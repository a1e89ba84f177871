import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGostUrl, type GostUrl } from '../../../src/cli/url';
import { parseArgs } from '../../../src/cli/args';
import { ConfigError } from '../../../src/core/errors';
import { argvOf, DOC_COMMANDS } from './doc-commands';

type Expect = Partial<Omit<GostUrl, 'query'>> & { query?: Record<string, string> };

const CASES: Array<{ name: string; flag: '-L' | '-F'; input: string; expect: Expect }> = [
  {
    name: 'one-part scheme is used for both parts',
    flag: '-L',
    input: 'tunnel://:8443',
    expect: { scheme: 'tunnel', first: 'tunnel', second: 'tunnel', twoPart: false, host: ':8443', path: '', query: {} },
  },
  {
    name: 'handler+listener',
    flag: '-L',
    input: 'tunnel+ws://:8443',
    expect: { first: 'tunnel', second: 'ws', twoPart: true, host: ':8443' },
  },
  {
    name: 'port 0 and forward targets',
    flag: '-L',
    input: 'rtcp://:0/192.168.1.1:80',
    expect: { host: ':0', path: '/192.168.1.1:80' },
  },
  {
    name: 'a rtcp name instead of host:port',
    flag: '-L',
    input: 'rtcp://hello/192.168.1.1:80',
    expect: { host: 'hello', path: '/192.168.1.1:80' },
  },
  {
    name: 'a value starting with ":" gets auto://',
    flag: '-L',
    input: ':8080/10.0.0.1:80',
    expect: { scheme: 'auto', first: 'auto', host: ':8080', path: '/10.0.0.1:80' },
  },
  {
    name: 'a value without :// gets auto://',
    flag: '-F',
    input: 'example.com:8080',
    expect: { scheme: 'auto', host: 'example.com:8080' },
  },
  {
    name: 'https means http+tls',
    flag: '-F',
    input: 'https://example.com:443',
    expect: { scheme: 'http+tls', first: 'http', second: 'tls', twoPart: true },
  },
  {
    name: 'scheme is case-insensitive',
    flag: '-F',
    input: 'Tunnel+WSS://h:443',
    expect: { scheme: 'tunnel+wss', first: 'tunnel', second: 'wss' },
  },
  {
    name: '$ and : and , stay in query values',
    flag: '-L',
    input: 'tunnel://:8443?tunnel=ssh.srv-2.local:$7b3e4d21-b74c-4916-86c1-d9fa36ea677b,a.b:$x',
    expect: { query: { tunnel: 'ssh.srv-2.local:$7b3e4d21-b74c-4916-86c1-d9fa36ea677b,a.b:$x' } },
  },
  {
    name: 'query values are decoded; + is a space; first value of a key wins',
    flag: '-L',
    input: 'tcp://:80?a=1%2C2&b=x+y&a=3&flag',
    expect: { query: { a: '1,2', b: 'x y', flag: '' } },
  },
  {
    name: 'the fragment is dropped',
    flag: '-L',
    input: 'tcp://:80/t:1?a=1#frag?b=2',
    expect: { path: '/t:1', query: { a: '1' } },
  },
  {
    name: 'userinfo is decoded and split at the last @',
    flag: '-F',
    input: 'tunnel://us%40er:p@ss:w@h:1',
    expect: { user: { username: 'us@er', password: 'p@ss:w' }, host: 'h:1' },
  },
  {
    name: 'user without password',
    flag: '-L',
    input: 'tunnel://admin@:8443',
    expect: { user: { username: 'admin' }, host: ':8443' },
  },
  {
    name: 'bracketed IPv6',
    flag: '-L',
    input: 'tcp://[::1]:8080/[fe80::1]:22',
    expect: { host: '[::1]:8080', path: '/[fe80::1]:22' },
  },
  {
    name: 'empty host',
    flag: '-L',
    input: 'tunnel://?tunnel.direct=true',
    expect: { host: '', query: { 'tunnel.direct': 'true' } },
  },
  {
    name: 'several node addresses',
    flag: '-F',
    input: 'tunnel://a:1,b:2?tunnel.id=x',
    expect: { host: 'a:1,b:2', query: { 'tunnel.id': 'x' } },
  },
  {
    name: 'a port range',
    flag: '-L',
    input: 'tcp://:8000-8002/a:1,b:2',
    expect: { host: ':8000-8002', path: '/a:1,b:2' },
  },
  {
    name: 'surrounding white space is trimmed',
    flag: '-L',
    input: '  tunnel://:8443  ',
    expect: { host: ':8443' },
  },
];

describe('parseGostUrl', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const u = parseGostUrl(c.input, c.flag);
      const { query, ...rest } = c.expect;
      for (const [k, v] of Object.entries(rest)) assert.deepEqual(u[k as keyof GostUrl], v, `${k} of ${c.input}`);
      if (query) assert.deepEqual(Object.fromEntries(u.query), query);
    });
  }

  const BAD: Array<{ input: string; flag: '-L' | '-F'; message: RegExp }> = [
    { input: '', flag: '-L', message: /-L "": empty value/ },
    { input: '   ', flag: '-F', message: /empty value/ },
    { input: '1tcp://:80', flag: '-L', message: /bad scheme "1tcp"/ },
    { input: 'a+b+c://:80', flag: '-L', message: /more than two parts \(expected handler\+listener\)/ },
    { input: 'tunnel+://:80', flag: '-F', message: /empty part/ },
    { input: 'tcp://:80?a=%zz', flag: '-L', message: /bad escape "%zz"/ },
    { input: 'tcp://:80?a=1;b=2', flag: '-L', message: /";" in query parameter/ },
    { input: 'tcp://:80/%g1', flag: '-L', message: /bad escape "%g1" in path/ },
    { input: 'tcp://a b:80', flag: '-L', message: /bad character in host/ },
    { input: 'tcp://:80\u0000', flag: '-L', message: /control character/ },
  ];
  for (const b of BAD) {
    it(`refuses ${JSON.stringify(b.input)}`, () => {
      assert.throws(() => parseGostUrl(b.input, b.flag), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, b.message);
        assert.equal(err.source?.startsWith(b.flag), true);
        return true;
      });
    });
  }
});

describe('spec/config.md §5 command lines split into URLs', () => {
  for (const { id, command } of DOC_COMMANDS) {
    it(`${id}: every -L and -F value splits`, () => {
      const args = parseArgs(argvOf(command));
      assert.ok(args.listen.length + args.forward.length > 0);
      for (const v of args.listen) {
        const u = parseGostUrl(v, '-L');
        assert.notEqual(u.host, '', `${id}: ${v}`);
      }
      for (const v of args.forward) {
        const u = parseGostUrl(v, '-F');
        assert.equal(u.first, 'tunnel', `${id}: ${v}`);
        const id_ = Object.fromEntries(u.query)['tunnel.id'];
        if (id_ !== undefined) assert.match(id_, /^[0-9a-f-]{36}$/);
      }
    });
  }

  it('S1 keeps the inline rules intact', () => {
    const args = parseArgs(argvOf(DOC_COMMANDS.find((c) => c.id === 'S1')!.command));
    const u = parseGostUrl(args.listen[0]!, '-L');
    assert.deepEqual(Object.fromEntries(u.query), {
      entrypoint: ':80',
      tunnel: '.example.com:4d21094e-b74c-4916-86c1-d9fa36ea677b,example.org:ac74d9dd-3125-442a-a7c1-f9e49e05faca',
    });
  });
});
