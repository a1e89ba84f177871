/**
 * External load generators: iperf3 and wrk from Debian's packages. `ensureTools` installs them
 * when missing (idempotent: nothing happens when both are on PATH); the runners parse their
 * output into numbers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Child } from './proc';
import { HOST, sleep } from './util';

export interface ToolInfo {
  iperf3?: string;
  wrk?: string;
  /** Found on PATH (or /usr/sbin), never installed by the bench: the HTTPS cases' baseline and tools. */
  nginx?: string;
  h2load?: string;
  openssl?: string;
  notes: string[];
}

function has(cmd: string): boolean {
  return spawnSync('/bin/sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function version(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return undefined;
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]?.replace(/\s*Copyright.*$/, '').trim();
  return text || 'unknown';
}

/** nginx's binary: on PATH, or Debian's /usr/sbin/nginx (not on a non-root PATH). */
export function nginxPath(): string | undefined {
  if (has('nginx')) return 'nginx';
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : undefined;
}

/**
 * Makes sure iperf3 and wrk are installed (apt-get, as root or with passwordless sudo). */
export function ensureTools(log: (msg: string) => void): ToolInfo {
  const notes: string[] = [];
  const missing = ['iperf3', 'wrk'].filter((c) => !has(c));
  if (missing.length) {
    if (!has('apt-get')) {
      notes.push(`${missing.join(', ')} missing and apt-get not available; cases needing them are skipped`);
    } else {
      const root = typeof process.getuid === 'function' && process.getuid() === 0;
      const pre = root ? [] : has('sudo') ? ['sudo', '-n'] : undefined;
      if (!pre) {
        notes.push(`${missing.join(', ')} missing and not root (no sudo); cases needing them are skipped`);
      } else {
        const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
        const apt = (args: string[]): boolean => {
          const cmd = pre.length ? pre[0]! : 'apt-get';
          const full = pre.length ? [...pre.slice(1), 'apt-get', ...args] : args;
          const r = spawnSync(cmd, full, { env, encoding: 'utf8', timeout: 300_000 });
          return r.status === 0;
        };
        log(`installing ${missing.join(' ')} with apt-get`);
        const install = ['install', '-y', '-qq', '--no-install-recommends', ...missing];
        if (!apt(install)) {
          apt(['update', '-qq']);
          if (!apt(install)) notes.push(`apt-get install ${missing.join(' ')} failed; cases needing them are skipped`);
        }
      }
    }
  }
  return {
    iperf3: has('iperf3') ? version('iperf3', ['--version']) : undefined,
    wrk: has('wrk') ? (version('wrk', ['-v']) ?? 'wrk') : undefined,
    nginx: nginxPath() ? version(nginxPath()!, ['-v']) : undefined,
    h2load: has('h2load') ? version('h2load', ['--version']) : undefined,
    openssl: has('openssl') ? version('openssl', ['version']) : undefined,
    notes,
  };
}

/** Runs a command to completion with a deadline; resolves with its output. */
export function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  netns?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (netns) {
    args = ['netns', 'exec', netns, cmd, ...args];
    cmd = 'ip';
  }
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
    p.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// iperf3

export async function startIperfServer(port: number, netns?: string): Promise<Child> {
  const c = new Child({ name: 'iperf3 server', cmd: 'iperf3', args: ['-s', '-B', HOST, '-p', String(port), '--idle-timeout', '20', '--forceflush'], netns });
  await c.waitFor(/Server listening on/, 5000);
  c.quiet();
  return c;
}

export interface IperfOptions {
  port: number;
  seconds: number;
  reverse?: boolean;
  /** UDP at this offered rate (iperf3 -b), e.g. "1G". */
  udpRate?: string;
  /** Datagram / write length (iperf3 -l). */
  len?: number;
  /** Socket buffer (iperf3 -w), e.g. "4M". */
  window?: string;
  /** Parallel streams (iperf3 -P; one iperf3 process, one thread in iperf3 < 3.16). */
  parallel?: number;
  /** Seconds to omit at the start (slow start). */
  omit?: number;
  netns?: string;
}

export interface IperfResult {
  /** Received bit rate. */
  bitsPerSecond: number;
  bytes: number;
  /** Offered (sender) bit rate. */
  sentBitsPerSecond: number;
  lostPercent?: number;
  retransmits?: number;
  /** Datagram / write length iperf3 used. */
  blockBytes?: number;
  /** UDP: datagrams sent. */
  packets?: number;
}

interface IperfJson {
  error?: string;
  start?: { test_start?: { blksize?: number } };
  end?: {
    sum?: { lost_percent?: number; bits_per_second?: number; packets?: number };
    sum_sent?: { bits_per_second?: number; bytes?: number; retransmits?: number };
    sum_received?: { bits_per_second?: number; bytes?: number; lost_percent?: number };
  };
}

export async function runIperf(o: IperfOptions): Promise<IperfResult> {
  const args = ['-c', HOST, '-p', String(o.port), '-t', String(o.seconds), '-J', '--connect-timeout', '5000'];
  if (o.reverse) args.push('-R');
  if (o.udpRate) args.push('-u', '-b', o.udpRate);
  if (o.len) args.push('-l', String(o.len));
  if (o.window) args.push('-w', o.window);
  if (o.parallel && o.parallel > 1) args.push('-P', String(o.parallel));
  if (o.omit) args.push('-O', String(o.omit));
  let lastErr = '';
  const limitSec = o.seconds + (o.omit ?? 0) + 10;
  // "the server is busy": the previous test's control connection is still closing through the
  // tunnel. "Connection refused": between two tests iperf3's server may close its listening socket
  // and open it again (seen once in a full run, on the direct baseline); both pass within moments.
  for (let attempt = 0; attempt < 30; attempt++) {
    const r = await run('iperf3', args, limitSec * 1000, o.netns);
    let j: IperfJson | undefined;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      j = undefined;
    }
    const exit = r.code === null ? `iperf3 did not finish within ${limitSec} s and was killed` : `iperf3 exit ${r.code}`;
    const err = j?.error ?? (j ? undefined : (r.stderr || r.stdout || exit).trim().slice(0, 300));
    if (!err && j?.end?.sum_received) {
      const rec = j.end.sum_received;
      const sent = j.end.sum_sent ?? {};
      return {
        bitsPerSecond: rec.bits_per_second ?? NaN,
        bytes: rec.bytes ?? NaN,
        sentBitsPerSecond: sent.bits_per_second ?? NaN,
        lostPercent: o.udpRate ? (rec.lost_percent ?? j.end.sum?.lost_percent) : undefined,
        retransmits: o.udpRate ? undefined : sent.retransmits,
        blockBytes: j.start?.test_start?.blksize,
        packets: o.udpRate ? j.end.sum?.packets : undefined,
      };
    }
    lastErr = err ?? 'iperf3: no result';
    if (!/busy|connection refused/i.test(lastErr)) break;
    await sleep(200);
  }
  throw new Error(`iperf3 ${args.join(' ')}: ${lastErr}`);
}

// ---------------------------------------------------------------------------------------------
// wrk

export interface WrkOptions {
  url: string;
  seconds: number;
  connections: number;
  threads: number;
  headers?: string[];
  timeoutS?: number;
}

export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  latencyMeanMs: number;
  latencyP50Ms: number;
  latencyP90Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  socketErrors: number;
  non2xx: number;
}

function toMs(v: string, unit: string): number {
  const n = Number(v);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      return NaN;
  }
}

export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const lat = /Latency\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)\s+([\d.]+)(us|ms|s|m)/.exec(out);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    latencyMeanMs: lat ? toMs(lat[1]!, lat[2]!) : NaN,
    latencyMaxMs: lat ? toMs(lat[5]!, lat[6]!) : NaN,
    latencyP50Ms: pct('50'),
    latencyP90Ms: pct('90'),
    latencyP99Ms: pct('99'),
    socketErrors: se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = [
    '-c', String(o.connections),
    '-t', String(o.threads),
    '-d', `${o.seconds}s`,
    '--timeout', `${o.timeoutS ?? 2}s`,
    '--latency',
  ];
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(o.url);
  const r = await run('wrk', args, (o.seconds + 20) * 1000);
  const res = parseWrk(r.stdout);
  if (r.code !== 0 || !Number.isFinite(res.requestsPerSecond)) {
    throw new Error(`wrk ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  }
  if (res.requests === 0) throw new Error(`wrk ${o.url}: no request completed (${res.socketErrors} socket errors)`);
  return res;
}
