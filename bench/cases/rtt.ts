/**
 * One TCP stream at a high round-trip time. Everything runs in a private network namespace
 * whose loopback device delays every packet by RTT/2 (`tc qdisc … netem`), so each TCP hop —
 * visitor→server, server→client (the tunnel), client→iperf3 — has that RTT, as has the direct
 * iperf3 baseline. The tunnel hop's smux window is what bounds gost here (1 MiB per RTT).
 *
 * Needs root, iproute2 and a kernel with netem; otherwise the case is skipped with a note.
 */
import { spawnSync } from 'node:child_process';
import { CpuMeter, noteLogProblems, startTopology, type Topology } from '../lib/burrow';
import { runIperf, startIperfServer } from '../lib/tools';
import type { Child } from '../lib/proc';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { errMsg, freeTcpUdpPort, isBenchBug, round } from '../lib/util';
import { IPERF_HOST, TUNNEL_UUID } from './stream';

function ip(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error) return { ok: false, err: r.error.message };
  return { ok: r.status === 0, err: (r.stderr || r.stdout || '').trim() };
}

/** Creates the namespace with a delayed loopback; returns why not when it cannot. */
export function setupNetns(name: string, oneWayMs: number): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (ip netns, tc)';
  const add = ip(['netns', 'add', name]);
  if (!add.ok) return `ip netns add failed: ${add.err || 'ip not available'}`;
  const steps: string[][] = [
    ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'],
    ['netns', 'exec', name, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', `${oneWayMs}ms`, 'limit', '100000'],
  ];
  for (const s of steps) {
    const r = ip(s);
    if (!r.ok) {
      ip(['netns', 'del', name]);
      const why = /qdisc kind is unknown/i.test(r.err)
        ? 'the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)'
        : `${s.slice(3).join(' ')}: ${r.err}`;
      return why;
    }
  }
  return undefined;
}

export function removeNetns(name: string): void {
  ip(['netns', 'del', name]);
}

export const rttStream: CaseDef = {
  id: 'tcp-stream-rtt',
  title: 'One TCP stream at 50 ms RTT (netns + netem)',
  baselineLabel: 'direct iperf3 at the same RTT',
  smoke: false,
  needs: ['iperf3'],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const ns = `burrow-bench-${process.pid}`;
    const why = setupNetns(ns, p.rttMs / 2);
    if (why) {
      out.status = 'skipped';
      out.notes.push(`skipped: ${why}`);
      return;
    }
    out.notes.push(
      `every loopback hop in netns ${ns} has ${p.rttMs} ms RTT (netem delay ${p.rttMs / 2} ms on lo); ` +
        `iperf3 -t ${p.rttSeconds} -O 1; gost's window bound is 1 MiB / ${p.rttMs} ms ≈ ${round((8 * 2 ** 20) / (p.rttMs / 1000) / 1e6, 3)} Mbit/s`,
    );
    let iperf: Child | undefined;
    let topo: Topology | undefined;
    let meter: CpuMeter | undefined;
    const direct: number[] = [];
    const burrow: number[] = [];
    try {
      const iperfPort = await freeTcpUdpPort();
      iperf = await startIperfServer(iperfPort, ns);
      topo = await startTopology({
        transport: 'tcp',
        targetPort: iperfPort,
        host: IPERF_HOST,
        uuid: TUNNEL_UUID,
        visitor: true,
        env: { ...ctx.env, netns: ns },
        readyTimeoutMs: 20000,
      });
      out.commands = topo.commands;
      meter = new CpuMeter(topo.procs, true);
      const opts = { seconds: p.rttSeconds, omit: 1, netns: ns };
      try {
        for (let run = 0; run < p.runs; run++) {
          const doDirect = async (): Promise<void> => {
            try {
              direct[run] = (await runIperf({ ...opts, port: iperfPort })).bitsPerSecond / 1e6;
            } catch (err) {
              direct[run] = NaN;
              out.errors.push(`run ${run + 1} direct: ${errMsg(err)}`);
            }
          };
          const doBurrow = async (): Promise<void> => {
            meter!.begin();
            try {
              burrow[run] = (await runIperf({ ...opts, port: topo!.visitorPort! })).bitsPerSecond / 1e6;
            } catch (err) {
              burrow[run] = NaN;
              out.errors.push(`run ${run + 1} burrow: ${errMsg(err)}`);
            } finally {
              meter!.end();
            }
          };
          if (run % 2 === 0) {
            await doDirect();
            await doBurrow();
          } else {
            await doBurrow();
            await doDirect();
          }
          out.runs.push({ run, directMbps: round(direct[run]!, 4), burrowMbps: round(burrow[run]!, 4) });
          const dead = topo.failed();
          if (dead) throw new Error(dead);
        }
      } catch (err) {
        if (isBenchBug(err)) throw err;
        out.errors.push(errMsg(err));
      }
      const gostBound = (8 * 2 ** 20) / (p.rttMs / 1000) / 1e6;
      out.metrics.push(
        metric(`throughput at ${p.rttMs} ms RTT`, 'Mbit/s', burrow, direct, {
          target: `≥ 2× gost's window bound (≥ ${Math.round(2 * gostBound)} Mbit/s)`,
          check: (m) => m.burrow!.median >= 2 * gostBound,
          gost: `~${Math.round(gostBound)} Mbit/s (1 MiB window)`,
        }),
      );
    } finally {
      if (meter) out.processes = meter.report();
      if (topo) noteLogProblems(topo.procs, out.notes);
      await topo?.stop();
      await iperf?.stop();
      removeNetns(ns);
    }
  },
};
