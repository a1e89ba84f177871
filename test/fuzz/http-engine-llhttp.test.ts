/**
 * The entry point's HTTP/1.1 engine against Node's llhttp (node:http's parser), on generated
 * requests and responses: the same bytes go to the engine's parsers (head.ts: readRequestHead,
 * planRequest; protocol/http: parseHttpResponseHead, bodyFraming, ChunkedScanner) and, over
 * loopback, to a real http.createServer (requests) or a real http.request (responses).
 *
 * Where both accept, they must agree on the method, target, status and body bytes. Where they
 * disagree, the engine must be the one that refuses, for one of the reasons listed in
 * STRICTER (each says why refusing is right for a proxy); an engine that accepts what llhttp
 * refuses, or refuses for a reason not listed, fails the test with the bytes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import fc from 'fast-check';
import { assertStrictFraming, hasBareLf, planRequest, readRequestHead } from '../../src/handler/tunnel/entrypoint/http/head';
import { bodyFraming, parseHttpResponseHead } from '../../src/protocol/http/response';
import { ChunkedScanner } from '../../src/protocol/http/chunked';

type Verdict = { ok: true; what: string; body: Buffer } | { ok: false; why: string };
/** The engine's verdict, and where its message ends in the bytes. */
type EngineVerdict = Verdict & { end?: number };

/** Why the engine may refuse what llhttp takes: a proxy must not pass on what it cannot frame exactly. */
const STRICTER: Array<[RegExp, string]> = [
  [/bare LF/, 'a bare LF line end is read differently by different parsers (a smuggling vector): CRLF only'],
  [/obsolete header line folding/, 'obs-fold (RFC 9112 §5.2): a proxy must reject or rewrite it; the engine rejects'],
  [/both Transfer-Encoding and Content-Length/, 'TE with CL is a request-smuggling vector (RFC 9112 §6.3): rejected, not resolved'],
  [/unsupported Transfer-Encoding/, 'chunked must come last and once; a request with another last coding cannot be framed (RFC 9112 §6.3)'],
  [/malformed Content-Length|conflicting Content-Length|repeated Content-Length/, 'Content-Length must be digits, given once (RFC 9110 §8.6 lets a recipient merge equal ones; parsers differ)'],
  [/non-ASCII byte in the request target/, 'a target is ASCII (RFC 3986 percent-encodes the rest); parsers differ on raw bytes'],
  [/malformed HTTP version/, 'only HTTP/d.d is HTTP/1.x'],
  [/malformed HTTP method/, 'a method is a token (RFC 9110 §9.1)'],
  [/malformed HTTP request target/, 'no controls or spaces in the target'],
  [/malformed HTTP request line/, 'exactly three parts separated by single spaces'],
  [/malformed HTTP header/, 'a field name is a token followed by a colon'],
  [/control character in HTTP/, 'no control characters in field values'],
  [/Host|host/, 'the Host must be a valid authority (Go httpguts.ValidHostHeader)'],
  [/chunk/, 'chunked framing is checked strictly (sizes, CRLFs, extensions)'],
  [/status line/, 'a status line is HTTP/d.d, three digits, a reason'],
  [/incomplete/, 'the message is not complete when the peer ends (llhttp may take a close-delimited end)'],
];

/**
 * The one place the engine takes what llhttp refuses: llhttp knows a fixed list of methods and
 * refuses any other token ("get", "FOO"), where RFC 9110 §9.1 makes any token a method and Go
 * (gost) passes it on. The framing of such a request does not depend on its method, so no
 * parser reads it differently; the engine passes the method on unchanged.
 */
function llhttpOnlyRefusal(engine: EngineVerdict, node: Verdict): boolean {
  return engine.ok && !node.ok && node.why === 'HPE_INVALID_METHOD' && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ /.test(engine.what);
}

function explained(why: string): boolean {
  return STRICTER.some(([re]) => re.test(why));
}

// ---------------------------------------------------------------------------------------------
// generators

/** Mostly one of `good`, sometimes one of `bad`. */
function mostly<T>(good: T[], bad: T[]): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: fc.constantFrom(...good), weight: 8 }, { arbitrary: fc.constantFrom(...bad), weight: 1 });
}
const EOL = mostly(['\r\n'], ['\n']);
const METHOD = mostly(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'], ['G@T', 'get', 'P OST']);
const TARGET = mostly(['/', '/a?b=1', '/x/y#f', 'http://app.local/p', '/%zz'], ['*', '/a b', '/\x7f', '/é']);
const VERSION = mostly(['HTTP/1.1', 'HTTP/1.0'], ['HTTP/1.10', 'http/1.1', 'HTTP/1', 'HTTP/2.0']);
const NAME = mostly(['X-A', 'Accept', 'x-b', 'Cookie', 'X_Under'], ['X A', 'X\x00', '']);
const VALUE = mostly(['v', ' spaced ', 'a,b', '\tv', ''], ['v\x00x', 'v\x7f', 'é', 'a\rb']);
const HOST = mostly(['app.local', 'app.local:8080', '[::1]:80'], ['a b', 'app.local\x01', '']);
const CL = mostly(['0', '3', '5'], ['05', ' 5', '5, 5', '5,6', '-1', '1e2', 'abc', '99999999999999999999']);
const TE = mostly(['chunked'], ['gzip, chunked', 'chunked, gzip', 'identity', 'Chunked', 'chunked ', 'chunked,chunked']);

/** A chunked body: well-formed, or with one defect. */
const CHUNKED = fc
  .record({
    chunks: fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 3 }),
    ext: fc.boolean(),
    upper: fc.boolean(),
    defect: mostly(['none'], ['size', 'crlf', 'last', 'trailer', 'lf']),
  })
  .map(({ chunks, ext, upper, defect }) => {
    let out = '';
    for (const c of chunks) {
      const size = Buffer.byteLength(c, 'latin1').toString(16);
      out += `${defect === 'size' ? 'zz' : upper ? size.toUpperCase() : size}${ext ? ';x=1' : ''}\r\n${c}${defect === 'crlf' ? '' : '\r\n'}`;
    }
    if (defect === 'last') return out;
    out += '0\r\n';
    if (defect === 'trailer') out += 'X-T: 1\r\n';
    return out + (defect === 'lf' ? '\n' : '\r\n');
  });

const REQUEST = fc
  .record({
    method: METHOD,
    target: TARGET,
    version: VERSION,
    host: HOST,
    extra: fc.array(fc.tuple(NAME, VALUE), { maxLength: 3 }),
    fold: mostly([false], [true]),
    cl: fc.option(fc.array(CL, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    te: fc.option(TE, { nil: undefined }),
    body: fc.oneof(fc.constant(''), fc.string({ maxLength: 10 }), CHUNKED),
    eols: fc.array(EOL, { minLength: 12, maxLength: 12 }),
  })
  .map((r) => {
    let i = 0;
    const eol = (): string => r.eols[i++ % r.eols.length]!;
    let s = `${r.method} ${r.target} ${r.version}${eol()}Host: ${r.host}${eol()}`;
    for (const [k, v] of r.extra) s += `${k}: ${v}${eol()}`;
    if (r.fold) s += ` folded${eol()}`;
    for (const c of r.cl ?? []) s += `Content-Length: ${c}${eol()}`;
    if (r.te !== undefined) s += `Transfer-Encoding: ${r.te}${eol()}`;
    return Buffer.from(`${s}${eol()}${r.body}`, 'latin1');
  });

const STATUS_LINE = mostly(['HTTP/1.1 200 OK', 'HTTP/1.0 200 OK', 'HTTP/1.1 404 Not Found', 'HTTP/1.1 204 No Content', 'HTTP/1.1 200 '], ['HTTP/1.1 200', 'HTTP/1.1 2000 X', 'HTTP/2 200 OK', 'HTTP/1.1 200 O\x01K']);

const RESPONSE = fc
  .record({
    status: STATUS_LINE,
    extra: fc.array(fc.tuple(NAME, VALUE), { maxLength: 3 }),
    fold: mostly([false], [true]),
    cl: fc.option(fc.array(CL, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    te: fc.option(TE, { nil: undefined }),
    body: fc.oneof(fc.constant(''), fc.string({ maxLength: 10 }), CHUNKED),
    eols: fc.array(EOL, { minLength: 10, maxLength: 10 }),
  })
  .map((r) => {
    let i = 0;
    const eol = (): string => r.eols[i++ % r.eols.length]!;
    let s = `${r.status}${eol()}`;
    for (const [k, v] of r.extra) s += `${k}: ${v}${eol()}`;
    if (r.fold) s += ` folded${eol()}`;
    for (const c of r.cl ?? []) s += `Content-Length: ${c}${eol()}`;
    if (r.te !== undefined) s += `Transfer-Encoding: ${r.te}${eol()}`;
    return Buffer.from(`${s}${eol()}${r.body}`, 'latin1');
  });

// ---------------------------------------------------------------------------------------------
// the engine

/**
 * The body of a message starting at `rest` under `framing`, and how many bytes of `rest` the
 * message takes; undefined when it does not end in `rest`.
 */
function engineBody(framing: ReturnType<typeof bodyFraming>, rest: Buffer, atEof: boolean): { body: Buffer; used: number } | undefined {
  if (framing.kind === 'none') return { body: Buffer.alloc(0), used: 0 };
  if (framing.kind === 'length') return rest.length >= framing.length ? { body: rest.subarray(0, framing.length), used: framing.length } : undefined;
  if (framing.kind === 'close') return atEof ? { body: rest, used: rest.length } : undefined;
  const parts: Buffer[] = [];
  const end = new ChunkedScanner().scan(rest, 0, rest.length, (a, b) => parts.push(rest.subarray(a, b)));
  return end < 0 ? undefined : { body: Buffer.concat(parts), used: end };
}

function engineRequest(bytes: Buffer): EngineVerdict {
  try {
    const r = readRequestHead(bytes, false);
    if (r.kind !== 'head') return { ok: false, why: r.kind === 'partial' ? 'incomplete head' : 'too large' };
    const plan = planRequest(r.head, 'node');
    const b = engineBody(plan.body, bytes.subarray(r.head.headEnd), false);
    if (b === undefined) return { ok: false, why: 'incomplete body' };
    return { ok: true, what: `${r.head.method} ${r.head.path}`, body: b.body, end: r.head.headEnd + b.used };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

function engineResponse(bytes: Buffer): EngineVerdict {
  try {
    const head = parseHttpResponseHead(bytes);
    if (!head) return { ok: false, why: 'incomplete head' };
    if (hasBareLf(bytes, head.headEnd)) return { ok: false, why: 'bare LF in the response head' };
    assertStrictFraming(head.headers);
    const checked = bodyFraming(head.headers, false);
    const framing = head.status === 204 || head.status === 304 ? ({ kind: 'none' } as const) : checked;
    const b = engineBody(framing, bytes.subarray(head.headEnd), true);
    if (b === undefined) return { ok: false, why: 'incomplete body' };
    return { ok: true, what: String(head.status), body: b.body, end: head.headEnd + b.used };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// llhttp, over loopback

let server: http.Server;
let serverPort = 0;
/** Verdict callbacks by the test connection's local port (the server sees it as the remote port). */
const pending = new Map<number, (v: Verdict) => void>();
function verdict(sock: net.Socket, v: Verdict): void {
  const cb = pending.get(sock.remotePort ?? -1);
  if (cb === undefined) return;
  pending.delete(sock.remotePort!);
  cb(v);
}
let raw: net.Server;
let rawPort = 0;
let rawBytes: Buffer = Buffer.alloc(0);

before(async () => {
  server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      verdict(req.socket, { ok: true, what: `${req.method} ${req.url}`, body: Buffer.concat(parts) });
      res.end();
    });
    req.on('error', (err) => verdict(req.socket, { ok: false, why: err.message }));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, sock: net.Socket) => {
    verdict(sock, { ok: false, why: err.code ?? err.message });
    sock.destroy();
  });
  server.on('connection', (s) => s.on('close', () => verdict(s, { ok: false, why: 'closed without a request' })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  serverPort = (server.address() as net.AddressInfo).port;
  raw = net.createServer((s) => {
    s.on('error', () => {});
    s.end(rawBytes);
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));
  rawPort = (raw.address() as net.AddressInfo).port;
});
after(() => {
  server.closeAllConnections();
  server.close();
  raw.close();
});

function llhttpRequest(bytes: Buffer): Promise<Verdict> {
  return new Promise((resolve) => {
    const sock = net.connect({ port: serverPort, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.on('data', () => {});
    sock.once('connect', () => {
      pending.set(sock.localPort!, (v) => {
        sock.destroy();
        resolve(v);
      });
      sock.end(bytes);
    });
  });
}

function llhttpResponse(bytes: Buffer): Promise<Verdict> {
  rawBytes = bytes;
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: Verdict): void => {
      if (done) return;
      done = true;
      resolve(v);
    };
    const req = http.get({ host: '127.0.0.1', port: rawPort, path: '/', agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => finish(res.complete ? { ok: true, what: String(res.statusCode), body: Buffer.concat(parts) } : { ok: false, why: 'aborted' }));
      res.on('error', (err) => finish({ ok: false, why: err.message }));
      res.on('close', () => finish({ ok: false, why: 'closed' }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, why: err.code ?? err.message }));
  });
}

// ---------------------------------------------------------------------------------------------

function show(bytes: Buffer): string {
  return JSON.stringify(bytes.toString('latin1'));
}

/**
 * Compares the verdicts on `bytes`. Only the first message counts: when the engine ends it
 * before the end of the bytes, llhttp gets just those (and must then agree on its end).
 */
async function compare(
  kind: string,
  bytes: Buffer,
  engine: EngineVerdict,
  parse: (b: Buffer) => Promise<Verdict>,
  seen: Map<string, number>,
): Promise<void> {
  if (engine.ok && engine.end !== undefined && engine.end < bytes.length) bytes = bytes.subarray(0, engine.end);
  const node = await parse(bytes);
  if (engine.ok !== node.ok || (engine.ok && node.ok && engine.what !== node.what)) {
    console.log(kind, show(bytes), 'engine:', engine.ok ? engine.what : engine.why, 'llhttp:', node.ok ? node.what : node.why);
  }
  const tally = engine.ok && node.ok ? 'both accept' : !engine.ok && !node.ok ? 'both refuse' : undefined;
  if (tally) seen.set(tally, (seen.get(tally) ?? 0) + 1);
  if (engine.ok && node.ok) {
    assert.equal(engine.what, node.what, `${kind} ${show(bytes)}: both accept, different messages`);
    assert.equal(engine.body.toString('latin1'), node.body.toString('latin1'), `${kind} ${show(bytes)}: both accept, different bodies`);
    return;
  }
  if (llhttpOnlyRefusal(engine, node)) {
    seen.set('llhttp refuses a method token it does not list', (seen.get('llhttp refuses a method token it does not list') ?? 0) + 1);
    return;
  }
  if (engine.ok && !node.ok) {
    assert.fail(`${kind} ${show(bytes)}: the engine accepts what llhttp refuses (${node.why})`);
  }
  if (!engine.ok && node.ok) {
    assert.ok(explained(engine.why), `${kind} ${show(bytes)}: the engine refuses (${engine.why}) what llhttp accepts, for no listed reason`);
    const reason = `engine stricter: ${STRICTER.find(([re]) => re.test(engine.why))![1]}`;
    seen.set(reason, (seen.get(reason) ?? 0) + 1);
  }
}

describe('the HTTP engine against llhttp', () => {
  test('requests: where they disagree, the engine is the stricter, for a listed reason', async (t) => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(REQUEST, async (bytes) => {
        await compare('request', bytes, engineRequest(bytes), llhttpRequest, seen);
      }),
      { numRuns: 1000 },
    );
    report(t, seen);
  });

  test('responses: where they disagree, the engine is the stricter, for a listed reason', async (t) => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(RESPONSE, async (bytes) => {
        await compare('response', bytes, engineResponse(bytes), llhttpResponse, seen);
      }),
      { numRuns: 1000 },
    );
    report(t, seen);
  });
});

/** The tally as diagnostics; the generators must reach messages both accept. */
function report(t: { diagnostic(msg: string): void }, seen: Map<string, number>): void {
  for (const [what, n] of seen) t.diagnostic(`${what} ×${n}`);
  assert.ok((seen.get('both accept') ?? 0) > 0, 'no generated message was accepted by both');
}
