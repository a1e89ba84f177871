/**
 * Process start to first routed request. Each run starts fresh processes:
 * 1. the server (tunnel handler with an HTTP entry point): spawn → "listening" and "entrypoint"
 *    lines;
 * 2. then the client (rtcp to the HTTP backend): spawn → the first request through the entry
 *    point that the backend answers (requests are retried back to back until one is routed).
 */
import http from 'node:http';
import { noteLogProblems, spawnBurrow, type ProcReport } from '../lib/burrow';
import type { Child } from '../lib/proc';
import { metric, type CaseContext, type CaseDef, type CaseResult } from '../lib/types';
import { HOST, errMsg, isBenchBug, nowMs, round, sleep } from '../lib/util';
import { HTTP_HOST, HTTP_UUID, startHttpBackend } from './http';

function get(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port, path: '/', agent: false, headers: { Host: HTTP_HOST } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', () => resolve(0));
    });
    req.setTimeout(2000, () => req.destroy());
    req.once('error', () => resolve(0));
  });
}

export const startup: CaseDef = {
  id: 'startup',
  title: 'Process start to first routed request',
  baselineLabel: '—',
  smoke: true,
  needs: [],
  async run(ctx: CaseContext, out: CaseResult): Promise<void> {
    const p = ctx.params;
    const backend = await startHttpBackend();
    const serverReady: number[] = [];
    const tunnelUp: number[] = [];
    const firstRouted: number[] = [];
    out.notes.push(
      'server: spawn → its "listening" and "entrypoint" log lines; client: spawn (server already up) → first HTTP request ' +
        'through the entry point answered by the backend (polled back to back)',
    );
    try {
      for (let run = 0; run < p.startupRuns; run++) {
        let server: Child | undefined;
        let client: Child | undefined;
        try {
          server = spawnBurrow(
            'server',
            ['-L', `tunnel://${HOST}:0?entrypoint=${HOST}:0&tunnel=${HTTP_HOST}:${HTTP_UUID}`],
            ctx.env,
          );
          const s0 = server.spawnedAt;
          const lm = await server.waitFor(/listening on 127\.0\.0\.1:(\d+)\/tcp/, 10000);
          const em = await server.waitFor(/entrypoint: 127\.0\.0\.1:(\d+)/, 10000);
          serverReady[run] = nowMs() - s0;
          const entry = Number(em[1]);
          client = spawnBurrow(
            'client',
            ['-L', `rtcp://:0/${HOST}:${backend.port}`, '-F', `tunnel://${HOST}:${lm[1]}?tunnel.id=${HTTP_UUID}`],
            ctx.env,
          );
          const c0 = client.spawnedAt;
          let up: number | undefined;
          client.waitFor(/create tunnel on /, 10000).then(
            () => (up = nowMs() - c0),
            () => undefined,
          );
          let status = 0;
          let tries = 0;
          while (nowMs() - c0 < 10000) {
            tries++;
            status = await get(entry);
            if (status === 200) break;
            if (!client.running) throw new Error(`client exited${client.tailText()}`);
            await sleep(1);
          }
          if (status !== 200) throw new Error(`no routed request within 10 s (last status ${status})`);
          firstRouted[run] = nowMs() - c0;
          await client.waitFor(/create tunnel on /, 1000).catch(() => undefined);
          tunnelUp[run] = up ?? NaN;
          out.runs.push({
            run,
            serverReadyMs: round(serverReady[run]!, 4),
            clientTunnelUpMs: round(tunnelUp[run]!, 4),
            clientFirstRoutedMs: round(firstRouted[run]!, 4),
            requestsTried: tries,
          });
          if (run === 0) {
            out.commands = { server: server.commandLine, client: client.commandLine };
            for (const k of Object.keys(out.commands)) out.commands[k] = out.commands[k]!.replace(process.execPath, 'node');
          }
          const reports: ProcReport[] = [];
          for (const [role, c] of [
            ['server', server],
            ['client', client],
          ] as const) {
            const s = c.sample();
            reports.push({
              role,
              pid: c.pid,
              cpuSecondsMeasured: round(s?.cpuSeconds ?? NaN, 3),
              cpuSecondsTotal: round(s?.cpuSeconds ?? NaN, 3),
              peakRssMiB: round((s?.peakRssKiB ?? NaN) / 1024, 3),
              finalRssMiB: round((s?.rssKiB ?? NaN) / 1024, 3),
            });
          }
          if (run === 0) out.processes.push(...reports);
        } catch (err) {
          if (isBenchBug(err)) throw err;
          out.errors.push(`run ${run + 1}: ${errMsg(err)}`);
          serverReady[run] ??= NaN;
          firstRouted[run] = NaN;
        } finally {
          const procs = [];
          if (server) procs.push({ role: 'server', child: server });
          if (client) procs.push({ role: 'client', child: client });
          noteLogProblems(procs, out.notes);
          await Promise.all([client?.stop(), server?.stop()]);
        }
      }
    } finally {
      await backend.child.stop();
    }
    if (p.startupRuns > 1) out.notes.push('processes: figures of the first run only');
    out.metrics.push(
      metric('client start → first routed request', 'ms', firstRouted, undefined, {
        target: '< 300 ms',
        check: (m) => m.burrow!.median < 300,
      }),
      metric('client start → "create tunnel" logged', 'ms', tunnelUp),
      metric('server start → listening + entry point', 'ms', serverReady, undefined, {
        target: '< 300 ms',
        check: (m) => m.burrow!.median < 300,
      }),
    );
  },
};
