#!/usr/bin/env node
// Builds native/ (burrow's batched UDP I/O, see docs/udp.md) with node-gyp: npm's own copy when
// run by npm (npm_config_node_gyp), else the one bundled with npm next to this node, else
// node-gyp on PATH. Skipped when the addon is newer than its sources. A failed build is not
// an error: burrow then uses node:dgram and says so in its log. Set BURROW_NATIVE_REQUIRED=1
// to make a failed build fail.
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'native');
const out = path.join(dir, 'build', 'Release', 'burrow_udp.node');
const sources = ['udp.c', 'binding.gyp'].map((f) => path.join(dir, f));
const required = process.env.BURROW_NATIVE_REQUIRED === '1';

function fail(msg) {
  console.error(`build-native: ${msg}; burrow will use node:dgram for UDP`);
  process.exit(required ? 1 : 0);
}

if (process.platform !== 'linux') fail(`batched UDP I/O is Linux-only (this is ${process.platform})`);
if (existsSync(out) && sources.every((s) => statSync(s).mtimeMs <= statSync(out).mtimeMs)) process.exit(0);

const candidates = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter((p) => p && existsSync(p));
const [cmd, pre] = candidates.length ? [process.execPath, [candidates[0]]] : ['node-gyp', []];
const args = [...pre, 'rebuild', `--directory=${dir}`];
// node-gyp downloads Node's headers unless told where they are; a system Node has them here.
if (!process.env.npm_config_nodedir && existsSync('/usr/include/node/node_api.h')) args.push('--nodedir=/usr');
const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.error || r.status !== 0 || !existsSync(out)) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-8).join('\n');
  fail(`node-gyp failed (${r.error?.message ?? `exit ${r.status}`})${tail ? `:\n${tail}` : ''}`);
}
console.error(`build-native: built ${path.relative(root, out)}`);
