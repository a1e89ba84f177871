/**
 * Child processes of the bench: spawning (optionally with a raised file limit and inside a
 * network namespace), waiting for log lines instead of sleeping, CPU time and memory from
 * /proc, and stopping. Every child is registered so an interrupted bench leaves nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { nowMs } from './util';

const TAIL_LINES = 200;

let clkTck = 100;
try {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  if (Number.isFinite(n) && n > 0) clkTck = n;
} catch {
  /* keep 100 */
}

export interface ProcSample {
  /** utime + stime, seconds. */
  cpuSeconds: number;
  rssKiB: number;
  /** Peak resident set size (VmHWM), KiB. */
  peakRssKiB: number;
  fds?: number;
  /** /proc/<pid>/io: bytes and calls of read-like and write-like syscalls (sockets included). */
  io?: { rchar: number; wchar: number; syscr: number; syscw: number };
}

/** CPU time and memory of a live process from /proc; undefined once it is gone. */
export function sampleProc(pid: number | undefined): ProcSample | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at index 2 ("state").
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) : NaN;
    };
    let fds: number | undefined;
    try {
      fds = readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      fds = undefined;
    }
    let io: ProcSample['io'];
    try {
      const t = readFileSync(`/proc/${pid}/io`, 'utf8');
      const get = (k: string): number => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(t)?.[1] ?? NaN);
      io = { rchar: get('rchar'), wchar: get('wchar'), syscr: get('syscr'), syscw: get('syscw') };
    } catch {
      io = undefined;
    }
    return { cpuSeconds: (utime + stime) / clkTck, rssKiB: kib('VmRSS'), peakRssKiB: kib('VmHWM'), fds, io };
  } catch {
    return undefined;
  }
}

export interface SpawnOptions {
  /** Label used in errors and results ("server", "iperf3-server", ...). */
  name: string;
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Raise the open-files limit to this (or to the hard limit) before exec. */
  nofile?: number;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
}

const live = new Set<Child>();

/** Kills every child still running (used on SIGINT and at the very end). */
export function killAllChildren(): void {
  for (const c of live) c.kill('SIGKILL');
}

interface Waiter {
  re: RegExp;
  count: number;
  seen: RegExpMatchArray[];
  resolve: (m: RegExpMatchArray[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly spawnedAt = nowMs();
  readonly commandLine: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Last lines of stdout+stderr, for error reports. */
  readonly tail: string[] = [];
  /** pino warn/error/fatal lines: how many, and the last few. */
  problemCount = 0;
  readonly problems: string[] = [];
  #partial = '';
  #waiters: Waiter[] = [];
  #lineListeners: Array<(line: string) => void> = [];
  /** Every line is kept (for waitFor) until quiet() is called. */
  #history: string[] = [];
  #keepHistory = true;
  #spawnError: Error | undefined;

  constructor(opts: SpawnOptions) {
    this.name = opts.name;
    let cmd = opts.cmd;
    let args = opts.args;
    if (opts.netns) {
      args = ['netns', 'exec', opts.netns, cmd, ...args];
      cmd = 'ip';
    }
    if (opts.nofile) {
      // exec keeps the PID, so /proc figures belong to the real process.
      const n = opts.nofile;
      args = ['-c', `ulimit -n ${n} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`, cmd, ...args];
      cmd = '/bin/sh';
    }
    this.commandLine = [opts.cmd, ...opts.args].map((a) => (/[\s?&;*]/.test(a) ? `'${a}'` : a)).join(' ');
    this.proc = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(this);
    this.proc.on('error', (err) => {
      this.#spawnError = err;
    });
    const onData = (chunk: Buffer): void => this.#onData(chunk.toString('utf8'));
    this.proc.stdout!.on('data', onData);
    this.proc.stderr!.on('data', onData);
    this.proc.stdin!.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        live.delete(this);
        this.exitInfo = { code, signal };
        const why = this.#spawnError
          ? `${this.name}: ${this.#spawnError.message}`
          : `${this.name} exited (code ${code}${signal ? `, signal ${signal}` : ''})`;
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`${why} before printing ${w.re}${this.tailText()}`));
        }
        this.#waiters = [];
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined && this.proc.exitCode === null;
  }

  tailText(n = 15): string {
    const lines = this.tail.slice(-n);
    return lines.length ? `\n  last output of ${this.name}:\n    ${lines.join('\n    ')}` : '';
  }

  onLine(fn: (line: string) => void): void {
    this.#lineListeners.push(fn);
  }

  /** Stops keeping every line (a busy process may log a lot); the tail is still kept. */
  quiet(): void {
    this.#keepHistory = false;
    this.#history = [];
  }

  #onData(text: string): void {
    const parts = (this.#partial + text).split('\n');
    this.#partial = parts.pop() ?? '';
    if (this.#partial.length > 64 * 1024) this.#partial = this.#partial.slice(-1024);
    for (const line of parts) {
      if (!line) continue;
      this.tail.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
      if (this.tail.length > TAIL_LINES) this.tail.splice(0, this.tail.length - TAIL_LINES);
      if (this.#keepHistory) this.#history.push(line);
      if (/^\{"level":(4|5|6)0,/.test(line)) {
        this.problemCount++;
        this.problems.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
        if (this.problems.length > 5) this.problems.shift();
      }
      for (const fn of this.#lineListeners) fn(line);
      if (!this.#waiters.length) continue;
      for (const w of [...this.#waiters]) {
        const m = w.re.exec(line);
        if (!m) continue;
        w.seen.push(m);
        if (w.seen.length >= w.count) {
          clearTimeout(w.timer);
          this.#waiters = this.#waiters.filter((x) => x !== w);
          w.resolve(w.seen);
        }
      }
    }
  }

  /** Resolves with the first `count` lines matching `re` (lines already printed count too). */
  waitForLines(re: RegExp, count: number, timeoutMs: number): Promise<RegExpMatchArray[]> {
    const seen: RegExpMatchArray[] = [];
    for (const line of this.#history) {
      const m = re.exec(line);
      if (m) seen.push(m);
      if (seen.length >= count) return Promise.resolve(seen.slice(0, count));
    }
    if (!this.running) {
      return Promise.reject(new Error(`${this.name} is not running (waiting for ${re})${this.tailText()}`));
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        re,
        count,
        seen,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          reject(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms${this.tailText()}`));
        }, timeoutMs),
      };
      this.#waiters.push(w);
    });
  }

  async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const [m] = await this.waitForLines(re, 1, timeoutMs);
    return m!;
  }

  sample(): ProcSample | undefined {
    return sampleProc(this.pid);
  }

  send(line: string): void {
    this.proc.stdin!.write(`${line}\n`);
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) {
      try {
        this.proc.kill(signal);
      } catch {
        /* already gone */
      }
    }
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) {
      await this.exited;
      return;
    }
    this.kill(signal);
    const t = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
