/**
 * Many concurrent idle TCP connections through one tunnel (visitor → server → one smux session
 * → client → backend). A connection counts as open when a byte written by the backend on
 * accept has come back through the whole path. Reported: time to open all, and how much the
 * resident memory of the burrow server and client grew per connection (from /proc, after a
 * small un-counted warm-up so one-time costs such as JIT code do not count).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, noteLogProblems, startTopology, type Topology } from '../lib/burrow';
import { Child } from '../lib/proc';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { errMsg, isBenchBug, round, sleep } from '../lib/util';
import { IPERF_HOST, TUNNEL_UUID } from './stream';

export const NOFILE = 65536;
/** Connections still being set up at a time (burrow's tcp listeners use a backlog of 128). */
export const CONCURRENCY = 100;

/** System-wide TCP counters (TcpExt) that show SYNs dropped on full accept queues. */
function listenCounters(): { overflows: number; synRetrans: number } {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const keys = lines[0]!.split(/\s+/);
    const vals = lines[1]!.split(/\s+/);
    const get = (k: string): number => Number(vals[keys.indexOf(k)]);
    return { overflows: get('ListenOverflows'), synRetrans: get('TCPSynRetrans') };
  } catch {
    return { overflows: NaN, synRetrans: NaN };
  }
}

interface Opened {
  ok: number;
  failed: number;
  elapsedMs: number;
  errors: Record<string, number>;
}

/** One endpoint process (bench/endpoints/idle-conns.ts) in the `backend` or `clients` role. */
class IdleEndpoint {
  readonly child: Child;
  #events: Array<Record<string, unknown>> = [];
  #wake: (() => void) | undefined;

  constructor(role: 'backend' | 'clients') {
    this.child = new Child({
      name: `idle connections ${role}`,
      cmd: process.execPath,
      args: ['--import', 'tsx', path.join(ROOT, 'bench', 'endpoints', 'idle-conns.ts'), role],
      cwd: ROOT,
      nofile: NOFILE,
    });
    this.child.onLine((line) => {
      if (!line.startsWith('{')) return;
      try {
        this.#events.push(JSON.parse(line) as Record<string, unknown>);
        this.#wake?.();
      } catch {
        /* not ours */
      }
    });
  }

  async next(event: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#events.findIndex((e) => e.event === event);
      if (i >= 0) return this.#events.splice(i, 1)[0]!;
      if (!this.child.running) throw new Error(`${this.child.name} exited${this.child.tailText()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.child.name}: no "${event}" within ${timeoutMs} ms${this.child.tailText()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async open(ports: number[], count: number, timeoutMs: number): Promise<Opened> {
    this.child.send(JSON.stringify({ cmd: 'open', ports, count, concurrency: CONCURRENCY, timeoutMs }));
    return (await this.next('opened', timeoutMs + 15000)) as unknown as Opened;
  }

  async closeAll(): Promise<void> {
    this.child.send(JSON.stringify({ cmd: 'close' }));
    await this.next('closed', 15000);
  }
}

/** The open-files limit a child gets after trying to raise it to NOFILE. */
function effectiveNofile(): number {
  const r = spawnSync('/bin/sh', ['-c', `ulimit -n ${NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; ulimit -n`], {
    encoding: 'utf8',
  });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 1024;
}

function fmtErrors(e: Record<string, number>): string {
  return Object.entries(e)
    .map(([k, v]) => `${v}× ${k}`)
    .join(', ');
}

export const idleConnections: CaseDef = {
  id: 'idle-connections',
  title: 'Concurrent idle TCP connections through one tunnel',
  baselineLabel: '—',
  smoke: true,
  needs: [],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const openS: number[] = [];
    const opened: number[] = [];
    const perConn: number[] = [];
    const perConnServer: number[] = [];
    const perConnClient: number[] = [];
    const perConnVisitors: number[] = [];
    // A visitor holds two descriptors per connection (accepted + its own to the server); when
    // the file limit cannot be raised enough, the load is spread over several visitors. The
    // server and the client (what the RSS target is about) still carry every connection.
    const limit = effectiveNofile();
    const perVisitor = Math.max(100, Math.floor((limit - 256) / 2));
    // Server, client and the endpoint processes need one descriptor per connection (plus a margin); more
    // than four visitors would measure process count rather than the tunnel.
    const n = Math.max(100, Math.min(p.idleConnections, limit - 512, 4 * perVisitor));
    const visitors = Math.max(1, Math.ceil(n / perVisitor));
    if (n < p.idleConnections) {
      out.notes.push(`reduced to ${n} connections: the open-files limit is ${limit} and cannot be raised here`);
    }
    out.notes.push(
      `${n} connections, at most ${CONCURRENCY} connecting at a time; open = the backend's first byte arrived through the tunnel; ` +
        `RSS growth = VmRSS after all are open (1 s settle) minus VmRSS before (after a 100-connection warm-up)`,
    );
    out.notes.push(
      `open-files limit per process: ${limit}${limit < NOFILE ? ` (could not raise to ${NOFILE})` : ''}` +
        (visitors > 1 ? `; load spread over ${visitors} visitor processes (2 descriptors per connection each)` : ''),
    );
    const backend = new IdleEndpoint('backend');
    const clients = new IdleEndpoint('clients');
    try {
      const port = Number((await backend.next('listening', 15000)).port);
      for (let run = 0; run < p.idleRuns; run++) {
        let topo: Topology | undefined;
        try {
          topo = await startTopology({
            transport: 'tcp',
            targetPort: port,
            host: IPERF_HOST,
            uuid: TUNNEL_UUID,
            visitor: true,
            visitors,
            env: { ...ctx.env, nofile: NOFILE },
          });
          out.commands = topo.commands;
          const warm = await clients.open(topo.visitorPorts, 100, 10000);
          if (warm.failed) throw new Error(`warm-up: ${warm.failed} of 100 connections failed: ${fmtErrors(warm.errors)}`);
          await clients.closeAll();
          await backend.closeAll();
          await sleep(500);
          const before = topo.procs.map((x) => x.child.sample());
          const c0 = listenCounters();
          const r = await clients.open(topo.visitorPorts, n, 30000);
          const c1 = listenCounters();
          await sleep(1000);
          const after = topo.procs.map((x) => x.child.sample());
          const dead = topo.failed();
          if (dead) throw new Error(dead);
          const growth: Record<string, number> = {};
          let visitorsGrowth = 0;
          topo.procs.forEach((x, i) => {
            const g = ((after[i]?.rssKiB ?? NaN) - (before[i]?.rssKiB ?? NaN)) / Math.max(1, r.ok);
            growth[x.role] = g;
            if (x.role.startsWith('visitor')) visitorsGrowth += g;
          });
          openS[run] = r.failed ? NaN : r.elapsedMs / 1000;
          opened[run] = r.ok;
          perConn[run] = growth.server! + growth.client!;
          perConnServer[run] = growth.server!;
          perConnClient[run] = growth.client!;
          perConnVisitors[run] = visitorsGrowth;
          out.runs.push({
            run,
            opened: r.ok,
            failed: r.failed,
            errors: r.errors,
            openSeconds: round(r.elapsedMs / 1000, 4),
            listenOverflowsSystemWide: c1.overflows - c0.overflows,
            synRetransmitsSystemWide: c1.synRetrans - c0.synRetrans,
            rssKiBPerConn: Object.fromEntries(Object.entries(growth).map(([k, v]) => [k, round(v, 3)])),
            rssMiBAfter: Object.fromEntries(topo.procs.map((x, i) => [x.role, round((after[i]?.rssKiB ?? NaN) / 1024, 4)])),
            fdsAfter: Object.fromEntries(topo.procs.map((x, i) => [x.role, after[i]?.fds])),
          });
          if (r.failed) out.errors.push(`run ${run + 1}: ${r.failed} of ${n} connections failed: ${fmtErrors(r.errors)}`);
          const reports = topo.procs.map((x, i) => ({
            role: p.idleRuns > 1 ? `${x.role} (run ${run + 1})` : x.role,
            pid: x.child.pid,
            cpuSecondsMeasured: round((after[i]?.cpuSeconds ?? NaN) - (before[i]?.cpuSeconds ?? NaN), 3),
            cpuSecondsTotal: round(after[i]?.cpuSeconds ?? NaN, 3),
            peakRssMiB: round((after[i]?.peakRssKiB ?? NaN) / 1024, 3),
            finalRssMiB: round((after[i]?.rssKiB ?? NaN) / 1024, 3),
          }));
          out.processes.push(...reports);
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(`run ${run + 1}: ${errMsg(err)}`);
          openS[run] = NaN;
        } finally {
          await clients.closeAll().catch(() => undefined);
          await backend.closeAll().catch(() => undefined);
          if (topo) noteLogProblems(topo.procs, out.notes);
          await topo?.stop();
        }
      }
    } finally {
      await Promise.all([clients.child.stop(), backend.child.stop()]);
    }
    out.metrics.push(
      metric('connections open', '', opened, undefined, {
        target: `all ${n.toLocaleString('en-US')}`,
        check: (m) => m.burrow!.min >= n,
      }),
      metric('time to open all', 's', openS, undefined, { target: '≤ 10 s', check: (m) => m.burrow!.median <= 10 }),
      metric('RSS growth server+client', 'KiB/conn', perConn, undefined, {
        target: '≤ 8 KiB/conn',
        check: (m) => m.burrow!.median <= 8,
      }),
      metric('RSS growth server', 'KiB/conn', perConnServer),
      metric('RSS growth client', 'KiB/conn', perConnClient),
      metric(visitors > 1 ? `RSS growth visitors (all ${visitors})` : 'RSS growth visitor', 'KiB/conn', perConnVisitors),
    );
  },
};
