/**
 * Soak run: `npm run soak -- --minutes N`.
 *
 * Real processes: one tunnel server (with an entry point), three clients on one tunnel (each an
 * rtcp service routing by host to an HTTP origin or a TCP echo, plus an rudp service to a UDP
 * echo), a TCP visitor and a UDP visitor. This process drives a steady mixed load:
 *
 * - HTTP: POSTs of 1 KiB–256 KiB through the entry point (Host http.soak.local), echoed back;
 * - TCP: 1 KiB–512 KiB echoed through the TCP visitor (tcp.soak.local);
 * - UDP: sessions of 10 request/response datagrams through the UDP visitor (udp.soak.local).
 *
 * Every transfer is checked by SHA-256 (UDP: byte for byte). A transfer that fails visibly
 * (reset, 503, timeout) is retried up to 4 times and counted under `errors`; it is `lost` when
 * it never succeeds or when it completed with wrong bytes. Client "a" runs the whole time;
 * clients "b" and "c" are restarted in turn every `--restart-every` seconds, alternating a
 * graceful stop (SIGTERM, BURROW_SHUTDOWN_GRACE_MS=10000) and `kill -9`.
 *
 * Every `--sample-every` seconds (default 60) the load is paused, in-flight transfers finish,
 * idle UDP sessions expire (`--settle` seconds), and each process reports (after a forced GC)
 * its RSS, V8 heap in use, open file descriptors and active handles (test/soak/probe.cjs,
 * preloaded with NODE_OPTIONS). After the warm-up (`--warmup` minutes) the samples of the
 * long-lived processes (server, client a, visitors) must not trend upward: a metric fails when
 * both the least-squares growth over the window and the growth between the medians of the first
 * and last thirds exceed its tolerance (RSS: max(10 %, 16 MiB); heap: max(10 %, 4 MiB);
 * fds and handles: 4). Exit code 1 on a lost transfer or an upward trend.
 *
 * Options: --minutes N (default 30), --warmup M (default min(5, N/5)), --sample-every S (60),
 * --restart-every S (60), --settle S (5), --concurrency C (3 HTTP and 3 TCP loops, C/2 UDP
 * loops, each pausing 50–150 ms between transfers), --out FILE (JSON with every sample).
 */
import { randomUUID, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { readdirSync, writeFileSync } from 'node:fs';
import { burrow, stopAll, tempFile, REPO_ROOT, type BurrowProcess, type LogLine } from '../helpers/cli';
import { LOCAL, listenLocal, sha, sleep, tunnelClientYaml } from '../helpers/local';
import { listenEcho, listenUdpEcho, readN } from '../helpers/net';

// ---------------------------------------------------------------------------------------------
// options

function argValue(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${name}: expected a number, got ${process.argv[i + 1]}`);
  return v;
}
function argString(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

const MINUTES = argValue('minutes', 30);
const WARMUP_MIN = argValue('warmup', Math.min(5, MINUTES / 5));
const SAMPLE_EVERY_S = argValue('sample-every', 60);
const RESTART_EVERY_S = argValue('restart-every', 60);
const SETTLE_S = argValue('settle', 5);
const OUT = argString('out');
/** Loops per kind (HTTP and TCP; UDP gets half). */
const CONCURRENCY = Math.max(1, Math.round(argValue('concurrency', 3)));

const TID = randomUUID();
const PROBE = path.join(REPO_ROOT, 'test', 'soak', 'probe.cjs');
const CHILD_ENV = {
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc --require ${PROBE}`.trim(),
  BURROW_SHUTDOWN_GRACE_MS: '10000',
};

const rand = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo + 1));
const MiB = 1024 * 1024;

function log(msg: string): void {
  process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// load gate: the sampler pauses the load and waits for in-flight transfers

class Gate {
  #open = true;
  #inFlight = 0;
  #waiters: Array<() => void> = [];
  #idle: Array<() => void> = [];

  async enter(): Promise<void> {
    while (!this.#open) await new Promise<void>((r) => this.#waiters.push(r));
    this.#inFlight++;
  }
  leave(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) for (const r of this.#idle.splice(0)) r();
  }
  /** Stops new transfers; resolves once none is in flight. */
  async pause(): Promise<void> {
    this.#open = false;
    if (this.#inFlight > 0) await new Promise<void>((r) => this.#idle.push(r));
  }
  resume(): void {
    this.#open = true;
    for (const r of this.#waiters.splice(0)) r();
  }
}

// ---------------------------------------------------------------------------------------------
// targets (in this process)

async function startHttpEchoOrigin(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    req.pipe(res);
  });
  server.keepAliveTimeout = 5_000;
  return listenLocal(server);
}

// ---------------------------------------------------------------------------------------------
// transfers

interface Stats {
  ok: number;
  errors: number;
  lost: number;
  bytes: number;
  lastErrors: string[];
}
const stats: Record<'http' | 'tcp' | 'udp', Stats> = {
  http: { ok: 0, errors: 0, lost: 0, bytes: 0, lastErrors: [] },
  tcp: { ok: 0, errors: 0, lost: 0, bytes: 0, lastErrors: [] },
  udp: { ok: 0, errors: 0, lost: 0, bytes: 0, lastErrors: [] },
};
/** Silent corruption (completed with the wrong bytes): never retried, always a failure. */
const corrupted: string[] = [];

class Corrupted extends Error {}

function noteError(kind: keyof typeof stats, err: Error): void {
  stats[kind].errors++;
  const l = stats[kind].lastErrors;
  l.push(`${new Date().toISOString().slice(11, 23)} ${err.message}`);
  if (l.length > 20) l.shift();
}

let httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function httpTransfer(ep: number, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: LOCAL,
        port: ep,
        method: 'POST',
        path: `/echo/${body.length}`,
        headers: { host: 'http.soak.local', 'content-length': String(body.length) },
        agent: httpAgent,
        setHost: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
          const got = Buffer.concat(chunks);
          if (!res.complete) return reject(new Error(`HTTP response aborted after ${got.length} bytes`));
          if (sha(got) !== sha(body)) return reject(new Corrupted(`HTTP body of ${body.length} bytes came back as ${got.length} bytes with another SHA-256`));
          resolve();
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error('HTTP transfer timed out after 30 s')), 30_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

async function tcpTransfer(port: number, data: Buffer): Promise<void> {
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect({ port, host: LOCAL, allowHalfOpen: true, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
  sock.on('error', () => undefined);
  try {
    sock.write(data);
    let got: Buffer;
    try {
      got = await readN(sock, data.length, 30_000);
    } catch (err) {
      throw new Error(`TCP echo of ${data.length} bytes: ${(err as Error).message}`, { cause: err });
    }
    if (sha(got.subarray(0, data.length)) !== sha(data) || got.length !== data.length) {
      throw new Corrupted(`TCP echo of ${data.length} bytes came back as ${got.length} bytes with another SHA-256`);
    }
    // Everything came back: close our side, let the FIN travel, then release the socket.
    sock.resume();
    sock.end();
    await new Promise<void>((r) => {
      const t = setTimeout(r, 5_000);
      sock.once('close', () => {
        clearTimeout(t);
        r();
      });
    });
  } finally {
    sock.destroy();
  }
}

async function udpSession(port: number): Promise<{ bytes: number }> {
  const sock = dgram.createSocket('udp4');
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  sock.on('message', (m) => {
    queue.push(m);
    wake?.();
  });
  sock.on('error', () => undefined);
  await new Promise<void>((r) => sock.bind(0, LOCAL, () => r()));
  let bytes = 0;
  try {
    for (let i = 0; i < 10; i++) {
      const d = randomBytes(rand(16, 1200));
      d.writeUInt32BE(i, 0);
      let answered = false;
      for (let attempt = 0; attempt < 4 && !answered; attempt++) {
        if (attempt > 0) noteError('udp', new Error(`datagram #${i} unanswered, resending`));
        await new Promise<void>((res, rej) => sock.send(d, port, LOCAL, (e) => (e ? rej(e) : res())));
        const deadline = Date.now() + 1_000;
        while (!answered && Date.now() < deadline) {
          const m = queue.shift();
          if (m) {
            if (m.equals(d)) answered = true;
            else if (m.length >= 4 && m.readUInt32BE(0) === i) throw new Corrupted(`UDP datagram #${i} came back altered`);
            continue;
          }
          await new Promise<void>((r) => {
            const t = setTimeout(r, Math.max(1, deadline - Date.now()));
            wake = () => {
              clearTimeout(t);
              r();
            };
          });
          wake = undefined;
        }
      }
      if (!answered) throw new Error(`UDP datagram #${i} unanswered after 4 sends`);
      bytes += d.length * 2;
    }
  } finally {
    sock.close();
  }
  return { bytes };
}

/** One transfer with up to 4 retries; records errors, losses and corruption. */
async function attempt(kind: keyof typeof stats, bytes: number, fn: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 5; i++) {
    try {
      const r = (await fn()) as { bytes?: number } | undefined;
      stats[kind].ok++;
      stats[kind].bytes += r?.bytes ?? bytes;
      return;
    } catch (err) {
      if (err instanceof Corrupted) {
        corrupted.push(`${new Date().toISOString()} ${kind}: ${err.message}`);
        stats[kind].lost++;
        return;
      }
      if (kind !== 'udp') noteError(kind, err as Error);
      await sleep(200);
    }
  }
  stats[kind].lost++;
}

// ---------------------------------------------------------------------------------------------
// processes and samples

interface Sample {
  minute: number;
  role: string;
  pid: number;
  rss: number;
  heapUsed: number;
  fds: number;
  handles: number;
}

async function probe(p: BurrowProcess, role: string, minute: number): Promise<Sample | undefined> {
  if (!p.alive) return undefined;
  const from = p.mark();
  const wait = p.waitFor((l: LogLine) => l.soakProbe === true, { from, timeoutMs: 5_000, what: 'probe line' });
  p.proc.kill('SIGUSR2');
  const l = (await wait) as LogLine & { rss: number; heapUsed: number; fds: number; handles: number };
  return { minute, role, pid: p.pid, rss: l.rss, heapUsed: l.heapUsed, fds: l.fds, handles: l.handles };
}

function selfSample(minute: number): Sample {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const h = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {
    /* not Linux */
  }
  return { minute, role: 'driver', pid: process.pid, rss: m.rss, heapUsed: m.heapUsed, fds, handles: h };
}

/** The client: HTTP (by Host) and TCP behind one rtcp service, UDP behind one rudp service. */
function clientConfig(serverPort: number, httpPort: number, echoPort: number, udpPort: number): string {
  return tunnelClientYaml(serverPort, TID, [
    {
      name: 'rtcp',
      type: 'rtcp',
      nodes: [
        { name: 'http', addr: `${LOCAL}:${httpPort}`, host: 'http.soak.local' },
        { name: 'tcp', addr: `${LOCAL}:${echoPort}` },
      ],
    },
    { name: 'rudp', type: 'rudp', nodes: [{ name: 'udp', addr: `${LOCAL}:${udpPort}` }] },
  ]);
}

async function startClient(name: string, cfg: string): Promise<BurrowProcess> {
  const p = burrow(['-C', cfg], { name, env: CHILD_ENV });
  await Promise.all([p.tunnelCreated({ network: 'tcp', timeoutMs: 20_000 }), p.tunnelCreated({ network: 'udp', timeoutMs: 20_000 })]);
  return p;
}

// ---------------------------------------------------------------------------------------------
// trend

interface Trend {
  role: string;
  metric: keyof Pick<Sample, 'rss' | 'heapUsed' | 'fds' | 'handles'>;
  n: number;
  first: number;
  last: number;
  min: number;
  max: number;
  growthFit: number;
  growthMedians: number;
  tolerance: number;
  rising: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function trend(role: string, metric: Trend['metric'], samples: Sample[]): Trend | undefined {
  const pts = samples.filter((s) => s.role === role && s.minute >= WARMUP_MIN);
  if (pts.length < 3) return undefined;
  const xs = pts.map((p) => p.minute);
  const ys = pts.map((p) => p[metric]);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  const slope = den > 0 ? num / den : 0;
  const growthFit = slope * (xs[xs.length - 1]! - xs[0]!);
  const third = Math.max(1, Math.floor(ys.length / 3));
  const growthMedians = median(ys.slice(-third)) - median(ys.slice(0, third));
  const base = median(ys);
  const tolerance =
    metric === 'rss' ? Math.max(0.1 * base, 16 * MiB) : metric === 'heapUsed' ? Math.max(0.1 * base, 4 * MiB) : 4;
  return {
    role,
    metric,
    n: ys.length,
    first: ys[0]!,
    last: ys[ys.length - 1]!,
    min: Math.min(...ys),
    max: Math.max(...ys),
    growthFit,
    growthMedians,
    tolerance,
    rising: growthFit > tolerance && growthMedians > tolerance,
  };
}

const fmtMiB = (n: number): string => (n / MiB).toFixed(1);
function fmt(metric: Trend['metric'], n: number): string {
  return metric === 'rss' || metric === 'heapUsed' ? `${fmtMiB(n)} MiB` : String(Math.round(n * 10) / 10);
}

// ---------------------------------------------------------------------------------------------
// main

async function main(): Promise<void> {
  const startedAt = Date.now();
  const endAt = startedAt + MINUTES * 60_000;
  log(`soak: ${MINUTES} min, warm-up ${WARMUP_MIN} min, samples every ${SAMPLE_EVERY_S} s, restarts every ${RESTART_EVERY_S} s, tunnel ${TID}`);

  const origin = await startHttpEchoOrigin();
  const echo = await listenEcho();
  const udpEcho = await listenUdpEcho();

  const server = burrow(['-L', `tunnel://${LOCAL}:0?entrypoint=${LOCAL}:0&tunnel=.soak.local:${TID}`], { name: 'server', env: CHILD_ENV });
  const serverPort = await server.listeningPort();
  const ep = await server.entrypointPort();
  const cfg = tempFile('soak-client.yaml', clientConfig(serverPort, origin.port, echo.port, udpEcho.port));
  const clients: Record<'a' | 'b' | 'c', BurrowProcess> = {
    a: await startClient('client-a', cfg),
    b: await startClient('client-b', cfg),
    c: await startClient('client-c', cfg),
  };
  const tcpVisitor = burrow(['-L', `tcp://${LOCAL}:0/tcp.soak.local:7000`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${TID}`], {
    name: 'visitor-tcp',
    env: CHILD_ENV,
  });
  const udpVisitor = burrow(
    ['-L', `udp://${LOCAL}:0/udp.soak.local:5353?keepalive=true&ttl=2s`, '-F', `tunnel://${LOCAL}:${serverPort}?tunnel.id=${TID}`],
    { name: 'visitor-udp', env: CHILD_ENV },
  );
  const tcpPort = await tcpVisitor.listeningPort();
  const udpPort = await udpVisitor.listeningPort({ network: 'udp' });
  log(`server ${serverPort}, entry point ${ep}, tcp visitor ${tcpPort}, udp visitor ${udpPort}`);

  const gate = new Gate();
  let running = true;
  const loops: Promise<void>[] = [];
  const loop = (fn: () => Promise<void>): void => {
    loops.push(
      (async () => {
        while (running) {
          await gate.enter();
          try {
            if (running) await fn();
          } finally {
            gate.leave();
          }
          await sleep(rand(50, 150));
        }
      })(),
    );
  };
  for (let i = 0; i < CONCURRENCY; i++) {
    loop(async () => {
      const body = randomBytes(rand(1024, 256 * 1024));
      await attempt('http', body.length * 2, () => httpTransfer(ep, body));
    });
    loop(async () => {
      const data = randomBytes(rand(1024, 512 * 1024));
      await attempt('tcp', data.length * 2, () => tcpTransfer(tcpPort, data));
    });
  }
  for (let i = 0; i < Math.max(1, CONCURRENCY >> 1); i++) loop(() => attempt('udp', 0, () => udpSession(udpPort)));

  const samples: Sample[] = [];
  const restarts: Array<{ at: string; client: string; mode: string; ms: number; exit: string }> = [];
  const long: Array<[string, () => BurrowProcess]> = [
    ['server', () => server],
    ['client-a', () => clients.a],
    ['client-b', () => clients.b],
    ['client-c', () => clients.c],
    ['visitor-tcp', () => tcpVisitor],
    ['visitor-udp', () => udpVisitor],
  ];

  async function sampleAll(minute: number): Promise<void> {
    await gate.pause();
    httpAgent.destroy();
    httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    await sleep(SETTLE_S * 1000);
    for (const [role, get] of long) {
      try {
        const s = await probe(get(), role, minute);
        if (s) samples.push(s);
      } catch (err) {
        log(`probe ${role}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    samples.push(selfSample(minute));
    gate.resume();
    const cur = samples.filter((s) => s.minute === minute);
    log(
      `minute ${minute.toFixed(1)}: ` +
        cur.map((s) => `${s.role} rss=${fmtMiB(s.rss)} heap=${fmtMiB(s.heapUsed)} fds=${s.fds} h=${s.handles}`).join(' | '),
    );
    log(
      `  transfers: ` +
        (Object.keys(stats) as Array<keyof typeof stats>)
          .map((k) => `${k} ok=${stats[k].ok} err=${stats[k].errors} lost=${stats[k].lost} ${fmtMiB(stats[k].bytes)} MiB`)
          .join(', '),
    );
  }

  async function restart(which: 'b' | 'c', mode: 'graceful' | 'kill'): Promise<void> {
    const t0 = Date.now();
    const p = clients[which];
    let exit: string;
    if (mode === 'graceful') {
      p.proc.kill('SIGTERM');
      const r = await Promise.race([p.exited, sleep(20_000).then(() => undefined)]);
      if (!r) {
        p.proc.kill('SIGKILL');
        await p.exited;
        exit = 'no exit within 20 s after SIGTERM (killed)';
      } else exit = `code ${r.code}`;
    } else {
      p.proc.kill('SIGKILL');
      await p.exited;
      exit = 'SIGKILL';
    }
    clients[which] = await startClient(`client-${which}`, cfg);
    restarts.push({ at: new Date(t0).toISOString(), client: which, mode, ms: Date.now() - t0, exit });
    log(`restarted client-${which} (${mode}, ${exit}) in ${Date.now() - t0} ms`);
  }

  await sampleAll(0);
  let nextSample = startedAt + SAMPLE_EVERY_S * 1000;
  let nextRestart = startedAt + RESTART_EVERY_S * 500;
  let restartNo = 0;
  while (Date.now() < endAt) {
    const now = Date.now();
    if (now >= nextSample) {
      await sampleAll((now - startedAt) / 60_000);
      nextSample += SAMPLE_EVERY_S * 1000;
      continue;
    }
    if (RESTART_EVERY_S > 0 && now >= nextRestart) {
      const which = restartNo % 2 === 0 ? 'b' : 'c';
      const mode = Math.floor(restartNo / 2) % 2 === 0 ? 'graceful' : 'kill';
      restartNo++;
      try {
        await restart(which, mode);
      } catch (err) {
        log(`restart client-${which} failed: ${(err as Error).message.split('\n')[0]}`);
        corrupted.push(`restart of client-${which} failed: ${(err as Error).message.split('\n')[0]}`);
      }
      nextRestart += RESTART_EVERY_S * 1000;
      continue;
    }
    await sleep(Math.min(500, Math.max(10, Math.min(nextSample, nextRestart, endAt) - now)));
  }
  await sampleAll((Date.now() - startedAt) / 60_000);
  running = false;
  gate.resume();
  await Promise.all(loops);
  httpAgent.destroy();

  // ---- report
  const trends: Trend[] = [];
  for (const role of ['server', 'client-a', 'visitor-tcp', 'visitor-udp']) {
    for (const metric of ['rss', 'heapUsed', 'fds', 'handles'] as const) {
      const t = trend(role, metric, samples);
      if (t) trends.push(t);
    }
  }
  const lost = stats.http.lost + stats.tcp.lost + stats.udp.lost;
  const rising = trends.filter((t) => t.rising);

  const out: string[] = [];
  out.push('');
  out.push(`## Soak: ${MINUTES} min, warm-up ${WARMUP_MIN} min, ${restarts.length} client restarts`);
  out.push('');
  out.push('| transfers | ok | visible errors (retried) | lost | MiB moved |');
  out.push('| --- | ---: | ---: | ---: | ---: |');
  for (const k of Object.keys(stats) as Array<keyof typeof stats>) {
    out.push(`| ${k} | ${stats[k].ok} | ${stats[k].errors} | ${stats[k].lost} | ${fmtMiB(stats[k].bytes)} |`);
  }
  out.push('');
  out.push('| process | metric | samples | first | last | min | max | growth (fit) | growth (medians) | tolerance | verdict |');
  out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const t of trends) {
    out.push(
      `| ${t.role} | ${t.metric} | ${t.n} | ${fmt(t.metric, t.first)} | ${fmt(t.metric, t.last)} | ${fmt(t.metric, t.min)} | ${fmt(t.metric, t.max)} | ${fmt(t.metric, t.growthFit)} | ${fmt(t.metric, t.growthMedians)} | ${fmt(t.metric, t.tolerance)} | ${t.rising ? 'RISING' : 'flat'} |`,
    );
  }
  out.push('');
  out.push('Per-sample figures (after a forced GC, load paused):');
  out.push('');
  const roles = [...new Set(samples.map((s) => s.role))];
  out.push(`| minute | ${roles.map((r) => `${r} rss/heap MiB, fds, handles`).join(' | ')} |`);
  out.push(`| ---: | ${roles.map(() => '---').join(' | ')} |`);
  const minutes = [...new Set(samples.map((s) => s.minute))];
  for (const m of minutes) {
    const cells = roles.map((r) => {
      const s = samples.find((x) => x.minute === m && x.role === r);
      return s ? `${fmtMiB(s.rss)}/${fmtMiB(s.heapUsed)}, ${s.fds}, ${s.handles}` : '–';
    });
    out.push(`| ${m.toFixed(1)} | ${cells.join(' | ')} |`);
  }
  out.push('');
  out.push(`Restarts: ${restarts.map((r) => `${r.client}/${r.mode} ${r.ms} ms (${r.exit})`).join('; ') || 'none'}`);
  for (const k of Object.keys(stats) as Array<keyof typeof stats>) {
    if (stats[k].lastErrors.length) out.push(`Last ${k} errors: ${stats[k].lastErrors.slice(-5).join(' | ')}`);
  }
  if (corrupted.length) out.push(`Corrupted / failed: ${corrupted.join(' | ')}`);
  // What the server said about the visible errors (503s carry their reason in its log).
  const serverErrors = server.lines.filter((l) => l.level === 'error' || l.level === 'warn');
  if (serverErrors.length) {
    out.push(`Server warnings/errors (${serverErrors.length}, last 10):`);
    for (const l of serverErrors.slice(-10)) out.push(`  ${String(l.time)} ${l.level} ${String(l.msg)}`);
  }
  process.stdout.write(out.join('\n') + '\n');

  if (OUT) writeFileSync(OUT, JSON.stringify({ minutes: MINUTES, warmup: WARMUP_MIN, stats, corrupted, restarts, samples, trends }, null, 2));

  await stopAll();
  await Promise.all([origin.close(), echo.close(), udpEcho.close()]);

  const failures: string[] = [];
  if (lost > 0) failures.push(`${lost} transfer(s) lost`);
  if (corrupted.length) failures.push(`${corrupted.length} corrupted transfer(s) or failed restart(s)`);
  for (const t of rising) failures.push(`${t.role} ${t.metric} rises by ${fmt(t.metric, t.growthFit)} (tolerance ${fmt(t.metric, t.tolerance)})`);
  const total = stats.http.ok + stats.tcp.ok + stats.udp.ok;
  if (total === 0) failures.push('no transfer completed');
  // The plain closing line (N passed, N failed) so CI-style readers can count it.
  const checks = trends.length + 2;
  const failedChecks = rising.length + (lost > 0 ? 1 : 0) + (corrupted.length || total === 0 ? 1 : 0);
  process.stdout.write(`soak: ${checks - failedChecks} passed, ${failedChecks} failed\n`);
  if (failures.length) {
    process.stdout.write(`SOAK FAILED: ${failures.join('; ')}\n`);
    process.exit(1);
  }
  process.stdout.write('SOAK PASSED\n');
  process.exit(0);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`soak: ${(err as Error)?.stack ?? String(err)}\n`);
  await stopAll().catch(() => undefined);
  process.exit(1);
});
