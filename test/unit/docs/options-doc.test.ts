/** docs/options.md is generated from the option declarations: the checked-in file must be what the script writes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderOptionsDoc } from '../../../scripts/options-doc';
import { PARTS } from '../../../src/core/parts';

const FILE = join(__dirname, '..', '..', '..', 'docs', 'options.md');

test('docs/options.md matches the declarations (run `npm run docs:options` after changing an option)', () => {
  assert.equal(readFileSync(FILE, 'utf8'), renderOptionsDoc());
});

test('the reference names every part and every implemented key', () => {
  const doc = renderOptionsDoc();
  for (const [kind, parts] of Object.entries(PARTS)) {
    for (const [name, part] of Object.entries(parts)) {
      assert.ok(doc.includes(`### \`${name}\` ${kind}`), `${kind} ${name}`);
      for (const d of Object.values(part.options)) assert.ok(doc.includes(`\`${d.key}\``), `${kind} ${name}: ${d.key}`);
    }
  }
});
