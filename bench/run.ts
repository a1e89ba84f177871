/**
 * `npm run bench` — burrow's benchmark suite. Starts everything itself on 127.0.0.1 (ports from
 * the OS), runs each case next to its baseline in the same run, and writes
 * bench/results/latest.{md,json}. See bench/README.md.
 *
 *   npm run bench                  full suite (5 runs per case; under 20 minutes)
 *   npm run bench -- --quick       3 runs, shorter measurements (under 6 minutes)
 *   npm run bench -- --smoke       each case once, 1 s each, a subset (what test/bench-smoke runs)
 *   npm run bench -- --profile     CPU profiles of the burrow processes during the single-stream case
 *
 * Other flags: --only=<id,...> --skip=<id,...> --runs=N --out=<dir> --list
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ROOT, burrowDir, startTopology, useSnapshot } from './lib/burrow';
import { killAllChildren, type ProcSample } from './lib/proc';
import { summarizeProfile } from './lib/profile';
import { loadSample, otherCores, stealShare } from './lib/sysload';
import { renderMarkdown, renderProfile, type ProfileRun, type Results } from './lib/report';
import { ensureTools, runIperf, startIperfServer } from './lib/tools';
import { MODES, type CaseDef, type CaseResult, type Mode, type Params } from './lib/types';
import { errMsg, freeTcpUdpPort, isBenchBug, nowMs, round, withTimeout } from './lib/util';
import { tcpStream, tcpStreamWss, udpStream, udpSmall, udpSweep, udpStreamDefaultLength, IPERF_HOST, TUNNEL_UUID } from './cases/stream';
import { httpKeepalive, httpNewConnections } from './cases/http';
import { httpForwarded } from './cases/forward';
import { h2Requests, httpsKeepalive, httpsNewConnections } from './cases/https';
import { idleConnections } from './cases/idle';
import { rttStream, removeNetns } from './cases/rtt';
import { startup } from './cases/startup';

export const CASES: CaseDef[] = [
  tcpStream,
  tcpStreamWss,
  udpStream,
  udpSmall,
  udpSweep,
  udpStreamDefaultLength,
  httpKeepalive,
  httpNewConnections,
  httpForwarded,
  httpsKeepalive,
  httpsNewConnections,
  h2Requests,
  idleConnections,
  rttStream,
  startup,
];

interface Options {
  mode: Mode;
  profile: boolean;
  only?: string[];
  skip: string[];
  runs?: number;
  out: string;
  list: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { mode: 'full', profile: false, skip: [], out: path.join(ROOT, 'bench', 'results'), list: false };
  for (const a of argv) {
    const [k, v] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    switch (k) {
      case '--quick':
        o.mode = 'quick';
        break;
      case '--smoke':
        o.mode = 'smoke';
        break;
      case '--full':
        o.mode = 'full';
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--only':
        o.only = (v ?? '').split(',').filter(Boolean);
        break;
      case '--skip':
        o.skip = (v ?? '').split(',').filter(Boolean);
        break;
      case '--runs':
        o.runs = Math.max(1, Number(v));
        break;
      case '--out':
        o.out = path.resolve(v ?? '');
        break;
      case '--list':
        o.list = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: npm run bench -- [--quick|--smoke] [--profile] [--only=id,...] [--skip=id,...] [--runs=N] [--out=dir] [--list]\n',
        );
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a} (try --help)`);
    }
  }
  for (const id of [...(o.only ?? []), ...o.skip]) {
    if (!CASES.some((c) => c.id === id)) throw new Error(`unknown case "${id}" (known: ${CASES.map((c) => c.id).join(', ')})`);
  }
  return o;
}

const t0 = Date.now();
function log(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

function machineInfo(): Record<string, unknown> {
  const git = (args: string[]): string | undefined => {
    const r = spawnSync('git', ['--no-optional-locks', ...args], { cwd: ROOT, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty = commit ? git(['status', '--porcelain', '--untracked-files=no'])?.length !== 0 : undefined;
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown',
    memGiB: round(os.totalmem() / 2 ** 30, 3),
    kernel: os.release(),
    node: process.version,
    hostname: os.hostname(),
    commit,
    dirty,
    distBuiltAt: existsSync(path.join(ROOT, 'dist', 'main.js')) ? statSync(path.join(ROOT, 'dist', 'main.js')).mtime.toISOString() : undefined,
  };
}

function newResult(c: CaseDef): CaseResult {
  return {
    id: c.id,
    title: c.title,
    baselineLabel: c.baselineLabel,
    status: 'ok',
    errors: [],
    notes: [],
    metrics: [],
    processes: [],
    runs: [],
    durationSec: 0,
  };
}

/** CPU profiles of server, client and visitor while one TCP stream runs (each direction). */
async function profilePass(params: Params, home: string, out: string): Promise<ProfileRun[]> {
  const dir = path.join(out, 'profiles');
  rmSync(dir, { recursive: true, force: true });
  const seconds = Math.max(3, params.streamSeconds * 2);
  const iperfPort = await freeTcpUdpPort();
  const iperf = await startIperfServer(iperfPort);
  const runs: ProfileRun[] = [];
  try {
    for (const direction of ['forward', 'reverse'] as const) {
      const profDir = path.join(dir, direction);
      log(`profile: ${direction}, ${seconds} s under node --cpu-prof`);
      const topo = await startTopology({
        transport: 'tcp',
        targetPort: iperfPort,
        host: IPERF_HOST,
        uuid: TUNNEL_UUID,
        visitor: true,
        env: { home, cpuProfDir: profDir },
      });
      let gbps: number | undefined;
      let m0 = 0;
      let m1 = 0;
      let s0: Array<ProcSample | undefined> = [];
      let s1: Array<ProcSample | undefined> = [];
      try {
        await runIperf({ port: topo.visitorPort!, seconds: 1, reverse: direction === 'reverse' }).catch(() => undefined);
        s0 = topo.procs.map((x) => x.child.sample());
        m0 = nowMs();
        const r = await runIperf({ port: topo.visitorPort!, seconds, reverse: direction === 'reverse' });
        m1 = nowMs();
        s1 = topo.procs.map((x) => x.child.sample());
        gbps = r.bitsPerSecond / 1e9;
      } finally {
        await topo.stop();
      }
      const summaries: ProfileRun['summaries'] = {};
      for (const role of ['visitor', 'server', 'client']) {
        const rd = path.join(profDir, role);
        const files = existsSync(rd) ? readdirSync(rd).filter((f) => f.endsWith('.cpuprofile')) : [];
        if (!files.length) {
          log(`profile: no profile written by the ${role}`);
          continue;
        }
        // Only the measured stream: no start-up, no warm-up (times relative to the spawn; the
        // profile starts a few ms later, well inside the margin).
        const child = topo.procs.find((x) => x.role === role)!.child;
        const window = { fromMs: m0 - child.spawnedAt + 200, toMs: m1 - child.spawnedAt - 200 };
        const sum = summarizeProfile(path.join(rd, files[0]!), burrowDir(), 15, window);
        sum.file = path.relative(ROOT, sum.file);
        const i = topo.procs.findIndex((x) => x.role === role);
        const a = s0[i]?.io;
        const b = s1[i]?.io;
        const secs = (m1 - m0) / 1000;
        if (a && b && secs > 0) {
          sum.syscalls = {
            readsPerSec: round((b.syscr - a.syscr) / secs, 3),
            readKiB: round((b.rchar - a.rchar) / Math.max(1, b.syscr - a.syscr) / 1024, 3),
            writesPerSec: round((b.syscw - a.syscw) / secs, 3),
            writeKiB: round((b.wchar - a.wchar) / Math.max(1, b.syscw - a.syscw) / 1024, 3),
          };
        }
        summaries[role] = sum;
      }
      runs.push({ direction, gbps: gbps === undefined ? undefined : round(gbps, 4), seconds, summaries });
    }
  } finally {
    await iperf.stop();
  }
  return runs;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.list) {
    for (const c of CASES) {
      const not = c.fullOnly ? '  (full suite only)' : c.smoke ? '' : '  (not in --smoke)';
      process.stdout.write(`${c.id.padEnd(22)} ${c.title}${not}\n`);
    }
    return;
  }
  const params: Params = { ...MODES[opts.mode] };
  if (opts.runs) params.runs = opts.runs;
  if (!existsSync(path.join(ROOT, 'dist', 'main.js'))) {
    throw new Error('dist/main.js not found: build first (npm run build), or use npm run bench');
  }
  mkdirSync(opts.out, { recursive: true });
  const home = mkdtempSync(path.join(os.tmpdir(), 'burrow-bench-'));
  // What is measured: the checkout as built now (a copy, immune to rebuilds during the run).
  const machine = machineInfo();
  useSnapshot(path.join(home, 'burrow'));
  const cleanup = (): void => {
    killAllChildren();
    removeNetns(`burrow-bench-${process.pid}`);
    rmSync(home, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping`);
      cleanup();
      process.exit(130);
    });
  }
  const startedAt = new Date().toISOString();
  const suiteLoad = loadSample();
  log(`mode ${opts.mode}${opts.profile ? ' (profile)' : ''}: checking tools`);
  const tools = ensureTools(log);
  for (const n of tools.notes) log(n);

  try {
    if (opts.profile) {
      if (!tools.iperf3) throw new Error('the profile pass needs iperf3');
      const runs = await profilePass(params, home, opts.out);
      const md = runs.map(renderProfile).join('\n\n');
      writeFileSync(path.join(opts.out, 'profile.md'), `# burrow CPU profiles\n\n${startedAt}\n\n${md}\n`);
      writeFileSync(path.join(opts.out, 'profile.json'), `${JSON.stringify({ startedAt, machine, runs }, null, 2)}\n`);
      process.stdout.write(`${md}\n`);
      log(`wrote ${path.relative(process.cwd(), path.join(opts.out, 'profile.md'))} and profiles/`);
      return;
    }

    const selected = CASES.filter(
      (c) =>
        (opts.only ? opts.only.includes(c.id) : opts.mode === 'smoke' ? c.smoke : opts.mode === 'full' || !c.fullOnly) &&
        !opts.skip.includes(c.id),
    );
    const results: CaseResult[] = [];
    for (const c of selected) {
      const r = newResult(c);
      results.push(r);
      const missing = c.needs.filter((t) => !tools[t]);
      if (missing.length) {
        r.status = 'skipped';
        r.notes.push(`skipped: ${missing.join(', ')} not available`);
        log(`${c.id}: skipped (${missing.join(', ')} not available)`);
        continue;
      }
      log(`${c.id}: ${c.title}`);
      const c0 = Date.now();
      const l0 = loadSample();
      try {
        await withTimeout(c.run({ mode: opts.mode, params, env: { home }, tools, log }, r), 300_000, c.id);
      } catch (err) {
        r.errors.push(errMsg(err));
        r.errorKind = isBenchBug(err) ? 'bench' : 'run';
        if (r.errorKind === 'bench' && err instanceof Error && err.stack) r.errors.push(err.stack);
        killAllChildren();
      }
      r.durationSec = round((Date.now() - c0) / 1000, 3);
      const l1 = loadSample();
      const oc = otherCores(l0, l1);
      if (oc !== undefined) r.otherCpuCores = round(oc, 3);
      const st = stealShare(l0, l1);
      if (st !== undefined) r.stealPercent = round(st * 100, 3);
      if (r.status !== 'skipped') {
        const measured = r.metrics.some((m) => m.burrow);
        if (r.errors.length) {
          r.status = measured ? 'partial' : 'error';
          r.errorKind ??= 'run';
        }
      }
      for (const m of r.metrics) {
        const ratio = m.ratio ? ` (${round(m.ratio.median * 100, 3)}% of baseline)` : '';
        log(`  ${m.name}: ${m.burrow ? round(m.burrow.median, 4) : '—'} ${m.unit}${ratio}${m.met === false ? '  [below target]' : ''}`);
      }
      for (const e of r.errors) log(`  error: ${e.split('\n')[0]}`);
      for (const n of r.notes.filter((x) => x.startsWith('skipped'))) log(`  ${n}`);
    }
    const finishedAt = new Date().toISOString();
    const res: Results = {
      tool: 'burrow-bench',
      schema: 1,
      mode: opts.mode,
      params,
      startedAt,
      finishedAt,
      durationSec: round((Date.now() - t0) / 1000, 4),
      machine: (() => {
        const end = loadSample();
        return {
          ...machine,
          otherCpuCores: round(otherCores(suiteLoad, end) ?? NaN, 3),
          stealPercent: round((stealShare(suiteLoad, end) ?? NaN) * 100, 3),
        };
      })(),
      tools,
      cases: results,
    };
    const md = renderMarkdown(res);
    writeFileSync(path.join(opts.out, 'latest.json'), `${JSON.stringify(res, null, 2)}\n`);
    writeFileSync(path.join(opts.out, 'latest.md'), md);
    process.stdout.write(md);
    log(`done in ${res.durationSec} s; wrote ${path.relative(process.cwd(), path.join(opts.out, 'latest.md'))} and latest.json`);
  } finally {
    cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${errMsg(err)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
