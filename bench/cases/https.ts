/**
 * HTTPS at the entry point (TLS terminated by burrow, requests routed through the tunnel to the
 * client's backend) next to nginx doing the same job: one nginx worker terminating TLS with the
 * same certificate in front of the same backend, with a keep-alive upstream pool. Three cases:
 * wrk keep-alive over TLS, wrk with `Connection: close` (a new TLS connection per request) and
 * h2load over HTTP/2.
 *
 * The host name is `localhost`: the clients take the SNI from the URL's host (h2load sends none
 * for an IP address; wrk sends the address itself), so the URL names a host that resolves to
 * 127.0.0.1 and the certificate and the tunnel's ingress rule name the same host. wrk keeps the
 * TLS session of each connection slot, so with `Connection: close` its new connections resume
 * (TLS 1.3 PSK with ECDHE, no certificate signature) against nginx and burrow alike.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CpuMeter, noteLogProblems, startTopology, type Topology } from '../lib/burrow';
import { Child, sampleProc } from '../lib/proc';
import { nginxPath, run, runWrk, type WrkResult } from '../lib/tools';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { HOST, errMsg, freeTcpPort, inTurn, isBenchBug, round, sleep } from '../lib/util';
import { startHttpBackend } from './http';

export const HTTPS_UUID = '7b1e9c42-3f6d-4a8e-b5c0-2d9f8e1a6c03';
/** Resolves to 127.0.0.1 (/etc/hosts), so clients send it as SNI and dial loopback. */
export const HTTPS_HOST = 'localhost';

/** A self-signed ECDSA P-256 certificate for HTTPS_HOST (and IP 127.0.0.1), made with openssl. */
async function makeCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = await run(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${HTTPS_HOST}`,
      '-addext', `subjectAltName=DNS:${HTTPS_HOST},IP:127.0.0.1`,
    ],
    30_000,
  );
  if (r.code !== 0) throw new Error(`openssl req: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return { cert, key };
}

/** Resolves once something accepts TCP connections on HOST:port (nginx prints nothing when ready). */
async function waitListening(port: number, child: Child, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, HOST);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!child.running) throw new Error(`nginx exited before listening${child.tailText()}`);
    if (Date.now() > deadline) throw new Error(`nginx: nothing listening on ${HOST}:${port} within ${timeoutMs} ms${child.tailText()}`);
    await sleep(50);
  }
}

/**
 * Workers of nginx instances not stopped yet. An interrupted bench SIGKILLs its children, nginx's
 * master included, which leaves the worker running (holding its port): killed on exit.
 */
const liveWorkers = new Set<number>();
process.on('exit', () => {
  for (const pid of liveWorkers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export interface Nginx {
  child: Child;
  port: number;
  commandLine: string;
  /** The worker's pid (CPU time is the worker's; the master only waits). */
  workerPid(): number | undefined;
  stop(): Promise<void>;
}

/**
 * Debian's nginx with one worker, TLS 1.2/1.3 and HTTP/2 on 127.0.0.1:<free port>, proxying to
 * the backend through a keep-alive pool. Everything (config, pid, logs, temp files) lives in
 * `dir`; no `user` directive (as root the workers run as nginx's default user, otherwise as the
 * caller).
 */
export async function startNginx(dir: string, backendPort: number, tls: { cert: string; key: string }): Promise<Nginx> {
  const bin = nginxPath();
  if (!bin) throw new Error('nginx not found');
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freeTcpPort();
    const t = (name: string): string => path.join(dir, name);
    const conf = `worker_processes 1;
pid ${t('nginx.pid')};
error_log ${t('logs/error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  # nginx ends a connection after 1,000 requests by default (HTTP/1.1 and HTTP/2); burrow has no
  # such limit, and h2load does not reconnect after the GOAWAY, so the limit is lifted here.
  keepalive_requests 1000000;
  client_body_temp_path ${t('client_body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  upstream backend {
    server ${HOST}:${backendPort};
    keepalive 64;
  }
  server {
    listen ${HOST}:${port} ssl http2;
    server_name ${HTTPS_HOST};
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
    writeFileSync(t('nginx.conf'), conf);
    const args = ['-p', dir, '-e', t('logs/error.log'), '-c', t('nginx.conf'), '-g', 'daemon off;'];
    const child = new Child({ name: 'nginx', cmd: bin, args });
    try {
      await waitListening(port, child, 15_000);
    } catch (err) {
      await child.stop();
      let log = '';
      try {
        log = readFileSync(t('logs/error.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
      } catch {
        /* no log yet */
      }
      last = new Error(`${errMsg(err)}${log ? `\n  nginx error.log:\n${log}` : ''}`);
      if (/Address already in use/i.test(log)) continue;
      throw last;
    }
    let worker: number | undefined;
    const workerPid = (): number | undefined => {
      if (worker === undefined) {
        try {
          const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
          if (kids.length) liveWorkers.add((worker = Number(kids[0])));
        } catch {
          /* not forked yet, or gone */
        }
      }
      return worker;
    };
    workerPid();
    return {
      child,
      port,
      commandLine: `${bin} ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`,
      workerPid,
      async stop() {
        await child.stop();
        if (worker !== undefined) liveWorkers.delete(worker);
      },
    };
  }
  throw last;
}

export interface H2loadResult {
  requestsPerSecond: number;
  succeeded: number;
  failed: number;
  latencyMeanMs: number;
}

function h2Ms(v: string, unit: string): number {
  const n = Number(v);
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : NaN;
}

export function parseH2load(out: string): H2loadResult {
  const rps = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(out);
  const lat = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(out);
  return {
    requestsPerSecond: rps ? Number(rps[1]) : NaN,
    succeeded: req ? Number(req[1]) : NaN,
    failed: req ? Number(req[2]) : NaN,
    latencyMeanMs: lat ? h2Ms(lat[5]!, lat[6]!) : NaN,
  };
}

/** h2load over https for `seconds` (-D), 10 connections with 10 streams each. */
export async function runH2load(url: string, seconds: number): Promise<H2loadResult> {
  const args = ['-D', String(seconds), '-c', '10', '-m', '10', '-t', '1', url];
  const r = await run('h2load', args, (seconds + 30) * 1000);
  const res = parseH2load(r.stdout);
  if (r.code !== 0 || !Number.isFinite(res.requestsPerSecond)) {
    throw new Error(`h2load ${args.join(' ')}: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-300)}`);
  }
  if (!(res.succeeded > 0)) throw new Error(`h2load ${url}: no request succeeded (${res.failed} failed)`);
  return res;
}

type Kind = 'keepalive' | 'cps' | 'h2';

interface One {
  rps: number;
  meanMs: number;
  p99Ms: number;
  errors: number;
  /** CPU seconds of the terminating process(es) over the measurement. */
  cpuSeconds: number;
  requests: number;
}

function httpsCase(kind: Kind): CaseDef {
  const ids: Record<Kind, string> = { keepalive: 'https-keepalive', cps: 'https-new-connections', h2: 'h2' };
  const titles: Record<Kind, string> = {
    keepalive: 'HTTPS terminated at the entry point, wrk -c 50 keep-alive over TLS, tiny body',
    cps: 'New TLS connections per second at the entry point (wrk over TLS, Connection: close)',
    h2: 'HTTP/2 over TLS at the entry point (h2load -c 10 -m 10)',
  };
  return {
    id: ids[kind],
    title: titles[kind],
    baselineLabel: 'nginx (1 worker) terminating TLS in front of the same backend',
    // Two measurements plus nginx, openssl and a topology: several seconds even in --smoke.
    smoke: false,
    needs: kind === 'h2' ? ['nginx', 'openssl', 'h2load'] : ['nginx', 'openssl', 'wrk'],
    async run(ctx: CaseContext, out: CaseResult): Promise<void> {
      const p = ctx.params;
      const dir = mkdtempSync(path.join(ctx.env.home, `${ids[kind]}-`));
      const backend = await startHttpBackend();
      let topo: Topology | undefined;
      let nginx: Nginx | undefined;
      let meter: CpuMeter | undefined;
      const headers = [`Host: ${HTTPS_HOST}`];
      if (kind === 'cps') headers.push('Connection: close');
      out.notes.push(
        kind === 'h2'
          ? `h2load -D ${p.httpSeconds} -c 10 -m 10 -t 1 https://${HTTPS_HOST}:<port>/`
          : `wrk -c 50 -t 2 -d ${p.httpSeconds}s --latency ${headers.map((h) => `-H '${h}'`).join(' ')} https://${HTTPS_HOST}:<port>/`,
        'certificate: self-signed ECDSA P-256 (openssl), the same file for nginx and burrow; TLS 1.2/1.3 offered, both tools negotiate TLS 1.3',
      );
      try {
        const tls = await makeCertificate(dir);
        nginx = await startNginx(path.join(dir, 'nginx'), backend.port, tls);
        topo = await startTopology({
          transport: 'tcp',
          targetPort: backend.port,
          host: HTTPS_HOST,
          uuid: HTTPS_UUID,
          visitor: false,
          entrypoint: true,
          serverQuery: [`entrypoint.certFile=${tls.cert}`, `entrypoint.keyFile=${tls.key}`],
          env: ctx.env,
        });
        out.commands = { ...topo.commands, nginx: nginx.commandLine };
        meter = new CpuMeter(topo.procs);
        const ng = nginx;
        const tp = topo;
        const measure = async (port: number, seconds: number): Promise<Omit<One, 'cpuSeconds'>> => {
          const url = `https://${HTTPS_HOST}:${port}/`;
          if (kind === 'h2') {
            const r = await runH2load(url, seconds);
            return { rps: r.requestsPerSecond, meanMs: r.latencyMeanMs, p99Ms: NaN, errors: r.failed, requests: r.succeeded };
          }
          const r: WrkResult = await runWrk({ url, seconds, connections: 50, threads: 2, headers });
          return {
            rps: r.requestsPerSecond,
            meanMs: r.latencyMeanMs,
            p99Ms: r.latencyP99Ms,
            errors: r.socketErrors + r.non2xx,
            requests: r.requests,
          };
        };
        if (p.warmupSeconds > 0) {
          await measure(tp.entryPort!, p.warmupSeconds).catch(() => undefined);
          await measure(ng.port, p.warmupSeconds).catch(() => undefined);
        }
        const base: Array<One | undefined> = [];
        const ours: Array<One | undefined> = [];
        try {
          for (let i = 0; i < p.runs; i++) {
            const doNginx = async (): Promise<void> => {
              const pid = ng.workerPid();
              const a = sampleProc(pid);
              try {
                const r = await measure(ng.port, p.httpSeconds);
                const b = sampleProc(pid);
                base[i] = { ...r, cpuSeconds: a && b ? b.cpuSeconds - a.cpuSeconds : NaN };
              } catch (err) {
                out.errors.push(`run ${i + 1} nginx: ${errMsg(err)}`);
              }
            };
            const doBurrow = async (): Promise<void> => {
              meter!.begin();
              const a = tp.server.sample();
              try {
                const r = await measure(tp.entryPort!, p.httpSeconds);
                const b = tp.server.sample();
                ours[i] = { ...r, cpuSeconds: a && b ? b.cpuSeconds - a.cpuSeconds : NaN };
              } catch (err) {
                const dead = tp.failed();
                out.errors.push(`run ${i + 1} burrow: ${errMsg(err)}${dead ? `; ${dead}` : ''}`);
              } finally {
                meter!.end();
              }
            };
            await inTurn(i, doNginx, doBurrow);
            const b = ours[i];
            const d = base[i];
            out.runs.push({
              run: i,
              nginxRps: d && round(d.rps, 4),
              burrowRps: b && round(b.rps, 4),
              nginxMeanMs: d && round(d.meanMs, 3),
              burrowMeanMs: b && round(b.meanMs, 3),
              nginxP99Ms: d && round(d.p99Ms, 3),
              burrowP99Ms: b && round(b.p99Ms, 3),
              nginxWorkerCpuUsPerReq: d && round((d.cpuSeconds / d.requests) * 1e6, 3),
              burrowServerCpuUsPerReq: b && round((b.cpuSeconds / b.requests) * 1e6, 3),
              nginxErrors: d?.errors,
              burrowErrors: b?.errors,
            });
            const dead = tp.failed();
            if (dead) throw new Error(dead);
            if (!ng.child.running) throw new Error(`nginx exited${ng.child.tailText()}`);
          }
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(errMsg(err));
        }
        const col = (xs: Array<One | undefined>, f: (r: One) => number): number[] =>
          Array.from({ length: p.runs }, (_, i) => (xs[i] ? f(xs[i]!) : NaN));
        const rate = kind === 'cps' ? 'new TLS connections' : 'requests';
        const unit = kind === 'cps' ? 'conn/s' : 'req/s';
        const target =
          kind === 'keepalive'
            ? { target: '≥ 40% of nginx', check: (m: { ratio?: { median: number } }) => (m.ratio ? m.ratio.median >= 0.4 : undefined) }
            : kind === 'cps'
              ? { target: '≥ 50% of nginx', check: (m: { ratio?: { median: number } }) => (m.ratio ? m.ratio.median >= 0.5 : undefined) }
              : {};
        out.metrics.push(
          metric(rate, unit, col(ours, (r) => r.rps), col(base, (r) => r.rps), target),
          metric('mean latency', 'ms', col(ours, (r) => r.meanMs), col(base, (r) => r.meanMs), { ratio: false }),
        );
        if (kind !== 'h2') {
          out.metrics.push(
            metric('p99 latency', 'ms', col(ours, (r) => r.p99Ms), col(base, (r) => r.p99Ms), {
              ratio: false,
              ...(kind === 'keepalive' ? { target: '< 15 ms', check: (m) => m.burrow!.median < 15 } : {}),
            }),
          );
        }
        out.metrics.push(
          metric(
            'CPU per request: burrow server / nginx worker',
            'µs',
            col(ours, (r) => (r.cpuSeconds / r.requests) * 1e6),
            col(base, (r) => (r.cpuSeconds / r.requests) * 1e6),
          ),
          metric(kind === 'h2' ? 'failed requests' : 'errors (socket + non-2xx)', '', col(ours, (r) => r.errors), col(base, (r) => r.errors), {
            ratio: false,
          }),
        );
      } finally {
        if (meter) out.processes = meter.report();
        if (topo) noteLogProblems(topo.procs, out.notes);
        await topo?.stop();
        await nginx?.stop();
        await backend.child.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export const httpsKeepalive = httpsCase('keepalive');
export const httpsNewConnections = httpsCase('cps');
export const h2Requests = httpsCase('h2');
