/** `entrypoint.acme*` options: parsing, defaults, the storage location and config errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metadata } from '../../../src/core/metadata';
import { parseOptions } from '../../../src/core/options/options';
import { TUNNEL_HANDLER_OPTIONS } from '../../../src/core/options/tunnel';
import { ConfigError } from '../../../src/core/errors';
import { acmeManagerOptions } from '../../../src/tls/acme/options';
import { AcmeManager, defaultAcmeStorage, directorySlug } from '../../../src/tls/acme/manager';

const eligible = (): boolean => false;

test('entrypoint.acme* keys map onto the manager; Redis falls back to tunnel.publicStore', () => {
  const o = parseOptions(
    TUNNEL_HANDLER_OPTIONS,
    new Metadata({
      'entrypoint.acme': 'https://ca.example/dir',
      'entrypoint.acmeEmail': 'ops@example.net',
      'entrypoint.acmeCA': '/etc/ca.pem',
      'entrypoint.acmeStorage': '/var/lib/burrow/acme',
      'entrypoint.acmeRate': '3',
      'entrypoint.acmeRenewBefore': '720h',
      'tunnel.publicStore': 'redis://127.0.0.1:6379/2',
    }),
  );
  const m = acmeManagerOptions(o, { eligible })!;
  assert.equal(m.directoryUrl, 'https://ca.example/dir');
  assert.equal(m.email, 'ops@example.net');
  assert.equal(m.caFile, '/etc/ca.pem');
  assert.equal(m.storageDir, '/var/lib/burrow/acme');
  assert.equal(m.ordersPerMinute, 3);
  assert.equal(m.renewBeforeMs, 720 * 3600_000);
  assert.equal(m.redis, 'redis://127.0.0.1:6379/2');
  const own = parseOptions(TUNNEL_HANDLER_OPTIONS, new Metadata({ 'entrypoint.acme': 'https://ca.example/dir', 'entrypoint.acmeStore': 'redis://10.0.0.1:6379', 'tunnel.publicStore': 'redis://x:1' }));
  assert.equal(acmeManagerOptions(own, { eligible })!.redis, 'redis://10.0.0.1:6379');
  const defaults = parseOptions(TUNNEL_HANDLER_OPTIONS, new Metadata({ 'entrypoint.acme': 'https://ca.example/dir' }));
  const d = acmeManagerOptions(defaults, { eligible })!;
  assert.equal(d.ordersPerMinute, 10);
  assert.equal(d.renewBeforeMs, undefined);
  assert.equal(d.storageDir, undefined);
  assert.equal(d.redis, undefined);
  assert.equal(acmeManagerOptions(parseOptions(TUNNEL_HANDLER_OPTIONS, new Metadata({})), { eligible }), undefined, 'off without entrypoint.acme');
});

test('malformed entrypoint.acme* values are config errors naming the key', () => {
  const bad: Record<string, string> = {
    'entrypoint.acme': 'not a url',
    'entrypoint.acmeRate': '0',
    'entrypoint.acmeStore': 'http://127.0.0.1:6379',
    'entrypoint.acmeRenewBefore': 'soon',
  };
  for (const [key, value] of Object.entries(bad)) {
    assert.throws(
      () => parseOptions(TUNNEL_HANDLER_OPTIONS, new Metadata({ [key]: value })),
      (err: Error) => err instanceof ConfigError && err.message.includes(key),
      key,
    );
  }
});

test('the default storage is under burrow\'s home, and each CA gets its own directory', () => {
  assert.equal(defaultAcmeStorage({ BURROW_HOME: '/srv/burrow', XDG_DATA_HOME: '/x' }), '/srv/burrow/acme');
  assert.equal(defaultAcmeStorage({ XDG_DATA_HOME: '/home/u/.data' }), '/home/u/.data/burrow/acme');
  assert.equal(defaultAcmeStorage({}), path.join(os.homedir(), '.local/share/burrow/acme'));
  assert.equal(directorySlug('https://acme-v02.api.letsencrypt.org/directory'), 'acme-v02.api.letsencrypt.org_directory');
  assert.equal(directorySlug('https://127.0.0.1:14000/dir'), '127.0.0.1_14000_dir');
  // Nothing in a directory URL can climb out of the storage directory.
  assert.doesNotMatch(directorySlug('https://ca.example/../../etc/'), /\.\.|\//);
  const m = new AcmeManager({ directoryUrl: 'https://ca.example/dir', storageDir: '/srv/acme', eligible });
  assert.equal(m.storageDir, '/srv/acme/ca.example_dir');
});

test('a CA file that cannot be read or holds no certificate is a config error naming it', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'burrow-acme-ca-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const junk = path.join(dir, 'junk.pem');
  await fs.writeFile(junk, 'not a certificate\n');
  for (const file of [path.join(dir, 'missing.pem'), junk]) {
    assert.throws(
      () => new AcmeManager({ directoryUrl: 'https://ca.example/dir', caFile: file, eligible }),
      (err: Error) => err instanceof ConfigError && err.message.includes('entrypoint.acmeCA') && err.message.includes(file),
    );
  }
  assert.throws(() => new AcmeManager({ directoryUrl: '::', eligible }), /entrypoint\.acme: "::" is not a directory URL/);
});
