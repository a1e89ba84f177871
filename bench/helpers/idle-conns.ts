/**
 * Many idle TCP connections, end to end. One process plays both ends:
 *
 * - a backend on 127.0.0.1:0 that writes one byte on every accepted connection and then keeps
 *   it idle (prints `{"event":"listening","port":N}`);
 * - on `{"cmd":"open","port":P,"count":N,"concurrency":C,"timeoutMs":T}` (a line on stdin) it
 *   opens N connections to P, at most C still waiting at a time, and counts one as open when the
 *   backend's byte has arrived through it; then prints
 *   `{"event":"opened","ok":n,"failed":f,"elapsedMs":ms,"accepted":a,"firstError":...}`;
 * - `{"cmd":"close"}` destroys everything and prints `{"event":"closed"}`; `{"cmd":"exit"}` exits.
 *
 * Needs about 2×N file descriptors: the bench raises the limit before starting it.
 */
import net from 'node:net';
import readline from 'node:readline';

const accepted = new Set<net.Socket>();
const clients = new Set<net.Socket>();

function emit(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

const server = net.createServer((s) => {
  accepted.add(s);
  s.on('error', () => undefined);
  s.on('close', () => accepted.delete(s));
  s.write('x');
});
server.maxConnections = 1 << 20;

function openOne(port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    clients.add(s);
    let done = false;
    const finish = (err?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      if (err) {
        clients.delete(s);
        s.destroy();
      }
      resolve(err);
    };
    const t = setTimeout(() => finish('timeout waiting for the backend byte'), timeoutMs);
    s.once('data', () => finish());
    s.on('error', (e) => finish(e.message));
    s.once('close', () => {
      clients.delete(s);
      finish('closed before the backend byte');
    });
  });
}

async function open(port: number, count: number, concurrency: number, timeoutMs: number): Promise<void> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const deadline = Date.now() + timeoutMs;
  async function worker(): Promise<void> {
    while (next < count && Date.now() < deadline) {
      next++;
      const err = await openOne(port, Math.max(1000, deadline - Date.now()));
      if (err) {
        failed++;
        firstError ??= err;
      } else ok++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (next < count) {
    failed += count - next;
    firstError ??= `deadline of ${timeoutMs} ms reached`;
  }
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  emit({ event: 'opened', ok, failed, elapsedMs, accepted: accepted.size, firstError });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd: { cmd: string; port?: number; count?: number; concurrency?: number; timeoutMs?: number };
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (cmd.cmd === 'open') {
    void open(cmd.port!, cmd.count!, cmd.concurrency ?? 200, cmd.timeoutMs ?? 30000);
  } else if (cmd.cmd === 'close') {
    for (const s of clients) s.destroy();
    clients.clear();
    for (const s of accepted) s.destroy();
    emit({ event: 'closed' });
  } else if (cmd.cmd === 'exit') {
    process.exit(0);
  }
});
rl.on('close', () => process.exit(0));
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  emit({ event: 'listening', port: (server.address() as net.AddressInfo).port });
});
