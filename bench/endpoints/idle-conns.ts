/**
 * Many idle TCP connections, end to end. Two roles, each its own process so that each needs
 * only one file descriptor per connection (`node idle-conns.ts backend|clients`):
 *
 * - backend: listens on 127.0.0.1:0, writes one byte on every accepted connection and keeps it
 *   idle; prints `{"event":"listening","port":N}`.
 * - clients: on `{"cmd":"open","ports":[P,...],"count":N,"concurrency":C,"timeoutMs":T}` (a line
 *   on stdin) opens N connections spread over the ports, at most C still waiting at a time, and
 *   counts one as open when the backend's byte has arrived through it; then prints
 *   `{"event":"opened","ok":n,"failed":f,"elapsedMs":ms,"errors":{reason:count}}`.
 *
 * Both: `{"cmd":"close"}` destroys every connection and prints `{"event":"closed"}`;
 * `{"cmd":"count"}` prints `{"event":"count","n":open connections}`; stdin closing exits.
 */
import net from 'node:net';
import readline from 'node:readline';

const role = process.argv[2];
const sockets = new Set<net.Socket>();

function emit(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

function openOne(port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    sockets.add(s);
    let done = false;
    const finish = (err?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      if (err) {
        sockets.delete(s);
        s.destroy();
      }
      resolve(err);
    };
    const t = setTimeout(() => finish('timeout waiting for the backend byte'), timeoutMs);
    s.once('data', () => finish());
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    s.once('close', () => {
      sockets.delete(s);
      finish('closed before the backend byte');
    });
  });
}

async function open(ports: number[], count: number, concurrency: number, timeoutMs: number): Promise<void> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  let ok = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const deadline = Date.now() + timeoutMs;
  async function worker(): Promise<void> {
    while (next < count && Date.now() < deadline) {
      const port = ports[next % ports.length]!;
      next++;
      const err = await openOne(port, Math.max(1000, deadline - Date.now()));
      if (err) {
        failed++;
        errors[err] = (errors[err] ?? 0) + 1;
      } else ok++;
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (next < count) {
    failed += count - next;
    errors[`deadline of ${timeoutMs} ms reached`] = count - next;
  }
  const elapsedMs = Number(process.hrtime.bigint() - t0) / 1e6;
  emit({ event: 'opened', ok, failed, elapsedMs, errors });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let cmd: { cmd: string; ports?: number[]; count?: number; concurrency?: number; timeoutMs?: number };
  try {
    cmd = JSON.parse(line);
  } catch {
    return;
  }
  if (cmd.cmd === 'open' && role === 'clients') {
    void open(cmd.ports!, cmd.count!, cmd.concurrency ?? 200, cmd.timeoutMs ?? 30000);
  } else if (cmd.cmd === 'close') {
    for (const s of sockets) s.destroy();
    sockets.clear();
    emit({ event: 'closed' });
  } else if (cmd.cmd === 'count') {
    emit({ event: 'count', n: sockets.size });
  }
});
rl.on('close', () => process.exit(0));

if (role === 'backend') {
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.write('x');
  });
  server.on('error', (err) => {
    emit({ event: 'error', message: err.message });
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    emit({ event: 'listening', port: (server.address() as net.AddressInfo).port });
  });
} else if (role !== 'clients') {
  process.stderr.write('usage: idle-conns.ts backend|clients\n');
  process.exit(2);
}
