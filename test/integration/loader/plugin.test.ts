// The HTTP plugin client (authers' `plugin`): the timeout bounds the whole exchange, not only
// silence between bytes, and what a plugin sends wrong is a clear error.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { postPluginJson } from '../../../src/loader/sources';

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

async function plugin(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
}

test('a plugin that drips its answer a byte at a time fails at the deadline', { timeout: 60_000 }, async () => {
  const timers: NodeJS.Timeout[] = [];
  const url = await plugin((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'application/json' });
    // Never silent for long (an idle timeout alone would wait forever), never complete.
    const t = setInterval(() => res.write(' '), 20);
    timers.push(t);
    res.on('close', () => clearInterval(t));
  });
  await assert.rejects(postPluginJson({ url, timeoutMs: 300 }, { username: 'u' }), (err: Error) => {
    assert.match(err.message, new RegExp(`^plugin ${url}: no complete answer within 300 ms$`));
    return true;
  });
  for (const t of timers) clearInterval(t);
});

test('an answer in time is decoded; a wrong status and a body that is not JSON are errors', { timeout: 60_000 }, async () => {
  const url = await plugin((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { username } = JSON.parse(body) as { username: string };
      if (username === 'status') res.writeHead(500).end('{}');
      else if (username === 'text') res.writeHead(200).end('not json');
      else res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ok: username === 'alice' }));
    });
  });
  assert.deepEqual(await postPluginJson({ url, timeoutMs: 30_000 }, { username: 'alice' }), { ok: true });
  assert.deepEqual(await postPluginJson({ url, timeoutMs: 30_000 }, { username: 'bob' }), { ok: false });
  await assert.rejects(postPluginJson({ url, timeoutMs: 30_000 }, { username: 'status' }), /status 500 \(expected 200\)/);
  await assert.rejects(postPluginJson({ url, timeoutMs: 30_000 }, { username: 'text' }), /the answer is not JSON/);
});
