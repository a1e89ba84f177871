/**
 * iperf3 through the seed's example tunnel: visitor → server → client → iperf3 server, each
 * measurement next to direct iperf3 on loopback in the same run (the order alternates between
 * runs). One TCP stream both directions, over plain `tunnel` and over `tunnel+wss`; UDP at a
 * fixed offered rate.
 */
import { CpuMeter, noteLogProblems, startTopology, type Topology, type Transport } from '../lib/burrow';
import { runIperf, startIperfServer, type IperfResult } from '../lib/tools';
import { metric, type CaseContext, type CaseDef, type CaseResult, type Params } from '../lib/types';
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

/** One UDP measurement: iperf3's result and the CPU seconds of each burrow process in it. */
interface UdpRun {
  r: IperfResult;
  cpu: Record<string, number>;
}

async function udpMeasure(topo: Topology | undefined, o: Parameters<typeof runIperf>[0]): Promise<UdpRun> {
  const before = topo ? topo.procs.map((p) => p.child.sample()?.cpuSeconds) : [];
  let r: IperfResult;
  try {
    r = await runIperf(o);
  } catch (err) {
    const dead = topo?.failed();
    throw new Error(dead ? `${errMsg(err)}; ${dead}` : errMsg(err), { cause: err });
  }
  const cpu: Record<string, number> = {};
  topo?.procs.forEach((p, i) => {
    const a = before[i];
    const b = p.child.sample()?.cpuSeconds;
    if (a !== undefined && b !== undefined) cpu[p.role] = b - a;
  });
  return { r, cpu };
}

/** A topology with the tutorial's UDP visitor (keepalive=true) and an rudp client, next to an iperf3 server. */
async function udpTopology(
  ctx: CaseContext,
  out: CaseResult,
): Promise<{ iperfPort: number; iperf: Awaited<ReturnType<typeof startIperfServer>>; topo: Topology }> {
  const iperfPort = await freeTcpUdpPort();
  const iperf = await startIperfServer(iperfPort);
  try {
    const topo = await startTopology({
      transport: 'tcp',
      targetPort: iperfPort,
      host: IPERF_HOST,
      uuid: TUNNEL_UUID,
      visitor: true,
      udp: true,
      env: ctx.env,
    });
    // Which UDP I/O the burrow processes use (native batches or node:dgram): the visitor says it
    // as its UDP listener starts (a line still in its kept tail).
    const io = topo.visitor!.tail.map((l) => /"msg":"(udp: [^"]*)"/.exec(l)?.[1]).find((x) => x !== undefined);
    out.notes.push(`UDP I/O: ${io ?? 'not logged'}`);
    return { iperfPort, iperf, topo };
  } catch (err) {
    await iperf.stop();
    throw err;
  }
}

/**
 * A pause before each test: the iperf3 server takes the first datagram that reaches its new
 * test socket as its client's, so a datagram of the test before that was still in the
 * tunnel's queues would bind it to the old source, and the test then waits for its own
 * datagrams until it is killed. Seen with back-to-back tests through the tunnel (3 of 12),
 * never with a 0.1 s gap.
 */
const settle = (): Promise<void> => sleep(300);

const ROLES = ['visitor', 'server', 'client'] as const;

/**
 * UDP at a fixed offered rate, iperf3's default socket buffers, both directions (-R: the
 * service behind the client sends, the visitor's listener writes every datagram to its user).
 * `len`: datagram size; `rate`: iperf3 -b. With `len` undefined iperf3 picks its default
 * length (on loopback the control connection's MSS, 32 KiB here), forward only.
 */
function udpCase(c: { id: string; title: string; len?: (p: Params) => number | undefined; rate: (p: Params) => string; offeredMbps: (p: Params) => number; smoke: boolean; fullOnly?: boolean; both: boolean; target?: { maxLoss: number; minMbps?: number } }): CaseDef {
  return {
    id: c.id,
    title: c.title,
    baselineLabel: 'direct iperf3 -u on loopback',
    smoke: c.smoke,
    fullOnly: c.fullOnly,
    needs: ['iperf3'],
    async run(ctx: CaseContext, out: CaseResult): Promise<void> {
      const p = ctx.params;
      const len = c.len?.(p);
      const rate = c.rate(p);
      const { iperfPort, iperf, topo } = await udpTopology(ctx, out);
      const meter = new CpuMeter(topo.procs);
      try {
        out.commands = topo.commands;
        const opts = { seconds: p.udpSeconds, udpRate: rate, len };
        if (p.warmupSeconds > 0) await runIperf({ ...opts, port: topo.visitorPort!, seconds: p.warmupSeconds }).catch(() => undefined);
        const dirs: Array<'forward' | 'reverse'> = c.both && p.bothDirections ? ['forward', 'reverse'] : ['forward'];
        const data: Record<string, { direct: Array<IperfResult | undefined>; burrow: Array<UdpRun | undefined> }> = {};
        for (const d of dirs) data[d] = { direct: [], burrow: [] };
        try {
          for (let run = 0; run < p.runs; run++) {
            for (const dir of dirs) {
              const reverse = dir === 'reverse';
              const { direct, burrow } = data[dir]!;
              const doDirect = async (): Promise<void> => {
                await settle();
                try {
                  direct[run] = (await udpMeasure(undefined, { ...opts, port: iperfPort, reverse })).r;
                } catch (err) {
                  out.errors.push(`run ${run + 1} ${dir} direct: ${errMsg(err)}`);
                }
              };
              const doBurrow = async (): Promise<void> => {
                await settle();
                meter.begin();
                try {
                  burrow[run] = await udpMeasure(topo, { ...opts, port: topo.visitorPort!, reverse });
                } catch (err) {
                  out.errors.push(`run ${run + 1} ${dir} burrow: ${errMsg(err)}`);
                } finally {
                  meter.end();
                }
              };
              await inTurn(run, doDirect, doBurrow);
              const b = burrow[run];
              out.runs.push({
                run,
                direction: dir,
                directReceivedMbps: round((direct[run]?.bitsPerSecond ?? NaN) / 1e6, 4),
                directLossPercent: direct[run]?.lostPercent,
                burrowOfferedMbps: round((b?.r.sentBitsPerSecond ?? NaN) / 1e6, 4),
                burrowReceivedMbps: round((b?.r.bitsPerSecond ?? NaN) / 1e6, 4),
                burrowLossPercent: b?.r.lostPercent,
                burrowDatagrams: b?.r.packets,
                burrowCpuSeconds: b?.cpu,
              });
              const dead = topo.failed();
              if (dead) throw new Error(dead);
            }
          }
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(errMsg(err));
        }
        const all = dirs.flatMap((d) => [...data[d]!.direct, ...data[d]!.burrow.map((x) => x?.r)]);
        const blk = all.find((r) => r?.blockBytes)?.blockBytes;
        out.notes.push(
          `offered ${rate}bit/s of ${blk ?? len ?? '?'}-byte datagrams${len ? '' : " (iperf3's default length here)"} for ${p.udpSeconds} s, iperf3's default socket buffers (iperf3 -u -b ${rate}${len ? ` -l ${len}` : ''}${dirs.length > 1 ? ', and the same with -R' : ''})`,
        );
        const col = <T>(xs: Array<T | undefined>, f: (r: T) => number | undefined): number[] =>
          Array.from({ length: p.runs }, (_, i) => (xs[i] ? (f(xs[i]!) ?? NaN) : NaN));
        for (const dir of dirs) {
          const { direct, burrow } = data[dir]!;
          const label = (what: string): string => (dir === 'forward' ? what : `client → visitor (-R): ${what}`);
          const t = c.target;
          out.metrics.push(
            metric(label('offered rate'), 'Mbit/s', col(burrow, (x) => x.r.sentBitsPerSecond / 1e6), col(direct, (r) => r.sentBitsPerSecond / 1e6), {
              ratio: false,
            }),
            metric(label('received'), 'Mbit/s', col(burrow, (x) => x.r.bitsPerSecond / 1e6), col(direct, (r) => r.bitsPerSecond / 1e6), {
              target: t?.minMbps ? `≥ ${t.minMbps} Mbit/s` : undefined,
              check: t?.minMbps ? (m) => m.burrow!.median >= t.minMbps! : undefined,
            }),
            metric(label('loss'), '%', col(burrow, (x) => x.r.lostPercent), col(direct, (r) => r.lostPercent), {
              ratio: false,
              target: t ? `< ${t.maxLoss}% at ${c.offeredMbps(p)} Mbit/s offered` : undefined,
              check: t ? (m) => m.burrow!.median < t.maxLoss : undefined,
            }),
          );
          for (const role of ROLES) {
            out.metrics.push(
              metric(
                label(`CPU of the ${role} per datagram`),
                'µs',
                col(burrow, (x) => (x.r.packets && x.cpu[role] !== undefined ? (x.cpu[role]! / x.r.packets) * 1e6 : NaN)),
              ),
            );
          }
        }
      } finally {
        out.processes = meter.report();
        noteLogProblems(topo.procs, out.notes);
        await topo.stop();
        await iperf.stop();
      }
    },
  };
}

const mbps = (rate: string): number => (/g$/i.test(rate) ? parseFloat(rate) * 1000 : /k$/i.test(rate) ? parseFloat(rate) / 1000 : parseFloat(rate));

export const udpStream = udpCase({
  id: 'udp',
  title: 'UDP through the tunnel (iperf3 -u, MTU-sized datagrams, fixed offered rate, default buffers)',
  len: (p) => p.udpLen,
  rate: (p) => p.udpRate,
  offeredMbps: (p) => mbps(p.udpRate),
  smoke: true,
  both: true,
  target: { maxLoss: 1, minMbps: 950 },
});

/** DNS-sized datagrams: 100 bytes at 50,000 a second (40 Mbit/s). */
export const udpSmall = udpCase({
  id: 'udp-small',
  title: 'UDP through the tunnel, 100-byte datagrams at 50,000/s (iperf3 -u -l 100 -b 40M)',
  len: () => 100,
  rate: () => '40M',
  offeredMbps: () => 40,
  smoke: false,
  both: true,
  target: { maxLoss: 1 },
});

export const udpStreamDefaultLength = udpCase({
  id: 'udp-default-length',
  title: "UDP through the tunnel (iperf3 -u, fixed offered rate, iperf3's default datagram length)",
  rate: (p) => p.udpRate,
  offeredMbps: (p) => mbps(p.udpRate),
  smoke: false,
  fullOnly: true,
  both: false,
});

/** Streams of one iperf3 -u at most this rate each (one iperf3 sends about 1.36 Gbit/s here). */
const SWEEP_STREAM_MBPS = 800;

/**
 * The highest rate of 1400-byte datagrams received with < 1 % loss: the offered rates of
 * `params.udpSweepMbps` in turn, each split over as many iperf3 -P streams as it takes, both
 * directions, until burrow loses 1 % or more (the direct baseline runs every rate).
 */
export const udpSweep: CaseDef = {
  id: 'udp-sweep',
  title: 'UDP sweep: highest rate of 1400-byte datagrams received with < 1% loss (parallel iperf3 streams)',
  baselineLabel: 'direct iperf3 -u on loopback',
  smoke: false,
  needs: ['iperf3'],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const { iperfPort, iperf, topo } = await udpTopology(ctx, out);
    const meter = new CpuMeter(topo.procs);
    try {
      out.commands = topo.commands;
      const dirs: Array<'forward' | 'reverse'> = p.bothDirections ? ['forward', 'reverse'] : ['forward'];
      for (const dir of dirs) {
        const best: { direct: number[]; burrow: number[] } = { direct: [], burrow: [] };
        // At most 2 runs: a run is up to 2 × 6 iperf3 tests per direction.
        for (let run = 0; run < Math.min(p.runs, 2); run++) {
          let bestDirect = 0;
          let bestBurrow = 0;
          let burrowDone = false;
          for (const total of p.udpSweepMbps) {
            const parallel = Math.ceil(total / SWEEP_STREAM_MBPS);
            const opts = { seconds: p.udpSeconds, udpRate: `${Math.round(total / parallel)}M`, len: p.udpLen, parallel, reverse: dir === 'reverse' };
            let direct: IperfResult | undefined;
            let burrow: UdpRun | undefined;
            const doDirect = async (): Promise<void> => {
              await settle();
              try {
                direct = (await udpMeasure(undefined, { ...opts, port: iperfPort })).r;
              } catch (err) {
                out.errors.push(`run ${run + 1} ${dir} ${total} Mbit/s direct: ${errMsg(err)}`);
              }
            };
            const doBurrow = async (): Promise<void> => {
              if (burrowDone) return;
              await settle();
              meter.begin();
              try {
                burrow = await udpMeasure(topo, { ...opts, port: topo.visitorPort! });
              } catch (err) {
                out.errors.push(`run ${run + 1} ${dir} ${total} Mbit/s burrow: ${errMsg(err)}`);
              } finally {
                meter.end();
              }
            };
            await inTurn(run, doDirect, doBurrow);
            const ok = (r: IperfResult | undefined): boolean => r !== undefined && (r.lostPercent ?? 100) < 1;
            if (ok(direct)) bestDirect = Math.max(bestDirect, direct!.bitsPerSecond / 1e6);
            if (!burrowDone) {
              if (ok(burrow?.r)) bestBurrow = Math.max(bestBurrow, burrow!.r.bitsPerSecond / 1e6);
              else burrowDone = true;
            }
            out.runs.push({
              run,
              direction: dir,
              offeredMbps: total,
              streams: parallel,
              directReceivedMbps: round((direct?.bitsPerSecond ?? NaN) / 1e6, 4),
              directLossPercent: direct?.lostPercent,
              burrowReceivedMbps: burrow ? round(burrow.r.bitsPerSecond / 1e6, 4) : undefined,
              burrowLossPercent: burrow?.r.lostPercent,
              burrowCpuSeconds: burrow?.cpu,
            });
            const dead = topo.failed();
            if (dead) throw new Error(dead);
          }
          best.direct.push(bestDirect);
          best.burrow.push(bestBurrow);
        }
        const label = dir === 'forward' ? 'highest rate received with < 1% loss' : 'client → visitor (-R): highest rate received with < 1% loss';
        out.metrics.push(
          metric(label, 'Mbit/s', best.burrow, best.direct, { target: '≥ 1300 Mbit/s', check: (m) => m.burrow!.median >= 1300 }),
        );
      }
      out.notes.push(
        `offered rates ${p.udpSweepMbps.join(', ')} Mbit/s of 1400-byte datagrams for ${p.udpSeconds} s each, split over iperf3 -P streams of ≤ ${SWEEP_STREAM_MBPS} Mbit/s (iperf3 ${'<'} 3.16 sends all streams from one thread), default socket buffers; burrow stops at its first rate with ≥ 1% loss`,
      );
    } finally {
      out.processes = meter.report();
      noteLogProblems(topo.procs, out.notes);
      await topo.stop();
      await iperf.stop();
    }
  },
};
