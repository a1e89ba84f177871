/**
 * iperf3 through the seed's example tunnel: visitor → server → client → iperf3 server, each
 * measurement next to direct iperf3 on loopback in the same run (the order alternates between
 * runs). One TCP stream both directions, over plain `tunnel` and over `tunnel+wss`; UDP at a
 * fixed offered rate.
 */
import { CpuMeter, noteLogProblems, startTopology, type Topology, type Transport } from '../lib/burrow';
import { runIperf, startIperfServer, type IperfResult } from '../lib/tools';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { errMsg, freeTcpUdpPort, inTurn, isBenchBug, round, sleep } from '../lib/util';

export const TUNNEL_UUID = '22f43305-42f7-4232-bbbc-aa6c042e3bc3';
export const IPERF_HOST = 'iperf.local';

/** Runs `fn` for the tunnel and records the CPU of the burrow processes around it. */
async function measured<T>(topo: Topology, meter: CpuMeter, fn: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  meter.begin();
  try {
    const value = await fn();
    return { value, cpu: meter.end() };
  } catch (err) {
    meter.end();
    const dead = topo.failed();
    throw new Error(dead ? `${errMsg(err)}; ${dead}` : errMsg(err), { cause: err });
  }
}

function tcpCase(transport: Transport): CaseDef {
  const wss = transport === 'wss';
  return {
    id: wss ? 'tcp-stream-wss' : 'tcp-stream',
    title: wss ? 'One TCP stream over tunnel+wss (iperf3)' : 'One TCP stream (iperf3), visitor → server → client → iperf3',
    baselineLabel: 'direct iperf3 on loopback',
    smoke: true,
    needs: ['iperf3'],
    async run(ctx: CaseContext, out: CaseResult): Promise<void> {
      const p = ctx.params;
      const iperfPort = await freeTcpUdpPort();
      const iperf = await startIperfServer(iperfPort);
      let topo: Topology | undefined;
      let meter: CpuMeter | undefined;
      try {
        topo = await startTopology({
          transport,
          targetPort: iperfPort,
          host: IPERF_HOST,
          uuid: TUNNEL_UUID,
          visitor: true,
          env: ctx.env,
        });
        out.commands = topo.commands;
        meter = new CpuMeter(topo.procs, true);
        if (p.warmupSeconds > 0) {
          await runIperf({ port: topo.visitorPort!, seconds: p.warmupSeconds }).catch(() => undefined);
        }
        const dirs: Array<'forward' | 'reverse'> = p.bothDirections ? ['forward', 'reverse'] : ['forward'];
        const data: Record<string, { direct: number[]; burrow: number[]; cpu: number[]; bytes: number[] }> = {};
        for (const d of dirs) data[d] = { direct: [], burrow: [], cpu: [], bytes: [] };
        try {
          for (let run = 0; run < p.runs; run++) {
            for (const dir of dirs) {
              const reverse = dir === 'reverse';
              const row: Record<string, unknown> = { run, direction: dir };
              const doDirect = async (): Promise<void> => {
                try {
                  const r = await runIperf({ port: iperfPort, seconds: p.streamSeconds, reverse });
                  data[dir]!.direct[run] = r.bitsPerSecond / 1e9;
                  row.directGbps = round(r.bitsPerSecond / 1e9, 4);
                } catch (err) {
                  data[dir]!.direct[run] = NaN;
                  out.errors.push(`run ${run + 1} ${dir} direct: ${errMsg(err)}`);
                }
              };
              const doBurrow = async (): Promise<void> => {
                try {
                  const { value: r, cpu } = await measured(topo!, meter!, () =>
                    runIperf({ port: topo!.visitorPort!, seconds: p.streamSeconds, reverse }),
                  );
                  data[dir]!.burrow[run] = r.bitsPerSecond / 1e9;
                  data[dir]!.cpu[run] = cpu;
                  data[dir]!.bytes[run] = r.bytes;
                  Object.assign(row, {
                    burrowGbps: round(r.bitsPerSecond / 1e9, 4),
                    burrowCpuSeconds: round(cpu, 3),
                    retransmits: r.retransmits,
                  });
                } catch (err) {
                  data[dir]!.burrow[run] = NaN;
                  out.errors.push(`run ${run + 1} ${dir} burrow: ${errMsg(err)}`);
                }
              };
              await inTurn(run, doDirect, doBurrow);
              out.runs.push(row);
              const dead = topo.failed();
              if (dead) throw new Error(dead);
            }
          }
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(errMsg(err));
        }
        const target = wss ? 0.12 : 0.3;
        const gost = wss ? '~1.2 Gbit/s, ~6%' : '~4.5 Gbit/s, ~22%';
        for (const dir of dirs) {
          const d = data[dir]!;
          out.metrics.push(
            metric(`${dir === 'forward' ? 'visitor → client' : 'client → visitor (-R)'} throughput`, 'Gbit/s', d.burrow, d.direct, {
              target: `≥ ${Math.round(target * 100)}% of direct`,
              check: (m) => (m.ratio ? m.ratio.median >= target : undefined),
              gost,
            }),
          );
          const perGiB = d.cpu.map((c, i) => (d.bytes[i]! > 0 ? c / (d.bytes[i]! / 2 ** 30) : NaN));
          out.metrics.push(metric(`${dir}: CPU of all burrow processes per GiB moved`, 'CPU s/GiB', perGiB));
        }
      } finally {
        if (meter) out.processes = meter.report();
        if (topo) noteLogProblems(topo.procs, out.notes);
        await topo?.stop();
        await iperf.stop();
      }
    },
  };
}

export const tcpStream = tcpCase('tcp');
export const tcpStreamWss = tcpCase('wss');

/**
 * UDP at a fixed offered rate. `fixedLength`: datagrams of `params.udpLen` bytes (the size of
 * real traffic over an Internet path, the hard case: per-datagram costs dominate); otherwise
 * iperf3 picks its default length (on loopback the control connection's MSS, 32 KiB here).
 */
function udpCase(fixedLength: boolean): CaseDef {
  return {
    id: fixedLength ? 'udp' : 'udp-default-length',
    title: fixedLength
      ? 'UDP through the tunnel (iperf3 -u, fixed offered rate, MTU-sized datagrams)'
      : "UDP through the tunnel (iperf3 -u, fixed offered rate, iperf3's default datagram length)",
    baselineLabel: 'direct iperf3 -u on loopback',
    smoke: fixedLength,
    fullOnly: !fixedLength,
    needs: ['iperf3'],
    async run(ctx: CaseContext, out: CaseResult): Promise<void> {
      const p = ctx.params;
      const iperfPort = await freeTcpUdpPort();
      const iperf = await startIperfServer(iperfPort);
      let topo: Topology | undefined;
      let meter: CpuMeter | undefined;
      const len = fixedLength ? p.udpLen : undefined;
      const lenFlag = len ? ` -l ${len}` : '';
      try {
        topo = await startTopology({
          transport: 'tcp',
          targetPort: iperfPort,
          host: IPERF_HOST,
          uuid: TUNNEL_UUID,
          visitor: true,
          udp: true,
          env: ctx.env,
        });
        out.commands = topo.commands;
        meter = new CpuMeter(topo.procs);
        const opts = { seconds: p.streamSeconds, udpRate: p.udpRate, len, window: '4M' };
        if (p.warmupSeconds > 0) await runIperf({ ...opts, port: topo.visitorPort!, seconds: p.warmupSeconds }).catch(() => undefined);
        // Both directions for MTU-sized datagrams (-R: the service behind the client sends, the
        // visitor's listener writes every datagram to its user); the default length forward only.
        const dirs: Array<'forward' | 'reverse'> = fixedLength && p.bothDirections ? ['forward', 'reverse'] : ['forward'];
        const data: Record<string, { direct: Array<IperfResult | undefined>; burrow: Array<IperfResult | undefined> }> = {};
        for (const d of dirs) data[d] = { direct: [], burrow: [] };
        // A pause before each test: the iperf3 server takes the first datagram that reaches its
        // new test socket as its client's, so a datagram of the test before that was still in
        // the tunnel's queues (tens of ms when the visitor is behind) would bind it to the old
        // source, and the test then waits for its own datagrams until it is killed. Seen with
        // back-to-back tests through the tunnel (3 of 12), never with a 0.1 s gap.
        const settle = (): Promise<void> => sleep(300);
        try {
          for (let run = 0; run < p.runs; run++) {
            for (const dir of dirs) {
              const reverse = dir === 'reverse';
              const { direct, burrow } = data[dir]!;
              const doDirect = async (): Promise<void> => {
                await settle();
                try {
                  direct[run] = await runIperf({ ...opts, port: iperfPort, reverse });
                } catch (err) {
                  out.errors.push(`run ${run + 1} ${dir} direct: ${errMsg(err)}`);
                }
              };
              const doBurrow = async (): Promise<void> => {
                await settle();
                try {
                  burrow[run] = (await measured(topo!, meter!, () => runIperf({ ...opts, port: topo!.visitorPort!, reverse }))).value;
                } catch (err) {
                  out.errors.push(`run ${run + 1} ${dir} burrow: ${errMsg(err)}`);
                }
              };
              await inTurn(run, doDirect, doBurrow);
              out.runs.push({
                run,
                direction: dir,
                directReceivedMbps: round((direct[run]?.bitsPerSecond ?? NaN) / 1e6, 4),
                directLossPercent: direct[run]?.lostPercent,
                burrowOfferedMbps: round((burrow[run]?.sentBitsPerSecond ?? NaN) / 1e6, 4),
                burrowReceivedMbps: round((burrow[run]?.bitsPerSecond ?? NaN) / 1e6, 4),
                burrowLossPercent: burrow[run]?.lostPercent,
              });
              const dead = topo.failed();
              if (dead) throw new Error(dead);
            }
          }
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(errMsg(err));
        }
        const all = dirs.flatMap((d) => [...data[d]!.direct, ...data[d]!.burrow]);
        const blk = all.find((r) => r?.blockBytes)?.blockBytes;
        out.notes.push(
          `offered ${p.udpRate}bit/s of ${blk ?? len ?? '?'}-byte datagrams${len ? '' : " (iperf3's default length here)"} for ${p.streamSeconds} s (iperf3 -u -b ${p.udpRate}${lenFlag} -w 4M${dirs.length > 1 ? ', and the same with -R' : ''})`,
        );
        const col = (xs: Array<IperfResult | undefined>, f: (r: IperfResult) => number | undefined): number[] =>
          Array.from({ length: p.runs }, (_, i) => (xs[i] ? (f(xs[i]!) ?? NaN) : NaN));
        for (const dir of dirs) {
          const { direct, burrow } = data[dir]!;
          const label = (what: string): string => (dir === 'forward' ? what : `client → visitor (-R): ${what}`);
          out.metrics.push(
            metric(label('offered rate'), 'Mbit/s', col(burrow, (r) => r.sentBitsPerSecond / 1e6), col(direct, (r) => r.sentBitsPerSecond / 1e6), {
              ratio: false,
            }),
            metric(label('received'), 'Mbit/s', col(burrow, (r) => r.bitsPerSecond / 1e6), col(direct, (r) => r.bitsPerSecond / 1e6)),
            metric(label('loss'), '%', col(burrow, (r) => r.lostPercent), col(direct, (r) => r.lostPercent), {
              ratio: false,
              target: '≥ 1 Gbit/s offered with < 1% loss',
              check: (m) => {
                const offered = p.udpRate.toUpperCase().endsWith('G') ? parseFloat(p.udpRate) * 1000 : parseFloat(p.udpRate);
                return offered >= 1000 ? m.burrow!.median < 1 : undefined;
              },
            }),
          );
        }
      } finally {
        if (meter) out.processes = meter.report();
        if (topo) noteLogProblems(topo.procs, out.notes);
        await topo?.stop();
        await iperf.stop();
      }
    },
  };
}

export const udpStream = udpCase(true);
export const udpStreamDefaultLength = udpCase(false);
