import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Ingress, parseEndpoint, parseRuleText, parseTunnelShorthand } from '../../../src/ingress/ingress';
import { silentLogger } from '../../../src/observe/logger';
import { waitFor } from '../../helpers/net';

const A = '4d21094e-b74c-4916-86c1-d9fa36ea677b';
const B = 'ac74d9dd-3125-442a-a7c1-f9e49e05faca';
const C = 'aede1f6a-762b-45da-b937-b6632356555a';

describe('ingress lookup (behavior.md §1.2)', () => {
  const ing = new Ingress({
    name: 'test',
    rules: [
      { hostname: '.example.com', endpoint: A },
      { hostname: 'example.org', endpoint: B },
      { hostname: '*.svc.example.com', endpoint: C },
      { hostname: 'private.example.net', endpoint: `$${B}` },
      { hostname: 'broken.example.net', endpoint: 'not-a-uuid' },
    ],
    logger: silentLogger,
  });
  const table: Array<[string, string | undefined]> = [
    ['example.com', A],
    ['www.example.com:8080', A],
    ['a.b.example.com', A],
    ['x.svc.example.com', C],
    ['svc.example.com', C],
    ['example.org', B],
    ['www.example.org', undefined],
    ['EXAMPLE.ORG', B], // deliberate deviation: case-insensitive
    ['example.org.', B], // one trailing dot ignored
    ['badexample.com', undefined],
    ['', undefined],
    ['broken.example.net', undefined],
    ['[::1]:80', undefined],
  ];
  for (const [host, want] of table) {
    test(`${JSON.stringify(host)} → ${want ?? 'no route'}`, () => {
      assert.equal(ing.lookup(host)?.tunnelId, want);
    });
  }
  test('internationalised names match in punycode form, whatever the spelling', () => {
    const i = new Ingress({ name: 'idn', rules: [{ hostname: 'bücher.example.com', endpoint: `$${B}` }], logger: silentLogger });
    const want = { tunnelId: B, private: true };
    assert.deepEqual(i.lookup('xn--bcher-kva.example.com'), want);
    assert.deepEqual(i.lookup('BÜCHER.example.com:80'), want);
    // A Host header's raw UTF-8 bytes, as Node's HTTP parser hands them over (latin1).
    assert.deepEqual(i.lookup(Buffer.from('bücher.example.com', 'utf8').toString('latin1')), want);
  });
  test('a $ rule is private, its UUID lowercased', () => {
    assert.deepEqual(ing.lookup('private.example.net'), { tunnelId: B, private: true });
  });
  test('later rules with the same key win', () => {
    const i = new Ingress({ name: 'x', rules: [{ hostname: 'a.com', endpoint: A }, { hostname: 'a.com', endpoint: B }], logger: silentLogger });
    assert.equal(i.lookup('a.com')?.tunnelId, B);
  });
});

describe('ingress parsing', () => {
  test('endpoint forms', () => {
    assert.deepEqual(parseEndpoint(A.toUpperCase()), { tunnelId: A, private: false });
    assert.deepEqual(parseEndpoint(`$${A}`), { tunnelId: A, private: true });
    assert.deepEqual(parseEndpoint(A.replace(/-/g, '')), { tunnelId: A, private: false });
    assert.equal(parseEndpoint('00000000-0000-0000-0000-000000000000'), undefined);
    assert.equal(parseEndpoint('hello'), undefined);
  });
  test('rule file format: comments, blank and short lines skipped', () => {
    assert.deepEqual(parseRuleText(`# hostname endpoint\n\nexample.com  ${A}\nexample.org\t${B} # trailing\nlonely\n`), [
      { hostname: 'example.com', endpoint: A },
      { hostname: 'example.org', endpoint: B },
    ]);
  });
  test('tunnel= shorthand splits at the first colon and keeps $', () => {
    assert.deepEqual(parseTunnelShorthand(`.example.com:${A},ssh.local:$${B},junk`), [
      { hostname: '.example.com', endpoint: A },
      { hostname: 'ssh.local', endpoint: `$${B}` },
    ]);
  });
});

describe('ingress file source', () => {
  test('is loaded at start and reloaded when the file changes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'burrow-ingress-'));
    const file = join(dir, 'rules.txt');
    writeFileSync(file, `example.com ${A}\n`);
    const ing = new Ingress({ name: 'f', rules: [{ hostname: 'inline.com', endpoint: C }], filePath: file, logger: silentLogger });
    after(() => ing.close());
    await ing.start();
    assert.equal(ing.lookup('example.com')?.tunnelId, A);
    assert.equal(ing.lookup('inline.com')?.tunnelId, C);
    writeFileSync(file, `example.com ${B}\nnew.com ${A}\n`);
    await waitFor(() => ing.lookup('new.com')?.tunnelId === A, 5000, 'reload');
    assert.equal(ing.lookup('example.com')?.tunnelId, B);
    assert.equal(ing.lookup('inline.com')?.tunnelId, C);
  });
});
