/**
 * shared/vectors/entrypoint-errors: what the entry point answers when it cannot route an HTTP
 * request, and what it logs, compared with gost 3.2.6.
 *
 * Server as in the capture (ports from the OS):
 *   tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:<id>,example.org:<id>
 * Requests: `GET / HTTP/1.1` with the given Host, 67 bytes for other.org as gost's log counts
 * (`inputBytes: 67` = request line, Host, an Accept line, `Connection: close`), read until close.
 *
 * Responses must be the bytes of responses.txt; burrow may add `Connection` / `Keep-Alive`
 * header lines (Node's HTTP server), nothing else. Log lines are compared with
 * server-log.jsonl by field names (values that change per run are not compared).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VECTORS_DIR, loadEntrypointResponses, vectorsAvailable } from '../helpers/vectors';
import { HTTP_TUNNEL, Inbox, capturingLogger, dial, parseHead, send, sleep, startBurrow, type RunningBurrow } from '../helpers/replay';

const skip = vectorsAvailable() ? false : 'shared/vectors not found (set BURROW_VECTORS_DIR)';
const OTHER_TUNNEL = 'ac74d9dd-3125-442a-a7c1-f9e49e05faca';
const SERVER = `tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0&tunnel=.example.com:${HTTP_TUNNEL},example.org:${OTHER_TUNNEL}`;

type LogLine = Record<string, unknown>;

const RESPONSES = skip ? new Map<string, Buffer>() : loadEntrypointResponses();
const GOST_LOG: LogLine[] = skip
  ? []
  : readFileSync(join(VECTORS_DIR, 'entrypoint-errors', 'server-log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as LogLine);

function request(host: string): Buffer {
  return Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\nAccept: */*\r\nConnection: close\r\n\r\n`, 'latin1');
}

/** The response without the header lines burrow may add (Connection, Keep-Alive). */
function withoutAllowedExtras(raw: Buffer): Buffer {
  const text = raw.toString('latin1');
  return Buffer.from(text.replace(/^(Connection|Keep-Alive): [^\r]*\r\n/gim, ''), 'latin1');
}

/** The kinds of line gost writes for one entry point connection, by message. */
/**
 * `burrowLevel`: burrow logs the per-connection and per-request lines at debug (gost: info), a
 * documented deviation so a busy entry point does not write four lines per request at the
 * default level; field names and texts are gost's.
 */
const LINE_KINDS: Array<{ kind: string; match: (msg: string, remote: string) => boolean; burrowLevel?: string }> = [
  { kind: '"<remote> <> <local>" (connection opened)', match: (m, r) => m.startsWith(`${r} <> `), burrowLevel: 'debug' },
  { kind: '"<remote> <-> other.org" (request routed)', match: (m, r) => m === `${r} <-> other.org`, burrowLevel: 'debug' },
  { kind: '"<remote> >-< other.org" (request done)', match: (m, r) => m === `${r} >-< other.org`, burrowLevel: 'debug' },
  { kind: '"no route to host other.org:80" (error)', match: (m) => m.startsWith('no route to host') },
  { kind: '"<remote> >< <local>" (connection closed)', match: (m, r) => m.startsWith(`${r} >< `), burrowLevel: 'debug' },
];

describe('entrypoint-errors: the capture itself', { skip }, () => {
  it('has the responses and the log lines of one 502 request', () => {
    assert.equal(RESPONSES.get('other.org')!.toString('latin1'), 'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n');
    assert.equal(RESPONSES.get('example.org')!.toString('latin1'), 'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n');
    const first = GOST_LOG.filter((l) => l.remote === '127.0.0.1:53300');
    assert.equal(first.length, 5);
    assert.equal(first[3]!.msg, 'no route to host other.org:80');
    assert.equal(first[2]!.inputBytes, request('other.org').length, 'gost counted a 67-byte request');
  });
});

describe('entrypoint-errors: burrow\'s entry point answers and logs', { skip }, () => {
  let burrow: RunningBurrow;
  const captured = capturingLogger('debug');
  /** remote address of each request's connection, by Host. */
  const remotes = new Map<string, string>();

  before(async () => {
    burrow = await startBurrow([SERVER], [], captured.logger);
  });
  after(async () => {
    await burrow?.stop();
  });

  for (const host of ['other.org', 'example.org', 'www.example.com']) {
    it(`Host: ${host} → the response of responses.txt (Connection / Keep-Alive lines aside), then close`, async (t) => {
      const want = RESPONSES.get(host)!;
      const sock = await dial(burrow.entrypointPort());
      remotes.set(host, `127.0.0.1:${sock.localPort}`);
      const inbox = Inbox.of(sock);
      await send(sock, request(host));
      const raw = await inbox.waitEnd(`the ${host} response and close`);
      sock.destroy();
      t.diagnostic(`burrow answered ${JSON.stringify(raw.toString('latin1'))}`);
      const head = parseHead(raw);
      assert.ok(head, 'a complete HTTP head');
      assert.equal(head.startLine, want.toString('latin1').split('\r\n')[0], 'status line');
      assert.equal(raw.length, head.length, 'no body');
      assert.equal(withoutAllowedExtras(raw).toString('latin1'), want.toString('latin1'), 'header lines other than Connection / Keep-Alive');
    });
  }

  it('logs the 502 as gost: error "no route to host other.org:80" with kind/service/handler/listener/remote/local/client', async () => {
    await sleep(50);
    const remote = remotes.get('other.org');
    assert.ok(remote, 'needs the other.org request');
    const gost = GOST_LOG.find((l) => l.remote === '127.0.0.1:53300' && l.level === 'error')!;
    const mine = captured.lines.filter((l) => l.remote === remote && l.level === 'error');
    assert.equal(mine.length, 1, `one error line for the request, got ${JSON.stringify(mine)}`);
    const line = mine[0]!;
    const fields = ['level', 'kind', 'service', 'handler', 'listener', 'remote', 'client', 'local', 'msg'] as const;
    const pick = (l: LogLine): Record<string, unknown> => Object.fromEntries(fields.map((f) => [f, l[f]]));
    assert.deepEqual(pick(line), {
      ...pick(gost),
      remote,
      client: remote,
      local: burrow.entrypoint(),
    });
  });

  for (const [i, k] of LINE_KINDS.entries()) {
    it(`log line ${i + 1} of gost's 5 for the 502 request, ${k.kind}: same level and field names`, async (t) => {
      const remote = remotes.get('other.org');
      assert.ok(remote, 'needs the other.org request');
      const gost = GOST_LOG.find((l) => l.remote === '127.0.0.1:53300' && k.match(String(l.msg), '127.0.0.1:53300'))!;
      assert.ok(gost, 'line in server-log.jsonl');
      const mine = captured.lines.filter((l) => l.remote === remote && k.match(String(l.msg), remote));
      t.diagnostic(`gost:   ${JSON.stringify(gost)}`);
      t.diagnostic(`burrow: ${mine.length ? mine.map((l) => JSON.stringify(l)).join(' / ') : '(no such line, log level debug)'}`);
      assert.equal(mine.length, 1, 'burrow writes this line');
      const line = mine[0]!;
      assert.equal(line.level, k.burrowLevel ?? gost.level, 'level');
      assert.deepEqual(Object.keys(line).sort(), Object.keys(gost).sort(), 'field names');
    });
  }

  it('503 requests: a "<remote> <> <local>" line with gost\'s field names (the only line gost\'s capture has for them)', async (t) => {
    for (const host of ['example.org', 'www.example.com']) {
      const remote = remotes.get(host);
      assert.ok(remote, `needs the ${host} request`);
      const mine = captured.lines.filter((l) => l.remote === remote);
      t.diagnostic(`${host}: ${mine.map((l) => JSON.stringify(l)).join(' / ')}`);
      const gostOpen = GOST_LOG.find((l) => l.remote === '127.0.0.1:53312')!;
      const open = mine.find((l) => String(l.msg).startsWith(`${remote} <> `));
      assert.ok(open, `a "<remote> <> <local>" line like gost's ${JSON.stringify(gostOpen.msg)}`);
      assert.deepEqual(Object.keys(open).sort(), Object.keys(gostOpen).sort(), 'field names');
    }
  });
});
