/**
 * One TCP stream at a high round-trip time, next to direct iperf3 at the same RTT. The tunnel
 * hop's smux window is what bounds gost here (1 MiB per RTT). Two ways to make the RTT:
 *
 * - netem: everything runs in a private network namespace whose loopback device delays every
 *   packet by RTT/2 (`tc qdisc … netem`), so each TCP hop — visitor→server, server→client (the
 *   tunnel), client→iperf3 — has that RTT, as has the direct baseline. Needs root, iproute2 and
 *   a kernel with netem.
 * - otherwise, a userspace delay line (bench/endpoints/delay-line.ts): a TCP proxy that holds
 *   every chunk for RTT/2 in each direction, on the tunnel hop only (the client dials the line,
 *   the line the server) and between iperf3 client and server for the baseline, so each side
 *   crosses one delayed hop. It delays application data, not TCP's own ACKs on loopback, so it
 *   measures application-level round trips: exactly the smux window, not TCP's.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { CpuMeter, noteLogProblems, startEndpoint, startTopology, type Topology } from '../lib/burrow';
import { runIperf, startIperfServer } from '../lib/tools';
import type { Child } from '../lib/proc';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { HOST, errMsg, freeTcpUdpPort, inTurn, isBenchBug, round, stat } from '../lib/util';
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

/** What the delay line may hold per direction of a connection: far more than one RTT needs. */
const DELAY_LINE_BYTES = 64 * 2 ** 20;

/** A delay line (bench/endpoints/delay-line.ts) in front of 127.0.0.1:`targetPort`. */
export function startDelayLine(targetPort: number, oneWayMs: number): Promise<{ child: Child; port: number }> {
  return startEndpoint('delay line', 'delay-line.ts', [String(targetPort), String(oneWayMs), String(DELAY_LINE_BYTES)]);
}

/**
 * Ping-pong round trips (one byte each way) through a delay line to an echo server in this
 * process: the RTT the line really adds, timer slack included. Median, ms.
 */
export async function delayLineRttMs(oneWayMs: number, rounds = 10): Promise<number> {
  const echo = net.createServer({ noDelay: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, HOST, r));
  const line = await startDelayLine((echo.address() as net.AddressInfo).port, oneWayMs);
  const sock = net.connect({ host: HOST, port: line.port, noDelay: true });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const rtts: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      const back = new Promise<void>((resolve, reject) => {
        const t0 = setTimeout(() => reject(new Error('no echo through the delay line within 5 s')), 5000);
        sock.once('data', () => (clearTimeout(t0), resolve()));
      });
      sock.write('x');
      await back;
      rtts.push(performance.now() - t);
    }
    return stat(rtts)!.median;
  } finally {
    sock.destroy();
    await line.child.stop();
    echo.close();
  }
}

/** Where the two iperf3 clients connect, once the RTT is in place. */
interface Paths {
  directPort: number;
  burrowPort: number;
  netns?: string;
}

export const rttStream: CaseDef = {
  id: 'tcp-stream-rtt',
  title: 'One TCP stream at 50 ms RTT (netem, else a userspace delay line)',
  baselineLabel: 'direct iperf3 at the same RTT',
  smoke: false,
  needs: ['iperf3'],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const oneWay = p.rttMs / 2;
    const gostBound = (8 * 2 ** 20) / (p.rttMs / 1000) / 1e6;
    const ns = `burrow-bench-${process.pid}`;
    const noNetem = setupNetns(ns, oneWay);
    const iperfNote = `iperf3 -t ${p.rttSeconds} -O 1; gost's window bound is 1 MiB / ${p.rttMs} ms ≈ ${round(gostBound, 3)} Mbit/s`;
    let iperf: Child | undefined;
    let topo: Topology | undefined;
    let meter: CpuMeter | undefined;
    const lines: Child[] = [];
    const direct: number[] = [];
    const burrow: number[] = [];
    try {
      const iperfPort = await freeTcpUdpPort();
      const topoOpts = {
        transport: 'tcp' as const,
        targetPort: iperfPort,
        host: IPERF_HOST,
        uuid: TUNNEL_UUID,
        visitor: true,
        readyTimeoutMs: 20000,
      };
      let paths: Paths;
      if (!noNetem) {
        out.title = `One TCP stream at ${p.rttMs} ms RTT (netns + netem)`;
        out.notes.push(`every loopback hop in netns ${ns} has ${p.rttMs} ms RTT (netem delay ${oneWay} ms on lo); ${iperfNote}`);
        iperf = await startIperfServer(iperfPort, ns);
        topo = await startTopology({ ...topoOpts, env: { ...ctx.env, netns: ns } });
        paths = { directPort: iperfPort, burrowPort: topo.visitorPort!, netns: ns };
      } else {
        out.title = `One TCP stream at ${p.rttMs} ms RTT (userspace delay line on the tunnel hop; no netem)`;
        out.baselineLabel = 'direct iperf3 through the same delay line';
        const rtt = await delayLineRttMs(oneWay);
        out.notes.push(
          `netem unavailable (${noNetem}), so a userspace delay line (bench/endpoints/delay-line.ts) holds every chunk ` +
            `${oneWay} ms in each direction, on the tunnel hop only (client → line → server) and, for the baseline, ` +
            'between iperf3 client and server. It delays application data but not TCP\'s own ACKs on loopback, so it ' +
            'measures application-level limits (the smux window), not TCP\'s window at that RTT',
          `measured RTT through the delay line: ${round(rtt, 3)} ms (median of 10 one-byte ping-pongs)`,
          iperfNote,
        );
        iperf = await startIperfServer(iperfPort);
        const via = async (port: number): Promise<number> => {
          const line = await startDelayLine(port, oneWay);
          lines.push(line.child);
          return line.port;
        };
        const directLine = await via(iperfPort);
        topo = await startTopology({ ...topoOpts, env: ctx.env, clientVia: via });
        paths = { directPort: directLine, burrowPort: topo.visitorPort! };
      }
      out.commands = topo.commands;
      meter = new CpuMeter(topo.procs, true);
      const opts = { seconds: p.rttSeconds, omit: 1, netns: paths.netns };
      try {
        for (let run = 0; run < p.runs; run++) {
          const doDirect = async (): Promise<void> => {
            try {
              direct[run] = (await runIperf({ ...opts, port: paths.directPort })).bitsPerSecond / 1e6;
            } catch (err) {
              direct[run] = NaN;
              out.errors.push(`run ${run + 1} direct: ${errMsg(err)}`);
            }
          };
          const doBurrow = async (): Promise<void> => {
            meter!.begin();
            try {
              burrow[run] = (await runIperf({ ...opts, port: paths.burrowPort })).bitsPerSecond / 1e6;
            } catch (err) {
              burrow[run] = NaN;
              out.errors.push(`run ${run + 1} burrow: ${errMsg(err)}`);
            } finally {
              meter!.end();
            }
          };
          await inTurn(run, doDirect, doBurrow);
          out.runs.push({ run, directMbps: round(direct[run]!, 4), burrowMbps: round(burrow[run]!, 4) });
          const dead = topo.failed() ?? lines.find((l) => !l.running)?.tailText();
          if (dead !== undefined) throw new Error(dead.startsWith('burrow') ? dead : `a delay line exited${dead}`);
        }
      } catch (err) {
        if (isBenchBug(err)) throw err;
        out.errors.push(errMsg(err));
      }
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
      await Promise.all(lines.map((l) => l.stop()));
      if (!noNetem) removeNetns(ns);
    }
  },
};
