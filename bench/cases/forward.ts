/**
 * HTTP through a forwarded hop: two servers share a Redis for service discovery, the client is
 * bound to server A. wrk against B's entry point (B → A's entry point → tunnel → client →
 * backend) next to wrk against A's entry point (the same request without the hop), in turn,
 * 50 keep-alive connections each.
 */
import { CpuMeter, noteLogProblems, spawnBurrow, type ProcRole } from '../lib/burrow';
import { Child } from '../lib/proc';
import { runWrk, type WrkResult } from '../lib/tools';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { HOST, errMsg, freeTcpPort, inTurn, isBenchBug, round } from '../lib/util';
import { HTTP_HOST, HTTP_UUID, startHttpBackend } from './http';

export const httpForwarded: CaseDef = {
  id: 'http-forwarded',
  title: 'HTTP through a forwarded hop (server B → server A → client), wrk -c 50 keep-alive, tiny body',
  baselineLabel: 'the same request through server A directly',
  smoke: false,
  needs: ['wrk'],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const backend = await startHttpBackend();
    const procs: Array<{ role: ProcRole; child: Child }> = [];
    let meter: CpuMeter | undefined;
    let redis: Child | undefined;
    const headers = [`Host: ${HTTP_HOST}`];
    out.notes.push(`wrk -c 50 -t 2 -d ${p.httpSeconds}s --latency -H 'Host: ${HTTP_HOST}'`);
    try {
      const redisPort = await freeTcpPort();
      redis = new Child({
        name: 'redis-server',
        cmd: 'redis-server',
        args: ['--port', String(redisPort), '--bind', HOST, '--save', '', '--appendonly', 'no'],
      });
      await redis.waitFor(/Ready to accept connections/, 15_000);
      const q = `entrypoint=${HOST}:0&tunnel=${HTTP_HOST}:${HTTP_UUID}&tunnel.sd=redis://${HOST}:${redisPort}/0`;
      const start = async (role: ProcRole & ('server' | 'server-b')): Promise<{ port: number; ep: number; child: Child }> => {
        const child = spawnBurrow(role, ['-L', `tunnel://${HOST}:0?${q}`], ctx.env);
        procs.push({ role, child });
        const lm = await child.waitFor(/listening on 127\.0\.0\.1:(\d+)\/tcp/, 15_000);
        const em = await child.waitFor(/entrypoint: 127\.0\.0\.1:(\d+)/, 15_000);
        return { port: Number(lm[1]), ep: Number(em[1]), child };
      };
      const a = await start('server');
      const b = await start('server-b');
      const client = spawnBurrow('client', ['-L', `rtcp://:0/${HOST}:${backend.port}`, '-F', `tunnel://${HOST}:${a.port}?tunnel.id=${HTTP_UUID}`], ctx.env);
      procs.push({ role: 'client', child: client });
      await client.waitFor(/create tunnel on /, 15_000);
      for (const x of procs) x.child.quiet();
      out.commands = Object.fromEntries(procs.map((x) => [x.role, x.child.commandLine.replace(process.execPath, 'node')]));
      out.commands.redis = redis.commandLine;
      meter = new CpuMeter(procs);
      const wrk = (port: number, seconds = p.httpSeconds): Promise<WrkResult> =>
        runWrk({ url: `http://${HOST}:${port}/`, seconds, connections: 50, threads: 2, headers });
      if (p.warmupSeconds > 0) {
        await wrk(a.ep, p.warmupSeconds).catch(() => undefined);
        await wrk(b.ep, p.warmupSeconds).catch(() => undefined);
      }
      const direct: Array<WrkResult | undefined> = [];
      const hop: Array<WrkResult | undefined> = [];
      try {
        for (let run = 0; run < p.runs; run++) {
          await inTurn(
            run,
            async () => {
              try {
                direct[run] = await wrk(a.ep);
              } catch (err) {
                out.errors.push(`run ${run + 1} through A: ${errMsg(err)}`);
              }
            },
            async () => {
              meter!.begin();
              try {
                hop[run] = await wrk(b.ep);
              } catch (err) {
                out.errors.push(`run ${run + 1} through B: ${errMsg(err)}`);
              } finally {
                meter!.end();
              }
            },
          );
          const h = hop[run];
          const d = direct[run];
          out.runs.push({
            run,
            directRps: d && round(d.requestsPerSecond, 4),
            burrowRps: h && round(h.requestsPerSecond, 4),
            burrowMeanMs: h && round(h.latencyMeanMs, 3),
            burrowP99Ms: h && round(h.latencyP99Ms, 3),
            burrowErrors: h && h.socketErrors + h.non2xx,
            directErrors: d && d.socketErrors + d.non2xx,
          });
          for (const x of procs) if (!x.child.running) throw new Error(`${x.child.name} exited${x.child.tailText()}`);
        }
      } catch (err) {
        if (isBenchBug(err)) throw err;
        out.errors.push(errMsg(err));
      }
      const col = (xs: Array<WrkResult | undefined>, f: (r: WrkResult) => number): number[] =>
        Array.from({ length: p.runs }, (_, i) => (xs[i] ? f(xs[i]!) : NaN));
      out.metrics.push(
        metric('requests', 'req/s', col(hop, (r) => r.requestsPerSecond), col(direct, (r) => r.requestsPerSecond), {
          target: '≥ 60% of direct',
          check: (m) => (m.ratio ? m.ratio.median >= 0.6 : undefined),
        }),
        metric('mean latency', 'ms', col(hop, (r) => r.latencyMeanMs), col(direct, (r) => r.latencyMeanMs), { ratio: false }),
        metric('p99 latency', 'ms', col(hop, (r) => r.latencyP99Ms), col(direct, (r) => r.latencyP99Ms), { ratio: false }),
        metric('errors (socket + non-2xx)', '', col(hop, (r) => r.socketErrors + r.non2xx), col(direct, (r) => r.socketErrors + r.non2xx), {
          ratio: false,
        }),
      );
    } finally {
      if (meter) out.processes = meter.report();
      noteLogProblems(procs, out.notes);
      await Promise.all(procs.map((x) => x.child.stop()));
      await redis?.stop();
      await backend.child.stop();
    }
  },
};
