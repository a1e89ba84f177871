/**
 * HTTP through the server's public entry point (wrk → entry point → tunnel → client → backend),
 * next to wrk against the same backend directly: 50 keep-alive connections, and new
 * connections per second (`Connection: close`, one request per connection).
 */
import { CpuMeter, noteLogProblems, startEndpoint, startTopology, type Topology } from '../lib/burrow';
import type { Child } from '../lib/proc';
import { runWrk, type WrkResult } from '../lib/tools';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { HOST, errMsg, inTurn, isBenchBug, round } from '../lib/util';

export const HTTP_UUID = '4d6c2f0e-8a3b-4c1d-9e2f-5b7a1c3d9e01';
export const HTTP_HOST = 'bench.local';

/** The static responder (bench/endpoints/http-backend.ts) in its own process. */
export function startHttpBackend(): Promise<{ child: Child; port: number }> {
  return startEndpoint('http backend', 'http-backend.ts');
}

function httpCase(kind: 'keepalive' | 'cps'): CaseDef {
  const cps = kind === 'cps';
  return {
    id: cps ? 'http-new-connections' : 'http-keepalive',
    title: cps
      ? 'New connections per second through the entry point (wrk, Connection: close)'
      : 'HTTP through the entry point, wrk -c 50 keep-alive, tiny body',
    baselineLabel: 'wrk against the same backend directly',
    smoke: true,
    needs: ['wrk'],
    async run(ctx: CaseContext, out: CaseResult): Promise<void> {
      const p = ctx.params;
      const backend = await startHttpBackend();
      let topo: Topology | undefined;
      let meter: CpuMeter | undefined;
      const headers = [`Host: ${HTTP_HOST}`];
      if (cps) headers.push('Connection: close');
      out.notes.push(`wrk -c 50 -t 2 -d ${p.httpSeconds}s --latency ${headers.map((h) => `-H '${h}'`).join(' ')}`);
      try {
        topo = await startTopology({
          transport: 'tcp',
          targetPort: backend.port,
          host: HTTP_HOST,
          uuid: HTTP_UUID,
          visitor: false,
          entrypoint: true,
          env: ctx.env,
        });
        out.commands = topo.commands;
        meter = new CpuMeter(topo.procs);
        const wrk = (port: number, seconds = p.httpSeconds): Promise<WrkResult> =>
          runWrk({ url: `http://${HOST}:${port}/`, seconds, connections: 50, threads: 2, headers });
        if (p.warmupSeconds > 0) await wrk(topo.entryPort!, p.warmupSeconds).catch(() => undefined);
        const direct: Array<WrkResult | undefined> = [];
        const burrow: Array<WrkResult | undefined> = [];
        try {
          for (let run = 0; run < p.runs; run++) {
            const doDirect = async (): Promise<void> => {
              try {
                direct[run] = await wrk(backend.port);
              } catch (err) {
                out.errors.push(`run ${run + 1} direct: ${errMsg(err)}`);
              }
            };
            const doBurrow = async (): Promise<void> => {
              meter!.begin();
              try {
                burrow[run] = await wrk(topo!.entryPort!);
              } catch (err) {
                const dead = topo!.failed();
                out.errors.push(`run ${run + 1} burrow: ${errMsg(err)}${dead ? `; ${dead}` : ''}`);
              } finally {
                meter!.end();
              }
            };
            await inTurn(run, doDirect, doBurrow);
            const b = burrow[run];
            const d = direct[run];
            out.runs.push({
              run,
              directRps: d && round(d.requestsPerSecond, 4),
              burrowRps: b && round(b.requestsPerSecond, 4),
              burrowMeanMs: b && round(b.latencyMeanMs, 3),
              burrowP99Ms: b && round(b.latencyP99Ms, 3),
              burrowErrors: b && b.socketErrors + b.non2xx,
              directErrors: d && d.socketErrors + d.non2xx,
            });
            const dead = topo.failed();
            if (dead) throw new Error(dead);
          }
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(errMsg(err));
        }
        const col = (xs: Array<WrkResult | undefined>, f: (r: WrkResult) => number): number[] =>
          Array.from({ length: p.runs }, (_, i) => (xs[i] ? f(xs[i]!) : NaN));
        if (cps) {
          out.metrics.push(
            metric('new connections', 'conn/s', col(burrow, (r) => r.requestsPerSecond), col(direct, (r) => r.requestsPerSecond), {
              target: '≥ 5,000/s',
              check: (m) => m.burrow!.median >= 5000,
            }),
            metric('mean latency', 'ms', col(burrow, (r) => r.latencyMeanMs), col(direct, (r) => r.latencyMeanMs), { ratio: false }),
            metric('p99 latency', 'ms', col(burrow, (r) => r.latencyP99Ms), col(direct, (r) => r.latencyP99Ms), { ratio: false }),
          );
        } else {
          out.metrics.push(
            metric('requests', 'req/s', col(burrow, (r) => r.requestsPerSecond), col(direct, (r) => r.requestsPerSecond), {
              target: '≥ 20% of direct',
              check: (m) => (m.ratio ? m.ratio.median >= 0.2 : undefined),
              gost: '~2,400 req/s, ~3%',
            }),
            metric('mean latency', 'ms', col(burrow, (r) => r.latencyMeanMs), col(direct, (r) => r.latencyMeanMs), {
              ratio: false,
              gost: '~20 ms',
            }),
            metric('p50 latency', 'ms', col(burrow, (r) => r.latencyP50Ms), col(direct, (r) => r.latencyP50Ms), { ratio: false }),
            metric('p99 latency', 'ms', col(burrow, (r) => r.latencyP99Ms), col(direct, (r) => r.latencyP99Ms), {
              ratio: false,
              target: '< 10 ms',
              check: (m) => m.burrow!.median < 10,
            }),
          );
        }
        out.metrics.push(
          metric(
            'errors (socket + non-2xx)',
            '',
            col(burrow, (r) => r.socketErrors + r.non2xx),
            col(direct, (r) => r.socketErrors + r.non2xx),
            { ratio: false },
          ),
        );
      } finally {
        if (meter) out.processes = meter.report();
        if (topo) noteLogProblems(topo.procs, out.notes);
        await topo?.stop();
        await backend.child.stop();
      }
    },
  };
}

export const httpKeepalive = httpCase('keepalive');
export const httpNewConnections = httpCase('cps');
