#!/usr/bin/env node
// Finds *.test.ts files under the given folders (default: test/) and runs them with
// node's test runner through tsx. Extra flags after `--` go to node --test.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const roots = (sep >= 0 ? argv.slice(0, sep) : argv);
const extra = sep >= 0 ? argv.slice(sep + 1) : [];
const files = [];
function walk(p) {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const name of readdirSync(p).sort()) walk(join(p, name));
  } else if (p.endsWith('.test.ts')) {
    files.push(p);
  }
}
for (const r of roots.length ? roots : ['test']) walk(r);
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, [
  '--import', 'tsx',
  '--test', `--test-concurrency=${concurrency}`, '--test-timeout=240000',
  ...extra, ...files,
], { stdio: 'inherit' });
process.exit(r.status ?? 1);
