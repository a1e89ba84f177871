/**
 * Property tests for the config front-ends: whatever a user types on the command line or puts
 * in a file, the only thing that may come out besides a config is a ConfigError.
 * Time-boxed by FUZZ_SECONDS (default 4 s for the whole file).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseArgs } from '../../src/cli/args';
import { buildConfigFromCli } from '../../src/cli/build';
import { parseGostUrl } from '../../src/cli/url';
import { parseConfigText } from '../../src/config/load';
import { renderConfig } from '../../src/config/output';
import { verifyConfig } from '../../src/config/verify';
import { ConfigError } from '../../src/core/errors';

const PROPERTIES = 6;
const budgetMs = Math.max(200, (Number(process.env.FUZZ_SECONDS ?? '4') * 1000) / PROPERTIES);
const params = { interruptAfterTimeLimit: budgetMs, numRuns: 1_000_000, markInterruptAsFailure: false };

/** Runs `fn`; any exception other than ConfigError fails the property. */
function onlyConfigError(fn: () => unknown): boolean {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return true;
    throw err;
  }
  return true;
}

const SCHEMES = ['tunnel', 'tcp', 'udp', 'rtcp', 'rudp', 'forward', 'ws', 'wss', 'tls', 'auto', 'socks5', 'kcp', 'file', 'x', 'TUNNEL', 'https', ''];
const piece = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(':', '::', '[', ']', '@', '/', '?', '&', '=', '%', '%2', '%zz', '+', '$', ',', '#', '-', ':0', ':8443', ':8000-8002', '[::1]', 'a:b:c'),
);
/** Strings shaped like gost URLs, glued from risky fragments. */
const urlish = fc
  .tuple(fc.constantFrom(...SCHEMES), fc.constantFrom(...SCHEMES), fc.boolean(), fc.array(piece, { maxLength: 10 }))
  .map(([a, b, two, rest]) => `${a}${two ? `+${b}` : ''}://${rest.join('')}`);
const anyUrl = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 40 }), urlish);

const KEYS = ['services', 'chains', 'hops', 'name', 'addr', 'handler', 'listener', 'type', 'chain', 'metadata', 'forwarder', 'nodes', 'connector', 'dialer', 'tls', 'auth', 'selector', 'ingresses', 'rules', 'log', 'api', 'Services', 'TYPE', 'tunnel.id', 'sds', 'plugin'];
const configish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('tunnel', 'tcp', 'rtcp', ':8443', 'h:1', '4d21094e-b74c-4916-86c1-d9fa36ea677b', '$x', '', 'chain-0'),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    tie('object'),
    fc.array(tie('value'), { maxLength: 3 }),
  ),
  object: fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 5 }),
})).object;

describe('config fuzzing (only ConfigError may escape)', () => {
  it('parseGostUrl and buildConfigFromCli on arbitrary strings', () => {
    fc.assert(
      fc.property(anyUrl, (s) => {
        onlyConfigError(() => parseGostUrl(s, '-L'));
        onlyConfigError(() => parseGostUrl(s, '-F'));
        onlyConfigError(() => buildConfigFromCli([s], []));
        return onlyConfigError(() => buildConfigFromCli([], [s]));
      }),
      params,
    );
  });

  it('parseArgs on arbitrary argv', () => {
    const arg = fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('-L', '-F', '-C', '-D', '-DD', '-V', '-O', '-api', '--', '-', '--L=x', '-O=json', '-R', '-R=5s', '-h'));
    fc.assert(fc.property(fc.array(arg, { maxLength: 8 }), (argv) => onlyConfigError(() => parseArgs(argv))), params);
  });

  it('parseConfigText on arbitrary text', () => {
    const text = fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), fc.json());
    fc.assert(
      fc.property(text, fc.constantFrom<'yaml' | 'json' | undefined>('yaml', 'json', undefined), (t, format) =>
        onlyConfigError(() => parseConfigText(t, 'fuzz', format)),
      ),
      params,
    );
  });

  it('parseConfigText + verifyConfig on config-shaped documents', () => {
    fc.assert(
      fc.property(configish, fc.boolean(), (doc, asJson) => {
        const text = asJson ? JSON.stringify(doc) : stringify(doc);
        return onlyConfigError(() => verifyConfig(parseConfigText(text, 'fuzz', asJson ? 'json' : 'yaml').config));
      }),
      params,
    );
  });

  it('parseConfigText on arbitrary YAML values', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 4 }), (v) => onlyConfigError(() => parseConfigText(stringify(v) ?? '', 'fuzz', 'yaml'))),
      params,
    );
  });

  it('-O yaml/json output of a CLI config loads back into the same model', () => {
    const token = fc.stringMatching(/^[A-Za-z0-9._$:~-]{1,12}$/);
    const value = fc.oneof(token, fc.constantFrom('true', 'no', 'null', '~', '1', '0x10', '1e3', '-', ':80', '"q"', "'", '#x', '[a]', '{b}', '*c', '&d', ' s '));
    const service = fc
      .tuple(
        fc.constantFrom('tunnel', 'tcp', 'udp', 'rtcp', 'rudp', 'tunnel+ws', 'forward+tls', 'tcp+wss'),
        fc.constantFrom(':0', ':8443', '127.0.0.1:9000', '[::1]:80', ':8000-8001', 'hello'),
        fc.array(fc.constantFrom('a.local', '10.0.0.1:80', ':5201', '[::1]:22'), { maxLength: 3 }),
        fc.array(fc.tuple(token, value), { maxLength: 4 }),
      )
      .map(([scheme, host, targets, query]) => {
        const q = query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
        return `${scheme}://${host}${targets.length ? `/${targets.join(',')}` : ''}${q ? `?${q}` : ''}`;
      });
    fc.assert(
      fc.property(fc.array(service, { minLength: 1, maxLength: 3 }), fc.boolean(), (listen, withChain) => {
        let cfg;
        try {
          cfg = buildConfigFromCli(listen, withChain ? ['tunnel+wss://h.example:443?tunnel.id=4d21094e-b74c-4916-86c1-d9fa36ea677b'] : []);
        } catch (err) {
          if (err instanceof ConfigError) return true; // e.g. a forward handler on a rtcp name
          throw err;
        }
        for (const format of ['yaml', 'json'] as const) {
          assert.deepEqual(parseConfigText(renderConfig(cfg, format), 'round-trip', format).config, cfg);
        }
        return true;
      }),
      params,
    );
  });
});
