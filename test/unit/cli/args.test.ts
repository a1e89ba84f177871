import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HELP_TEXT, parseArgs, type CliArgs } from '../../../src/cli/args';
import { ConfigError } from '../../../src/core/errors';

const BASE: CliArgs = { listen: [], forward: [], configs: [], version: false, help: false };

const CASES: Array<{ argv: string[]; expect: Partial<CliArgs> }> = [
  { argv: [], expect: {} },
  { argv: ['-L', 'tunnel://:8443'], expect: { listen: ['tunnel://:8443'] } },
  { argv: ['-L=tunnel://:8443?a=b=c'], expect: { listen: ['tunnel://:8443?a=b=c'] } },
  { argv: ['--L', 'tunnel://:8443'], expect: { listen: ['tunnel://:8443'] } },
  { argv: ['--L=x://y'], expect: { listen: ['x://y'] } },
  {
    argv: ['-L', 'rtcp://:0/a:1', '-F', 'tunnel://h:1', '-L', 'rudp://:0/a:1', '-F=tunnel+ws://h:2'],
    expect: { listen: ['rtcp://:0/a:1', 'rudp://:0/a:1'], forward: ['tunnel://h:1', 'tunnel+ws://h:2'] },
  },
  { argv: ['-C', 'a.yaml', '-C', '-', '-C', '{"services":[]}'], expect: { configs: ['a.yaml', '-', '{"services":[]}'] } },
  { argv: ['-D'], expect: { logLevel: 'debug' } },
  { argv: ['-DD'], expect: { logLevel: 'trace' } },
  { argv: ['-D', '-DD'], expect: { logLevel: 'trace' } },
  { argv: ['-D=false'], expect: {} },
  { argv: ['-V'], expect: { version: true } },
  { argv: ['--V=true'], expect: { version: true } },
  { argv: ['-O', 'yaml'], expect: { output: 'yaml' } },
  { argv: ['-O=json', '-O', 'yaml'], expect: { output: 'yaml' } },
  { argv: ['-api', 'admin:pw@:18080?pathPrefix=/api'], expect: { api: 'admin:pw@:18080?pathPrefix=/api' } },
  { argv: ['--metrics=:9000'], expect: { metrics: ':9000' } },
  { argv: ['-R', '1m30s'], expect: { reload: '1m30s' } },
  { argv: ['-h'], expect: { help: true } },
  { argv: ['--help'], expect: { help: true } },
  { argv: ['-help'], expect: { help: true } },
  { argv: ['-L', '-weird-but-a-value'], expect: { listen: ['-weird-but-a-value'] } },
];

describe('parseArgs', () => {
  for (const c of CASES) {
    it(JSON.stringify(c.argv), () => {
      assert.deepEqual(parseArgs(c.argv), { ...BASE, ...c.expect });
    });
  }

  const BAD: Array<{ argv: string[]; message: RegExp }> = [
    { argv: ['-X'], message: /^command line: flag provided but not defined: -X \(see burrow --help\)$/ },
    { argv: ['--listen', 'x'], message: /flag provided but not defined: -listen/ },
    { argv: ['-l', 'x'], message: /flag provided but not defined: -l/ },
    { argv: ['-L'], message: /flag needs an argument: -L/ },
    { argv: ['-L', '-F', 'tunnel://h:1'], message: /flag needs an argument: -L/ },
    { argv: ['-L='], message: /empty value for -L/ },
    { argv: ['-O', 'xml'], message: /invalid value "xml" for -O \(expected yaml or json\)/ },
    { argv: ['-O'], message: /flag needs an argument: -O/ },
    { argv: ['-R', 'soon'], message: /invalid value "soon" for -R/ },
    { argv: ['-V=maybe'], message: /invalid boolean value "maybe" for -V/ },
    { argv: ['tunnel://:8443'], message: /unexpected argument "tunnel:\/\/:8443"/ },
    { argv: ['---L', 'x'], message: /bad flag syntax: ---L/ },
    { argv: ['-L', 'a://b', '--', '-L', 'c://d'], message: /"--" .* not supported/ },
  ];
  for (const b of BAD) {
    it(`refuses ${JSON.stringify(b.argv)}`, () => {
      assert.throws(() => parseArgs(b.argv), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, b.message);
        return true;
      });
    });
  }

  it('HELP_TEXT names every flag, the URL syntax and server/client/visitor examples', () => {
    for (const flag of ['-L', '-F', '-C', '-D', '-DD', '-V', '-O', '-api', '-metrics', '-R', '--help']) {
      assert.match(HELP_TEXT, new RegExp(`^ {2}(-h, )?${flag} `, 'm'), flag);
    }
    assert.match(HELP_TEXT, /\[handler\[\+listener\]:\/\/\]/);
    assert.match(HELP_TEXT, /\[connector\[\+dialer\]:\/\/\]/);
    assert.match(HELP_TEXT, /burrow -L "tunnel:\/\/:8443\?entrypoint=:80/);
    assert.match(HELP_TEXT, /burrow -L rtcp:\/\/:0\/192\.168\.1\.1:80 -F/);
    assert.match(HELP_TEXT, /burrow -L tcp:\/\/:2222\/ssh\.srv-2\.local -F/);
    assert.doesNotMatch(HELP_TEXT, /\bgost -/);
  });

  it('every example command in HELP_TEXT parses and builds', async () => {
    const { buildConfigFromCli } = await import('../../../src/cli/build');
    const { shellWords } = await import('./doc-commands');
    const lines = HELP_TEXT.split('\n').filter((l) => /^\s+burrow -/.test(l));
    assert.ok(lines.length >= 7);
    for (const line of lines) {
      const words = shellWords(line.replace(/#.*$/, '').trim()).slice(1);
      const args = parseArgs(words);
      assert.doesNotThrow(() => buildConfigFromCli(args.listen, args.forward), line);
    }
  });
});
