/**
 * Property tests for forwarder node rules (`matcher.rule`): any text either parses or throws a
 * RuleError (nothing else), parsed rules never throw while matching any request, and rules
 * built from the grammar parse and agree with their own boolean structure.
 *
 * Time-boxed like the other fuzz files (FUZZ_SECONDS shares the budget).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseRule, RuleError, RULE_MATCHERS, type MatchInput } from '../../src/forward/matcher';
import { fuzzParams } from '../helpers/fuzz';

const params = fuzzParams(3);

const pieceArb = fc.oneof(
  fc.constantFrom(...RULE_MATCHERS, '(', ')', ',', '&&', '||', '!', ' ', '`', '"', '`a.com`', '`/x`', '`10.0.0.0/8`', '`(`', '`[`'),
  fc.string({ maxLength: 6 }),
);
const textArb = fc.array(pieceArb, { maxLength: 14 }).map((p) => p.join(''));

const inputArb: fc.Arbitrary<MatchInput> = fc.record(
  {
    host: fc.oneof(fc.domain(), fc.constantFrom('a.com', 'A.COM:443', 'a.com.', 'b.com', '')),
    proto: fc.constantFrom('http', 'tls', 'ssh'),
    method: fc.constantFrom('GET', 'POST'),
    url: fc.oneof(fc.constant('/x?y=1'), fc.string({ maxLength: 12 })),
    headers: fc.dictionary(fc.constantFrom('content-type', 'x-a'), fc.string({ maxLength: 8 })),
    clientIP: fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 8 })),
  },
  { requiredKeys: [] },
);

/** A generated rule and the truth value it must have for an input. */
type Gen = { src: string; eval: (m: MatchInput) => boolean };
const leafArb: fc.Arbitrary<Gen> = fc.constantFrom<Gen>(
  { src: 'Host(`a.com`)', eval: (m) => (m.host ?? '').toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '') === 'a.com' },
  { src: 'Proto(`tls`)', eval: (m) => m.proto === 'tls' },
  { src: 'Method(`GET`)', eval: (m) => m.method === 'GET' },
);
const genArb: fc.Arbitrary<Gen> = fc.letrec<{ g: Gen }>((tie) => ({
  g: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafArb,
    tie('g').map((a) => ({ src: `!(${a.src})`, eval: (m: MatchInput) => !a.eval(m) })),
    fc.tuple(tie('g'), tie('g')).map(([a, b]) => ({ src: `(${a.src}) && (${b.src})`, eval: (m: MatchInput) => a.eval(m) && b.eval(m) })),
    fc.tuple(tie('g'), tie('g')).map(([a, b]) => ({ src: `(${a.src}) || (${b.src})`, eval: (m: MatchInput) => a.eval(m) || b.eval(m) })),
  ),
})).g;

describe('matcher rules (property tests)', () => {
  test('any text parses or throws RuleError; parsed rules never throw on any input', () => {
    fc.assert(
      fc.property(textArb, fc.array(inputArb, { maxLength: 4 }), (text, inputs) => {
        let rule;
        try {
          rule = parseRule(text);
        } catch (err) {
          assert.ok(err instanceof RuleError, `not a RuleError for ${JSON.stringify(text)}: ${String(err)}`);
          return;
        }
        for (const m of inputs) assert.equal(typeof rule(m), 'boolean');
      }),
      params(500),
    );
  });

  test('generated rules parse and agree with their structure', () => {
    fc.assert(
      fc.property(genArb, inputArb, (g, m) => {
        assert.equal(parseRule(g.src)(m), g.eval(m), g.src);
      }),
      params(300),
    );
  });

  test('operators without parentheses: && binds tighter than ||', () => {
    fc.assert(
      fc.property(leafArb, leafArb, leafArb, inputArb, (a, b, c, m) => {
        assert.equal(parseRule(`${a.src} || ${b.src} && ${c.src}`)(m), a.eval(m) || (b.eval(m) && c.eval(m)));
      }),
      params(200),
    );
  });
});
