/**
 * Many concurrent idle TCP connections through one tunnel (visitor → server → one smux session
 * → client → backend). A connection counts as open when a byte written by the backend on
 * accept has come back through the whole path. Reported: time to open all, and how much the
 * resident memory of the burrow server and client grew per connection (from /proc, after a
 * small un-counted warm-up so one-time costs such as JIT code do not count).
 */
import path from 'node:path';
import { ROOT, startTopology, type Topology } from '../lib/burrow';
import { Child } from '../lib/proc';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { errMsg, isBenchBug, round, sleep } from '../lib/util';
import { IPERF_HOST, TUNNEL_UUID } from './stream';

export const NOFILE = 65536;

interface Opened {
  ok: number;
  failed: number;
  elapsedMs: number;
  accepted: number;
  firstError?: string;
}

class IdleDriver {
  readonly child: Child;
  port = 0;
  #events: Array<Record<string, unknown>> = [];
  #wake: (() => void) | undefined;

  constructor() {
    this.child = new Child({
      name: 'idle connections',
      cmd: process.execPath,
      args: ['--import', 'tsx', path.join(ROOT, 'bench', 'helpers', 'idle-conns.ts')],
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
      if (!this.child.running) throw new Error(`idle connection driver exited${this.child.tailText()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`idle connection driver: no "${event}" within ${timeoutMs} ms${this.child.tailText()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async start(): Promise<void> {
    const e = await this.next('listening', 15000);
    this.port = Number(e.port);
  }

  async open(port: number, count: number, timeoutMs: number): Promise<Opened> {
    this.child.send(JSON.stringify({ cmd: 'open', port, count, concurrency: 256, timeoutMs }));
    return (await this.next('opened', timeoutMs + 15000)) as unknown as Opened;
  }

  async closeAll(): Promise<void> {
    this.child.send(JSON.stringify({ cmd: 'close' }));
    await this.next('closed', 15000);
  }
}

export const idleConnections: CaseDef = {
  id: 'idle-connections',
  title: 'Concurrent idle TCP connections through one tunnel',
  baselineLabel: '—',
  smoke: true,
  needs: [],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const n = p.idleConnections;
    const driver = new IdleDriver();
    const openS: number[] = [];
    const opened: number[] = [];
    const perConn: number[] = [];
    const perConnServer: number[] = [];
    const perConnClient: number[] = [];
    const perConnVisitor: number[] = [];
    out.notes.push(
      `${n} connections, at most 256 connecting at a time; open = the backend's first byte arrived through the tunnel; ` +
        `RSS growth = VmRSS after all are open (1 s settle) minus VmRSS before (after a 100-connection warm-up); ` +
        `file limit raised to ${NOFILE} for every process`,
    );
    try {
      await driver.start();
      for (let run = 0; run < p.idleRuns; run++) {
        let topo: Topology | undefined;
        try {
          topo = await startTopology({
            transport: 'tcp',
            targetPort: driver.port,
            host: IPERF_HOST,
            uuid: TUNNEL_UUID,
            visitor: true,
            env: { ...ctx.env, nofile: NOFILE },
          });
          out.commands = topo.commands;
          const warm = await driver.open(topo.visitorPort!, 100, 10000);
          if (warm.failed) throw new Error(`warm-up: ${warm.failed} of 100 connections failed: ${warm.firstError}`);
          await driver.closeAll();
          await sleep(500);
          const before = topo.procs.map((x) => x.child.sample());
          const r = await driver.open(topo.visitorPort!, n, 30000);
          await sleep(1000);
          const after = topo.procs.map((x) => x.child.sample());
          const dead = topo.failed();
          if (dead) throw new Error(dead);
          const growth: Record<string, number> = {};
          topo.procs.forEach((x, i) => {
            growth[x.role] = ((after[i]?.rssKiB ?? NaN) - (before[i]?.rssKiB ?? NaN)) / Math.max(1, r.ok);
          });
          openS[run] = r.failed ? NaN : r.elapsedMs / 1000;
          opened[run] = r.ok;
          perConn[run] = growth.server! + growth.client!;
          perConnServer[run] = growth.server!;
          perConnClient[run] = growth.client!;
          perConnVisitor[run] = growth.visitor!;
          out.runs.push({
            run,
            opened: r.ok,
            failed: r.failed,
            firstError: r.firstError,
            openSeconds: round(r.elapsedMs / 1000, 4),
            rssKiBPerConn: Object.fromEntries(Object.entries(growth).map(([k, v]) => [k, round(v, 3)])),
            rssMiBAfter: Object.fromEntries(topo.procs.map((x, i) => [x.role, round((after[i]?.rssKiB ?? NaN) / 1024, 4)])),
            fdsAfter: Object.fromEntries(topo.procs.map((x, i) => [x.role, after[i]?.fds])),
          });
          if (r.failed) out.errors.push(`run ${run + 1}: ${r.failed} of ${n} connections failed (first: ${r.firstError})`);
          const reports = topo.procs.map((x, i) => ({
            role: p.idleRuns > 1 ? `${x.role} (run ${run + 1})` : x.role,
            pid: x.child.pid,
            cpuSecondsMeasured: round((after[i]?.cpuSeconds ?? NaN) - (before[i]?.cpuSeconds ?? NaN), 3),
            cpuSecondsTotal: round(after[i]?.cpuSeconds ?? NaN, 3),
            peakRssMiB: round((after[i]?.peakRssKiB ?? NaN) / 1024, 3),
            finalRssMiB: round((after[i]?.rssKiB ?? NaN) / 1024, 3),
          }));
          out.processes.push(...reports);
          await driver.closeAll();
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(`run ${run + 1}: ${errMsg(err)}`);
          openS[run] = NaN;
          await driver.closeAll().catch(() => undefined);
        } finally {
          await topo?.stop();
        }
      }
    } finally {
      await driver.child.stop();
    }
    out.metrics.push(
      metric('connections open', 'count', opened, undefined, {
        target: `all ${n}`,
        check: (m) => m.burrow!.min >= n,
      }),
      metric('time to open all', 's', openS, undefined, { target: '≤ 10 s', check: (m) => m.burrow!.median <= 10 }),
      metric('RSS growth server+client', 'KiB/conn', perConn, undefined, {
        target: '≤ 8 KiB/conn',
        check: (m) => m.burrow!.median <= 8,
      }),
      metric('RSS growth server', 'KiB/conn', perConnServer),
      metric('RSS growth client', 'KiB/conn', perConnClient),
      metric('RSS growth visitor', 'KiB/conn', perConnVisitor),
    );
  },
};
