import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../../../src/core/errors';
import { Metadata } from '../../../../src/core/metadata';
import {
  DEFAULT_SMUX_CONFIG,
  resolveSmuxConfig,
  smuxConfigFromMetadata,
  verifySmuxConfig,
  type SmuxConfig,
} from '../../../../src/protocol/smux/config';

describe('smux config', () => {
  test('defaults are the gost tunnel settings (spec/protocol.md §5.1), but for the stream window', () => {
    assert.deepEqual(
      { ...DEFAULT_SMUX_CONFIG },
      {
        version: 2,
        keepAliveDisabled: false,
        keepAliveIntervalMs: 10_000,
        keepAliveTimeoutMs: 30_000,
        maxFrameSize: 32_768,
        maxReceiveBuffer: 4_194_304,
        // burrow's: windows start at gost's 1 MiB (BASE_STREAM_WINDOW) and may grow to this.
        maxStreamBuffer: 4_194_304,
        maxStreams: 65_536,
        acceptBacklog: 1024,
        // burrow's: a peer that stopped reading (not on the wire).
        sendTimeoutMs: 60_000,
      },
    );
    assert.doesNotThrow(() => verifySmuxConfig({ ...DEFAULT_SMUX_CONFIG }));
  });

  const bad: [string, Partial<SmuxConfig>, string][] = [
    ['version 3', { version: 3 as 2 }, 'mux.version'],
    ['version 0', { version: 0 as 2 }, 'mux.version'],
    ['zero keepalive interval', { keepAliveIntervalMs: 0 }, 'mux.keepaliveInterval'],
    ['timeout below interval', { keepAliveIntervalMs: 10_000, keepAliveTimeoutMs: 5_000 }, 'mux.keepaliveTimeout'],
    ['frame size 0', { maxFrameSize: 0 }, 'mux.maxFrameSize'],
    ['frame size 65536', { maxFrameSize: 65_536 }, 'mux.maxFrameSize'],
    ['receive buffer 0', { maxReceiveBuffer: 0 }, 'mux.maxReceiveBuffer'],
    ['stream buffer 0', { maxStreamBuffer: 0 }, 'mux.maxStreamBuffer'],
    ['stream buffer above receive buffer', { maxReceiveBuffer: 65_536, maxStreamBuffer: 65_537 }, 'mux.maxStreamBuffer'],
    ['receive buffer above int32', { maxReceiveBuffer: 2 ** 31, maxStreamBuffer: 1024 }, 'mux.maxReceiveBuffer'],
    ['zero max streams', { maxStreams: 0 }, 'mux.maxStreams'],
    ['negative backlog', { acceptBacklog: -1 }, 'mux.acceptBacklog'],
  ];
  for (const [name, partial, path] of bad) {
    test(`rejects ${name}, naming ${path}`, () => {
      assert.throws(
        () => resolveSmuxConfig(partial),
        (e: unknown) => e instanceof ConfigError && e.path === path && e.code === 'BURROW_ERR_CONFIG',
      );
    });
  }

  test('keepalive rules do not apply when keepalive is disabled', () => {
    assert.doesNotThrow(() => resolveSmuxConfig({ keepAliveDisabled: true, keepAliveIntervalMs: 0, keepAliveTimeoutMs: 0 }));
  });

  test('timeout equal to the interval is allowed, as smux allows it', () => {
    assert.doesNotThrow(() => resolveSmuxConfig({ keepAliveIntervalMs: 500, keepAliveTimeoutMs: 500 }));
  });

  test('resolveSmuxConfig keeps defaults for undefined fields', () => {
    const c = resolveSmuxConfig({ maxFrameSize: 4096, maxStreams: undefined });
    assert.equal(c.maxFrameSize, 4096);
    assert.equal(c.maxStreams, DEFAULT_SMUX_CONFIG.maxStreams);
  });
});

describe('smuxConfigFromMetadata', () => {
  test('empty metadata gives the defaults', () => {
    assert.deepEqual(smuxConfigFromMetadata(new Metadata({})), { ...DEFAULT_SMUX_CONFIG });
  });

  test('reads every mux.* key, case-insensitively, with gost value coercion', () => {
    const c = smuxConfigFromMetadata(
      new Metadata({
        'mux.version': '1',
        'MUX.KEEPALIVEDISABLED': 'true',
        'mux.keepaliveInterval': '500ms',
        'mux.keepaliveTimeout': 2, // a bare number is seconds
        'mux.maxFrameSize': '4096',
        'mux.maxReceiveBuffer': 8_388_608,
        'mux.maxStreamBuffer': '65536',
      }),
    );
    assert.deepEqual(c, {
      ...DEFAULT_SMUX_CONFIG,
      version: 1,
      keepAliveDisabled: true,
      keepAliveIntervalMs: 500,
      keepAliveTimeoutMs: 2000,
      maxFrameSize: 4096,
      maxReceiveBuffer: 8_388_608,
      maxStreamBuffer: 65_536,
    });
  });

  test('zero means "default", as in gost', () => {
    const c = smuxConfigFromMetadata(new Metadata({ 'mux.version': 0, 'mux.maxFrameSize': 0, 'mux.maxStreamBuffer': '0', 'mux.keepaliveInterval': '0s' }));
    assert.equal(c.version, 2);
    assert.equal(c.maxFrameSize, DEFAULT_SMUX_CONFIG.maxFrameSize);
    assert.equal(c.maxStreamBuffer, DEFAULT_SMUX_CONFIG.maxStreamBuffer);
    assert.equal(c.keepAliveIntervalMs, DEFAULT_SMUX_CONFIG.keepAliveIntervalMs);
  });

  test('negative and unparsable numbers are config errors naming the key and the range (gost would wrap them silently)', () => {
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.maxFrameSize': -5 })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.maxFrameSize' && /from 0 to 65535, found -5/.test(e.message),
    );
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.maxStreamBuffer': 'lots' })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.maxStreamBuffer' && /expected an integer .*found 'lots'/.test(e.message),
    );
  });

  test('invalid combinations fail with the key in the error', () => {
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.keepaliveInterval': '20s', 'mux.keepaliveTimeout': '10s' })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.keepaliveTimeout',
    );
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.maxFrameSize': 70_000 })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.maxFrameSize',
    );
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.version': 3 })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.version',
    );
    assert.throws(
      () => smuxConfigFromMetadata(new Metadata({ 'mux.maxStreamBuffer': 8_388_608 })),
      (e: unknown) => e instanceof ConfigError && e.path === 'mux.maxStreamBuffer',
    );
  });
});
