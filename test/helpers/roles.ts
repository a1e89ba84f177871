/**
 * Set-up shared by the capture replays in test/compat: loading a capture, the suites that run
 * burrow in one role against fake gost peers (their before/after hooks), and the exchanges
 * every role starts with (the BIND, a visitor's CONNECT), built on test/helpers/replay.ts.
 */
import { after, before, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import type { SmuxFrame } from './vectors';
import { vectorsAvailable } from './vectors';
import {
  Inbox,
  addrPort,
  addrPortRange,
  assertBytes,
  captureFrames,
  describeFrames,
  dial,
  frameShape,
  listenRaw,
  loadVector,
  parseHead,
  send,
  startBurrow,
  streamPayloads,
  tunnelUuidRange,
  type FakeServer,
  type RunningBurrow,
  type SmuxLog,
} from './replay';

/** The `skip` option of every capture suite: false, or why the captures are not there. */
export const skipWithoutVectors: false | string = vectorsAvailable() ? false : 'shared/vectors not found (set BURROW_VECTORS_DIR)';

/** Loads `<vector>/<name>` (an empty buffer when the captures are not there). */
export function vectorLoader(vector: string): (name: string) => Buffer {
  return (name) => (skipWithoutVectors ? Buffer.alloc(0) : loadVector(vector, name));
}

/** Both directions of a plain-TCP capture, raw and as relay message + smux frames (undefined when skipped). */
export interface Capture {
  c2s: Buffer;
  s2c: Buffer;
  /** What the gost client sent: its first relay message (the BIND) and the smux frames after it. */
  client: { relay: Buffer; frames: SmuxFrame[] } | undefined;
  /** What the gost server sent: its relay response and the smux frames after it. */
  server: { relay: Buffer; frames: SmuxFrame[] } | undefined;
}

/** Loads `<vector>/<conn>.c2s` and `.s2c` and splits each into its relay message and smux frames. */
export function loadCapture(vector: string, conn = 'client-conn1'): Capture {
  const load = vectorLoader(vector);
  const c2s = load(`${conn}.c2s`);
  const s2c = load(`${conn}.s2c`);
  return {
    c2s,
    s2c,
    client: skipWithoutVectors ? undefined : captureFrames(c2s),
    server: skipWithoutVectors ? undefined : captureFrames(s2c),
  };
}

// ---------------------------------------------------------------------------------------------
// the HTTP exchange of http-entrypoint and ws-transport

/** The body python's http.server answered in the HTTP captures. */
export const CAPTURED_BODY = 'hello from behind the tunnel\n';

/** The parts of the captured HTTP exchange on stream 3 (empty buffers when skipped). */
export interface HttpExchange {
  /** The stream header (36 bytes) gost's server wrote on stream 3. */
  streamHeader: Buffer;
  /** The HTTP request (189 bytes) gost's server wrote on stream 3, with its added headers. */
  proxiedRequest: Buffer;
  /** The HTTP response the origin wrote (head + body), as the gost client forwarded it. */
  originResponse: Buffer;
}

/** Picks the HTTP exchange out of the frames of an http-entrypoint style capture. */
export function httpExchange(capture: Pick<Capture, 'client' | 'server'>): HttpExchange {
  const { client, server } = capture;
  return {
    streamHeader: server ? server.frames[1]!.data : Buffer.alloc(0),
    proxiedRequest: server ? server.frames[2]!.data : Buffer.alloc(0),
    originResponse: client ? streamPayloads(client.frames).get(3)! : Buffer.alloc(0),
  };
}

/** What curl sent: the proxied request without the headers the gost server added. */
export function curlRequest(proxiedRequest: Buffer): Buffer {
  const lines = proxiedRequest.toString('latin1').split('\r\n');
  const kept = lines.filter((l) => !/^(Gost-Forwarded-Node|Gost-Sid|Connection):/i.test(l));
  return Buffer.from(kept.join('\r\n'), 'latin1');
}

/** Waits until stream 3 carries the stream header and a complete HTTP request head after it. */
export function waitRequestHead(frames: SmuxLog, streamHeaderLength: number, what: string): Promise<SmuxFrame[]> {
  return frames.until((fs) => {
    const p = streamPayloads(fs).get(3);
    return !!p && p.length > streamHeaderLength && !!parseHead(p.subarray(streamHeaderLength));
  }, what);
}

/**
 * Plays curl: connects to burrow's entry point, sends the captured request (without the headers
 * gost's server added) and waits until stream 3 of `frames` carries the stream header and the
 * request head. The connection is owned by `r`.
 */
export async function curlThroughEntrypoint(
  r: Rig<unknown>,
  frames: SmuxLog,
  exchange: HttpExchange,
  what: string,
): Promise<{ curl: net.Socket; curlIn: Inbox; head: SmuxFrame[] }> {
  const curl = r.own(await dial(r.burrow.entrypointPort()));
  const curlIn = Inbox.of(curl);
  await send(curl, curlRequest(exchange.proxiedRequest));
  const head = await waitRequestHead(frames, exchange.streamHeader.length, what);
  return { curl, curlIn, head };
}

// ---------------------------------------------------------------------------------------------
// suites: burrow in one role, hooks registered on the enclosing describe

/** What a suite's `before` started; read it in the tests, not at describe time. */
export interface Rig<B> {
  burrow: RunningBurrow;
  /** The fake gost server burrow dials (suites from `againstFakeServer`). */
  fake: FakeServer;
  /** The local target behind burrow (suites from `againstFakeServer` with a backend). */
  backend: B;
  /** Registers a socket to destroy in `after`, before burrow stops; returns it. */
  own<S extends net.Socket>(sock: S): S;
}

function rig<B>(): { rig: Rig<B>; sockets: net.Socket[] } {
  const sockets: net.Socket[] = [];
  const r = {
    own: <S extends net.Socket>(sock: S): S => {
      sockets.push(sock);
      return sock;
    },
  } as Rig<B>;
  return { rig: r, sockets };
}

/**
 * burrow as the tunnel server, listening on `url` (by default the capture's server command).
 * `after` destroys the owned sockets, then stops burrow.
 */
export function asServer(url: string): Rig<undefined> {
  const { rig: r, sockets } = rig<undefined>();
  before(async () => {
    r.burrow = await startBurrow([url]);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await r.burrow?.stop();
  });
  return r;
}

/**
 * burrow dialing a fake gost server: `-L <listen(backend)> -F <scheme>://127.0.0.1:<fake>?tunnel.id=<id>`,
 * with `backend` started first when given. `after` destroys the owned sockets, stops burrow,
 * then closes the fake server and the backend.
 */
export function againstFakeServer<B extends { close(): Promise<void> } | undefined = undefined>(opts: {
  tunnelId: string;
  listen: (backend: B) => string;
  backend?: () => Promise<B>;
  scheme?: string;
}): Rig<B> {
  const { rig: r, sockets } = rig<B>();
  before(async () => {
    r.fake = await listenRaw();
    r.backend = (await opts.backend?.()) as B;
    const forward = `${opts.scheme ?? 'tunnel'}://127.0.0.1:${r.fake.port}?tunnel.id=${opts.tunnelId}`;
    r.burrow = await startBurrow([opts.listen(r.backend)], [forward]);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await r.burrow?.stop();
    await r.fake?.close();
    await r.backend?.close();
  });
  return r;
}

// ---------------------------------------------------------------------------------------------
// exchanges

/**
 * Plays the gost client: connects to burrow's tunnel port, sends `bind`, reads the relay
 * response and compares it with `expected` but the connector ID.
 */
export async function bindAtServer(
  r: Rig<unknown>,
  bind: Buffer,
  expected: Buffer,
  what: string,
): Promise<{ client: net.Socket; clientIn: Inbox; resp: Buffer }> {
  const client = r.own(await dial(r.burrow.port()));
  const clientIn = Inbox.of(client);
  await send(client, bind);
  const resp = await clientIn.readRelay('the BIND response');
  assertBytes(resp, expected, what, [tunnelUuidRange(expected)]);
  return { client, clientIn, resp };
}

/**
 * Plays a gost visitor: connects to burrow's tunnel port, sends `connect` and checks that the
 * 4-byte response is `ok`.
 */
export async function connectAtServer(
  r: Rig<unknown>,
  connect: Buffer,
  ok: Buffer,
  what: string,
): Promise<{ visitor: net.Socket; visitorIn: Inbox }> {
  const visitor = r.own(await dial(r.burrow.port()));
  const visitorIn = Inbox.of(visitor);
  await send(visitor, connect);
  assertBytes(await visitorIn.read(4, 'the CONNECT response'), ok, what);
  return { visitor, visitorIn };
}

/**
 * Reads burrow's BIND from `inbox` (the fake server's side of `conn`) and compares it with
 * `expected` but the src port, which must be `conn`'s remote port.
 */
export async function expectBind(inbox: Inbox, conn: net.Socket, expected: Buffer, what: string, portMessage?: string): Promise<Buffer> {
  const bind = await inbox.readRelay('the BIND');
  assertBytes(bind, expected, what, [addrPortRange(expected, 0)]);
  assert.equal(addrPort(bind, 0), conn.remotePort, portMessage);
  return bind;
}

/** Logs `sent` as a diagnostic under `who` and checks that it has the frame shape of `captured`. */
export function assertFramesAsCaptured(t: TestContext, who: string, sent: readonly SmuxFrame[], captured: readonly SmuxFrame[]): void {
  t.diagnostic(`${who}: ${describeFrames(sent)}`);
  assert.deepEqual(frameShape(sent), frameShape(captured), `frames: ${describeFrames(sent)}`);
}
