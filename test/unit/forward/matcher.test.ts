import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRule, RuleError, type MatchInput } from '../../../src/forward/matcher';
import { Forwarder } from '../../../src/forward/selector';

const req = (o: Partial<MatchInput>): MatchInput => ({ proto: 'http', method: 'GET', url: '/', headers: {}, clientIP: '10.1.2.3:5555', ...o });

describe('matcher rules (gost reverse-proxy docs)', () => {
  test('Host: exact, "*." and "." wildcards (apex included), port and case ignored; several hosts', () => {
    const r = parseRule('Host(`www.example.com`) || Host(`*.example.org`)');
    assert.ok(r(req({ host: 'WWW.example.com:443' })));
    assert.ok(r(req({ host: 'a.b.example.org' })));
    assert.ok(r(req({ host: 'example.org' })));
    assert.ok(!r(req({ host: 'example.com' })));
    assert.ok(!r(req({ host: undefined })));
    assert.ok(parseRule('Host(`a.com`, `b.com`)')(req({ host: 'b.com' })));
  });

  test('HostRegexp, Method, Path, PathPrefix, PathRegexp', () => {
    assert.ok(parseRule('HostRegexp(`^.+\\.example\\.com$`)')(req({ host: 'x.example.com' })));
    assert.ok(!parseRule('HostRegexp(`^.+\\.example\\.com$`)')(req({ host: 'example.com' })));
    assert.ok(parseRule('Method(`post`)')(req({ method: 'POST' })));
    assert.ok(parseRule('Path(`/products/1234`)')(req({ url: '/products/1234?x=1' })));
    assert.ok(!parseRule('Path(`/products`)')(req({ url: '/products/1234' })));
    assert.ok(parseRule('PathPrefix(`/products`)')(req({ url: '/products/1234' })));
    assert.ok(parseRule('PathRegexp(`\\.(jpeg|jpg|png)$`)')(req({ url: '/a/b.png?v=2' })));
  });

  test('Query, QueryRegexp, Header, HeaderRegexp', () => {
    assert.ok(parseRule('Query(`foo`)')(req({ url: '/?foo=1' })));
    assert.ok(parseRule('Query(`foo`, `bar`)')(req({ url: '/?foo=x&foo=bar' })));
    assert.ok(!parseRule('Query(`foo`, `bar`)')(req({ url: '/?foo=baz' })));
    assert.ok(parseRule('QueryRegexp(`foo`, `^b.r$`)')(req({ url: '/?foo=bar' })));
    assert.ok(parseRule('Header(`Content-Type`)')(req({ headers: { 'content-type': 'text/plain' } })));
    assert.ok(parseRule('Header(`Content-Type`, `application/json`)')(req({ headers: { 'content-type': 'application/json' } })));
    assert.ok(parseRule('HeaderRegexp(`Content-Type`, `^application/(json|yaml)$`)')(req({ headers: { 'content-type': 'application/yaml' } })));
    assert.ok(!parseRule('Header(`X-Missing`)')(req({})));
  });

  test('ClientIP (IPv4, IPv6, CIDR, IPv4-mapped) and Proto', () => {
    assert.ok(parseRule('ClientIP(`10.1.0.0/16`)')(req({ clientIP: '10.1.2.3:5555' })));
    assert.ok(!parseRule('ClientIP(`10.2.0.0/16`)')(req({ clientIP: '10.1.2.3:5555' })));
    assert.ok(parseRule('ClientIP(`192.168.0.1`)')(req({ clientIP: '::ffff:192.168.0.1' })));
    assert.ok(parseRule('ClientIP(`fe80::/10`)')(req({ clientIP: '[fe80::1]:80' })));
    assert.ok(!parseRule('ClientIP(`fe80::/10`)')(req({ clientIP: '[2001:db8::1]:80' })));
    assert.ok(parseRule('Proto(`tls`)')({ host: 'a.com', proto: 'tls' }));
    assert.ok(!parseRule('Proto(`http`)')({ host: 'a.com', proto: 'tls' }));
  });

  test('operators: && binds tighter than ||, ! and parentheses', () => {
    const r = parseRule('Host(`example.com`) || (Host(`example.org`) && !Path(`/path`))');
    assert.ok(r(req({ host: 'example.com', url: '/path' })));
    assert.ok(r(req({ host: 'example.org', url: '/other' })));
    assert.ok(!r(req({ host: 'example.org', url: '/path' })));
    const p = parseRule('Host(`a.com`) || Host(`b.com`) && Path(`/x`)');
    assert.ok(p(req({ host: 'a.com', url: '/y' })));
    assert.ok(!p(req({ host: 'b.com', url: '/y' })));
  });

  test('HTTP-only matchers do not match traffic that is not HTTP', () => {
    assert.ok(!parseRule('PathPrefix(`/`)')({ host: 'a.com', proto: 'tls' }));
    assert.ok(!parseRule('Method(`GET`)')({ host: 'a.com' }));
  });

  test('bad rules are RuleErrors that say what is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['Host(`a.com`', /expected "\)"/],
      ['Host(a.com)', /unexpected "\."|expected "str"/],
      ['Hots(`a.com`)', /unknown matcher Hots \(burrow knows Host, HostRegexp/],
      ['Host(`a.com`) &&', /unexpected end/],
      ['Host(`a.com`) Host(`b.com`)', /unexpected "Host/],
      ['PathRegexp(`(`)', /not a regular expression/],
      ['Query(`a`, `b`, `c`)', /Query takes 1 to 2 arguments, found 3/],
      ['ClientIP(`10.0.0.0/40`)', /bad prefix length/],
      ['Admission(`admission-0`)', /unknown matcher Admission/],
      ['Host(`unterminated)', /unterminated string/],
    ];
    for (const [src, re] of bad) {
      assert.throws(() => parseRule(src), (err: unknown) => err instanceof RuleError && re.test(err.message), src);
    }
  });
});

describe('forwarder selection with matcher rules', () => {
  const f = new Forwarder([
    { name: 'www', addr: '10.0.0.1:80', matcher: { rule: 'Host(`www.example.com`)' } },
    { name: 'wild', addr: '10.0.0.2:80', matcher: { rule: 'Host(`*.example.com`)' } },
    { name: 'api', addr: '10.0.0.3:80', matcher: { rule: 'Host(`*.example.com`) && PathPrefix(`/api`)', priority: 1 } },
    { name: 'filtered', addr: '10.0.0.4:80', filter: { host: 'example.net' } },
    { name: 'fallback', addr: '10.0.0.5:80' },
  ]);
  const sel = (host: string, url?: string): string | undefined => f.select(host, url ? { proto: 'http', url } : undefined)?.name;

  test('the longest matching rule wins by default; an explicit priority overrides the length', () => {
    assert.equal(sel('www.example.com'), 'www');
    assert.equal(sel('shop.example.com'), 'wild');
    // "api"'s rule is longer but its priority is 1: "wild" (length 21) comes first.
    assert.equal(sel('shop.example.com', '/api/x'), 'wild');
  });

  test('no rule matches: filter.host nodes, then nodes with neither rule nor filter (never a ruled node)', () => {
    assert.equal(sel('example.net'), 'filtered');
    for (let i = 0; i < 4; i++) assert.equal(sel('other.org'), 'fallback');
  });

  test('matcher takes precedence over filter on the same node', () => {
    const g = new Forwarder([
      { name: 'both', addr: '10.0.0.1:80', filter: { host: 'a.com' }, matcher: { rule: 'Host(`b.com`)' } },
      { name: 'rest', addr: '10.0.0.2:80' },
    ]);
    assert.equal(g.select('b.com')?.name, 'both');
    assert.equal(g.select('a.com')?.name, 'rest');
  });
});

describe('forwarder selection by filter.protocol and filter.path (gost reverse-proxy docs)', () => {
  const f = new Forwarder([
    { name: 'http-server', addr: '10.0.0.1:80', filter: { host: 'example.com', protocol: 'http' } },
    { name: 'https-server', addr: '10.0.0.1:443', filter: { host: 'example.com', protocol: 'tls' } },
    { name: 'ssh-server', addr: '10.0.0.1:22', filter: { protocol: 'ssh' } },
    { name: 'test-path', addr: '10.0.0.2:80', filter: { path: '/test' } },
    { name: 'rest', addr: '10.0.0.3:80' },
  ]);
  test('the sniffed protocol picks among nodes of one host; ssh has no host', () => {
    assert.equal(f.select('example.com:80', { proto: 'http', url: '/' })?.name, 'http-server');
    assert.equal(f.select('example.com:443', { proto: 'tls' })?.name, 'https-server');
    assert.equal(f.select(undefined, { proto: 'ssh' })?.name, 'ssh-server');
  });
  test('a path prefix picks for HTTP; nothing else fits: the unfiltered node', () => {
    assert.equal(f.select('other.org', { proto: 'http', url: '/test/a?x=1' })?.name, 'test-path');
    assert.equal(f.select('other.org', { proto: 'http', url: '/elsewhere' })?.name, 'rest');
    assert.equal(f.select('other.org', { proto: 'tls' })?.name, 'rest');
  });
  test('a stream with neither host nor sniffed protocol may go to any node (as before)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add(f.select()!.name);
    assert.ok(seen.size > 1);
  });
});
