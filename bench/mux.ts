/**
 * `npm run bench:mux`: one stream through an smux Session pair over loopback TCP, next to raw
 * loopback TCP measured in the same run, printed as Gbit/s and a ratio (target ≥ 60 %).
 *
 * The receiving ends run in a child process (two processes, as in a real tunnel); with
 * BENCH_INPROC=1 everything runs in this process. Each mode gets BENCH_SECONDS (default 5) in
 * BENCH_SLICES alternating slices (default 5), so a burst of load from elsewhere on the machine
 * hits both modes alike; the figures are total bytes over total time per mode.
 */
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Session } from '../src/protocol/smux/session';
import type { Stream } from '../src/protocol/smux/stream';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const SLICES = Math.max(1, Number(process.env.BENCH_SLICES ?? 5));
const INPROC = process.env.BENCH_INPROC === '1';
const CHUNK = Number(process.env.BENCH_CHUNK_KIB ?? 256) * 1024;

type Mode = 'raw' | 'mux';
type Report = (mode: Mode, bytes: number) => void;

/** Receivers: one port counting raw bytes, one counting the bytes of each smux stream. */
function startReceivers(report: Report): Promise<{ raw: number; mux: number }> {
  const listen = (server: net.Server): Promise<number> =>
    new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
  const raw = net.createServer((sock) => {
    sock.setNoDelay(true);
    let bytes = 0;
    sock.on('data', (d: Buffer) => (bytes += d.length));
    sock.on('end', () => {
      report('raw', bytes);
      sock.destroy();
    });
    sock.on('error', () => {});
  });
  const mux = net.createServer((sock) => {
    sock.setNoDelay(true);
    const session = new Session(sock, { client: false });
    session.on('stream', (st: Stream) => {
      let bytes = 0;
      st.on('error', () => {});
      st.on('data', (d: Buffer) => (bytes += d.length));
      st.on('end', () => {
        report('mux', bytes);
        session.close();
      });
    });
  });
  return Promise.all([listen(raw), listen(mux)]).then(([r, m]) => ({ raw: r, mux: m }));
}

interface Receivers {
  ports: { raw: number; mux: number };
  /** Resolves with the byte count the receiver saw for the next finished connection. */
  next(): Promise<number>;
  close(): void;
}

async function receivers(): Promise<Receivers> {
  const waiting: ((n: number) => void)[] = [];
  const deliver = (n: number): void => waiting.shift()?.(n);
  if (INPROC) {
    const ports = await startReceivers((_m, n) => deliver(n));
    return { ports, next: () => new Promise((r) => waiting.push(r)), close: () => {} };
  }
  const child: ChildProcess = fork(__filename, ['--receive'], { execArgv: ['--import', 'tsx'] });
  const [msg] = (await once(child, 'message')) as [{ ports: { raw: number; mux: number } }];
  child.on('message', (m: { bytes?: number }) => {
    if (typeof m.bytes === 'number') deliver(m.bytes);
  });
  return { ports: msg.ports, next: () => new Promise((r) => waiting.push(r)), close: () => child.kill() };
}

/** Sends for `seconds` on a fresh connection; returns what the receiver counted and the time. */
async function slice(mode: Mode, rx: Receivers, seconds: number): Promise<{ bytes: number; secs: number }> {
  const sock = net.connect(rx.ports[mode], '127.0.0.1');
  sock.setNoDelay(true);
  await once(sock, 'connect');
  let session: Session | undefined;
  let out: Stream | net.Socket = sock;
  if (mode === 'mux') {
    session = new Session(sock, { client: true });
    out = session.openStream();
    out.on('error', () => {});
  }
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  const counted = rx.next();
  const started = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  await new Promise<void>((resolve) => {
    const go = (): void => {
      while (Date.now() < deadline) {
        for (let i = 0; i < 16; i++) {
          if (!out.write(chunk)) {
            out.once('drain', go);
            return;
          }
        }
      }
      resolve();
    };
    go();
  });
  out.end();
  const bytes = await counted;
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  session?.destroy();
  sock.destroy();
  return { bytes, secs };
}

const gbps = (bytes: number, secs: number): number => (bytes * 8) / secs / 1e9;

async function main(): Promise<void> {
  if (process.argv.includes('--receive')) {
    const ports = await startReceivers((_m, bytes) => process.send?.({ bytes }));
    process.send?.({ ports });
    process.on('disconnect', () => process.exit(0));
    return;
  }
  console.log(
    `smux bench: one stream, ${SECONDS} s per mode in ${SLICES} alternating slices, ` +
      `${INPROC ? 'sender and receiver in one process' : 'receiver in a child process'}, ` +
      `${CHUNK / 1024} KiB writes, node ${process.version}`,
  );
  const rx = await receivers();
  const total = { raw: { bytes: 0, secs: 0 }, mux: { bytes: 0, secs: 0 } };
  try {
    for (let i = 0; i < SLICES; i++) {
      const line: string[] = [];
      for (const mode of (i % 2 === 0 ? ['raw', 'mux'] : ['mux', 'raw']) as Mode[]) {
        const r = await slice(mode, rx, SECONDS / SLICES);
        total[mode].bytes += r.bytes;
        total[mode].secs += r.secs;
        line.push(`${mode} ${gbps(r.bytes, r.secs).toFixed(2)}`);
      }
      console.log(`  slice ${i + 1}: ${line.join(', ')} Gbit/s`);
    }
  } finally {
    rx.close();
  }
  const raw = gbps(total.raw.bytes, total.raw.secs);
  const mux = gbps(total.mux.bytes, total.mux.secs);
  console.log(`raw TCP   ${raw.toFixed(2)} Gbit/s`);
  console.log(`smux      ${mux.toFixed(2)} Gbit/s`);
  console.log(`ratio     ${((mux / raw) * 100).toFixed(0)} % (target ≥ 60 %)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
