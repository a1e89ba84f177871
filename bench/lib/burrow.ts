/**
 * Starting burrow the way a user does (`bin/burrow` with gost's flags) in the three roles of
 * the seed's iperf example: server (`tunnel` handler, optionally with an HTTP entry point),
 * client (`rtcp`/`rudp` services whose chain ends in the tunnel connector) and visitor
 * (`tcp`/`udp` forwards to the tunnel). Readiness is taken from the log lines, never a sleep.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { Child, type ProcSample } from './proc';
import { HOST, errMsg, freeTcpUdpPort, round } from './util';

export const ROOT = path.resolve(__dirname, '..', '..');
/** Where the burrow under test lives: the checkout, or a snapshot of its build. */
let burrowRoot = ROOT;

export function burrowDir(): string {
  return burrowRoot;
}

/**
 * Copies bin/, dist/ and package.json to `dir` (node_modules linked) and runs burrow from there,
 * so a rebuild of the checkout while the bench runs cannot change what is measured.
 */
export function useSnapshot(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const d of ['bin', 'dist', 'package.json']) cpSync(path.join(ROOT, d), path.join(dir, d), { recursive: true });
  // The UDP addon, when built: without it the snapshot would run on node:dgram.
  const addon = path.join('native', 'build', 'Release', 'burrow_udp.node');
  if (existsSync(path.join(ROOT, addon))) cpSync(path.join(ROOT, addon), path.join(dir, addon));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  burrowRoot = dir;
}

/**
 * One of bench/endpoints/*.ts in its own Node process, started with `args`; resolves once it
 * has printed `{"port":N}`.
 */
export async function startEndpoint(name: string, script: string, args: string[] = []): Promise<{ child: Child; port: number }> {
  const child = new Child({
    name,
    cmd: process.execPath,
    args: ['--import', 'tsx', path.join(ROOT, 'bench', 'endpoints', script), ...args],
    cwd: ROOT,
  });
  const m = await child.waitFor(/"port":(\d+)/, 15000);
  child.quiet();
  return { child, port: Number(m[1]) };
}

export type Role = 'server' | 'client' | 'visitor' | 'server-b';
/** A role, or a numbered visitor ("visitor-2") when a case runs several. */
export type ProcRole = Role | `visitor-${number}`;
export type Transport = 'tcp' | 'wss';

export interface BurrowEnv {
  /** BURROW_HOME for the run (the auto-generated TLS certificate lives there). */
  home: string;
  /** When set, each process runs under `node --cpu-prof` and writes its profile here (per role). */
  cpuProfDir?: string;
  nofile?: number;
  netns?: string;
}

/**
 * The node flags of bin/burrow's `#!/usr/bin/env -S node ...` line: processes are started as
 * `node <flags> bin/burrow` (so --cpu-prof can be added) and run as `./bin/burrow` does.
 */
export function binNodeFlags(root = burrowRoot): string[] {
  const first = readFileSync(path.join(root, 'bin', 'burrow'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node(.*)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/).filter(Boolean) : [];
}

export function spawnBurrow(role: Role, args: string[], env: BurrowEnv): Child {
  // BENCH_NODE_ARGS: extra node flags for every burrow process (--inspect=127.0.0.1:0, --trace-gc).
  const extra = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const nodeArgs: string[] = [...binNodeFlags(), ...extra];
  if (env.cpuProfDir) {
    const dir = path.join(env.cpuProfDir, role);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  return new Child({
    name: `burrow ${role}`,
    cmd: process.execPath,
    args: [...nodeArgs, path.join(burrowRoot, 'bin', 'burrow'), ...args],
    cwd: ROOT,
    env: { BURROW_HOME: env.home, BURROW_SHUTDOWN_GRACE_MS: '300' },
    nofile: env.nofile,
    netns: env.netns,
  });
}

export interface TopologyOptions {
  transport: Transport;
  /** Where the client's rtcp (and rudp) services forward to. */
  targetPort: number;
  /** Host name routed to the tunnel (`tunnel=<host>:<uuid>`). */
  host: string;
  uuid: string;
  /** Start a visitor (tcp, plus udp when `udp`) on one port free for both. */
  visitor: boolean;
  /** How many visitors (each on its own port; default 1). */
  visitors?: number;
  udp?: boolean;
  /** Give the server an HTTP entry point on a port from the OS. */
  entrypoint?: boolean;
  /** More `key=value` options of the server's `-L` URL (e.g. the entry point's certificate files). */
  serverQuery?: string[];
  env: BurrowEnv;
  readyTimeoutMs?: number;
  /**
   * Given the server's port, returns the port the client dials instead (something in front of
   * the server on the tunnel hop, such as a delay line); visitors still dial the server.
   */
  clientVia?: (serverPort: number) => Promise<number>;
}

export interface Topology {
  server: Child;
  client: Child;
  visitor?: Child;
  serverPort: number;
  visitorPort?: number;
  /** Every visitor's port (the first is visitorPort). */
  visitorPorts: number[];
  entryPort?: number;
  procs: Array<{ role: ProcRole; child: Child }>;
  /** Command lines, for the results. */
  commands: Record<string, string>;
  /** The first process that exited on its own, if any. */
  failed(): string | undefined;
  stop(): Promise<void>;
}

function connectorUrl(o: TopologyOptions, port: number): string {
  const scheme = o.transport === 'wss' ? 'tunnel+wss' : 'tunnel';
  return `${scheme}://${HOST}:${port}?tunnel.id=${o.uuid}`;
}

async function startOnce(o: TopologyOptions): Promise<Topology> {
  const timeout = o.readyTimeoutMs ?? 15000;
  const started: Array<{ role: ProcRole; child: Child }> = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.child.stop()));
  };
  try {
    const scheme = o.transport === 'wss' ? 'tunnel+wss' : 'tunnel';
    let q = `tunnel=${o.host}:${o.uuid}`;
    if (o.entrypoint) q = `entrypoint=${HOST}:0&${q}`;
    for (const kv of o.serverQuery ?? []) q += `&${kv}`;
    const server = spawnBurrow('server', ['-L', `${scheme}://${HOST}:0?${q}`], o.env);
    started.push({ role: 'server', child: server });
    const lm = await server.waitFor(/listening on 127\.0\.0\.1:(\d+)\/tcp/, timeout);
    const serverPort = Number(lm[1]);
    let entryPort: number | undefined;
    if (o.entrypoint) {
      const em = await server.waitFor(/entrypoint: 127\.0\.0\.1:(\d+)/, timeout);
      entryPort = Number(em[1]);
    }
    const fwd = connectorUrl(o, serverPort);
    const cargs = ['-L', `rtcp://:0/${HOST}:${o.targetPort}`];
    if (o.udp) cargs.push('-L', `rudp://:0/${HOST}:${o.targetPort}`);
    cargs.push('-F', o.clientVia ? connectorUrl(o, await o.clientVia(serverPort)) : fwd);
    const client = spawnBurrow('client', cargs, o.env);
    started.push({ role: 'client', child: client });
    const visitors: Array<{ child: Child; port: number }> = [];
    const nv = o.visitor ? Math.max(1, o.visitors ?? 1) : 0;
    for (let i = 0; i < nv; i++) {
      const port = await freeTcpUdpPort();
      const vargs = ['-L', `tcp://${HOST}:${port}/${o.host}`];
      if (o.udp) vargs.push('-L', `udp://${HOST}:${port}/${o.host}?keepalive=true`);
      vargs.push('-F', fwd);
      const child = spawnBurrow('visitor', vargs, o.env);
      visitors.push({ child, port });
      started.push({ role: i === 0 ? 'visitor' : `visitor-${i + 1}`, child });
    }
    await client.waitForLines(/create tunnel on /, o.udp ? 2 : 1, timeout);
    for (const v of visitors) {
      await v.child.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${v.port}/tcp`), timeout);
      if (o.udp) await v.child.waitFor(new RegExp(`listening on 127\\.0\\.0\\.1:${v.port}/udp`), timeout);
    }
    for (const p of started) p.child.quiet();
    const commands: Record<string, string> = {};
    for (const p of started) commands[p.role] = p.child.commandLine.replace(process.execPath, 'node');
    return {
      server,
      client,
      visitor: visitors[0]?.child,
      serverPort,
      visitorPort: visitors[0]?.port,
      visitorPorts: visitors.map((v) => v.port),
      entryPort,
      procs: started,
      commands,
      failed() {
        for (const p of started) {
          if (!p.child.running) {
            const e = p.child.exitInfo;
            return `burrow ${p.role} exited (code ${e?.code ?? '?'}${e?.signal ? `, signal ${e.signal}` : ''})${p.child.tailText()}`;
          }
        }
        return undefined;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Starts server, client and (optionally) visitor; retries with fresh ports if a port was taken. */
export async function startTopology(o: TopologyOptions): Promise<Topology> {
  let last: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(o);
    } catch (err) {
      last = err;
      if (!/EADDRINUSE|address already in use/i.test(errMsg(err))) break;
    }
  }
  throw last;
}

/** Adds a note per process that logged warnings or errors (with the last of them). */
export function noteLogProblems(procs: Array<{ role: string; child: Child }>, notes: string[]): void {
  for (const p of procs) {
    if (!p.child.problemCount) continue;
    notes.push(
      `burrow ${p.role} logged ${p.child.problemCount} warning/error line(s); last: ${p.child.problems.slice(-3).join(' ')}`,
    );
  }
}

export interface ProcReport {
  role: string;
  pid: number | undefined;
  /** CPU seconds (user+system) while the tunneled measurements ran. */
  cpuSecondsMeasured: number;
  /** CPU seconds over the whole life of the process in this case. */
  cpuSecondsTotal: number;
  peakRssMiB: number;
  finalRssMiB: number;
  /** Average bytes per read / write syscall while measured (from /proc/<pid>/io), KiB. */
  readKiBPerSyscall?: number;
  writeKiBPerSyscall?: number;
}

/** Accumulates each process's CPU time over measurement windows. */
export class CpuMeter {
  readonly #procs: Array<{ role: ProcRole; child: Child }>;
  readonly #measured = new Map<string, number>();
  readonly #io = new Map<string, { rchar: number; wchar: number; syscr: number; syscw: number }>();
  #start = new Map<string, ProcSample | undefined>();
  readonly #last = new Map<string, ProcSample>();

  readonly #withIo: boolean;

  /** `withIo`: report bytes per read/write syscall (meaningful for TCP streams, which use read/write). */
  constructor(procs: Array<{ role: ProcRole; child: Child }>, withIo = false) {
    this.#procs = procs;
    this.#withIo = withIo;
  }

  begin(): void {
    this.#start = new Map(this.#procs.map((p) => [p.role, p.child.sample()]));
  }

  /** Ends a window; returns the CPU seconds of all processes in it. */
  end(): number {
    let sum = 0;
    for (const p of this.#procs) {
      const a = this.#start.get(p.role);
      const b = p.child.sample();
      if (b) this.#last.set(p.role, b);
      if (a && b) {
        const d = b.cpuSeconds - a.cpuSeconds;
        sum += d;
        this.#measured.set(p.role, (this.#measured.get(p.role) ?? 0) + d);
        if (a.io && b.io) {
          const acc = this.#io.get(p.role) ?? { rchar: 0, wchar: 0, syscr: 0, syscw: 0 };
          acc.rchar += b.io.rchar - a.io.rchar;
          acc.wchar += b.io.wchar - a.io.wchar;
          acc.syscr += b.io.syscr - a.io.syscr;
          acc.syscw += b.io.syscw - a.io.syscw;
          this.#io.set(p.role, acc);
        }
      }
    }
    return sum;
  }

  /** Final figures; call while the processes are still running. */
  report(): ProcReport[] {
    return this.#procs.map((p) => {
      const s = p.child.sample() ?? this.#last.get(p.role);
      const io = this.#withIo ? this.#io.get(p.role) : undefined;
      return {
        role: p.role,
        pid: p.child.pid,
        cpuSecondsMeasured: round(this.#measured.get(p.role) ?? 0, 3),
        cpuSecondsTotal: round(s?.cpuSeconds ?? NaN, 3),
        peakRssMiB: round((s?.peakRssKiB ?? NaN) / 1024, 3),
        finalRssMiB: round((s?.rssKiB ?? NaN) / 1024, 3),
        readKiBPerSyscall: io && io.syscr > 0 ? round(io.rchar / io.syscr / 1024, 3) : undefined,
        writeKiBPerSyscall: io && io.syscw > 0 ? round(io.wchar / io.syscw / 1024, 3) : undefined,
      };
    });
  }
}
