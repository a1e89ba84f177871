/**
 * Runs the real CLI (`./bin/burrow`) as child processes for end-to-end tests.
 *
 *   const server = burrow(['-L', 'tunnel://127.0.0.1:0?entrypoint=127.0.0.1:0', '-D']);
 *   after(stopAll);
 *   const port = await server.listeningPort();      // from "listening on 127.0.0.1:NNN/tcp"
 *   const ep = await server.entrypointPort();       // from "entrypoint: 127.0.0.1:NNN"
 *
 * Every stdout/stderr line is kept; JSON lines are parsed into `lines`. `waitFor` resolves with
 * the first line (already seen or still to come) matching a predicate, and fails with the
 * process's recent output when the timeout passes or the process exits first. Everything a
 * test file spawned is killed by `stopAll()` (call it from `after`) and, as a last resort, when
 * the test process exits. Temp files made here are removed by `stopAll()` as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const BURROW_BIN = path.join(REPO_ROOT, 'bin', 'burrow');
const DIST_MAIN = path.join(REPO_ROOT, 'dist', 'main.js');

export type LogLine = Record<string, unknown> & { level?: string; msg?: string; time?: string };
export type LinePredicate = (line: LogLine) => boolean;

export interface WaitOptions {
  timeoutMs?: number;
  /** Only consider lines with an index ≥ this (see `mark()`). Default 0: all lines so far. */
  from?: number;
  /** Describes what is awaited, for the error message. */
  what?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Waiter {
  pred: LinePredicate;
  from: number;
  resolve: (l: LogLine) => void;
  reject: (e: Error) => void;
}

const live = new Set<BurrowProcess>();
const tempDirs: string[] = [];
let exitHookInstalled = false;
let distChecked = false;

function checkDist(): void {
  if (distChecked) return;
  distChecked = true;
  if (!existsSync(DIST_MAIN)) {
    throw new Error(`${DIST_MAIN} is missing: build first (npx tsc -p tsconfig.json)`);
  }
  if (distIsStale()) {
    process.stderr.write(`warning: src/ is newer than dist/: the CLI under test may be out of date (npx tsc -p tsconfig.json)\n`);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) {
      try {
        p.proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
}

export class BurrowProcess {
  readonly name: string;
  readonly args: readonly string[];
  readonly proc: ChildProcess;
  /** Parsed JSON lines (stdout and stderr) in arrival order. */
  readonly lines: LogLine[] = [];
  /** Every line as text, prefixed with its stream, for diagnostics and non-JSON output. */
  readonly output: string[] = [];
  readonly exited: Promise<ExitInfo>;
  exit: ExitInfo | undefined;
  readonly #waiters = new Set<Waiter>();

  constructor(args: readonly string[], opts: { name?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
    checkDist();
    installExitHook();
    this.name = opts.name ?? 'burrow';
    this.args = args;
    this.proc = spawn(BURROW_BIN, [...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, BURROW_SHUTDOWN_GRACE_MS: '200', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this);
    this.#collect(this.proc.stdout!, 'out');
    this.#collect(this.proc.stderr!, 'err');
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        // Let the last buffered lines arrive before failing waiters.
        setImmediate(() => {
          for (const w of this.#waiters) w.reject(this.#error(`exited (code ${code}, signal ${signal})`, w));
          this.#waiters.clear();
        });
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Index of the next line: pass as `from` to wait only for lines logged after now. */
  mark(): number {
    return this.lines.length;
  }

  #collect(stream: NodeJS.ReadableStream, tag: string): void {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.#line(text, tag);
      }
    });
    stream.on('end', () => {
      if (buf) this.#line(buf, tag);
      buf = '';
    });
  }

  #line(text: string, tag: string): void {
    if (!text) return;
    this.output.push(`[${tag}] ${text}`);
    if (!text.startsWith('{')) return;
    let obj: LogLine;
    try {
      obj = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    const index = this.lines.length;
    this.lines.push(obj);
    for (const w of [...this.#waiters]) {
      if (index >= w.from && w.pred(obj)) {
        this.#waiters.delete(w);
        w.resolve(obj);
      }
    }
  }

  #error(reason: string, w: { what?: string } | Waiter): Error {
    const what = 'what' in w && w.what ? w.what : 'a matching log line';
    return new Error(`${this.name} (pid ${this.proc.pid}): ${reason} while waiting for ${what}\n${this.recentOutput()}`);
  }

  /** The last `n` output lines, for error messages. */
  recentOutput(n = 40): string {
    const tail = this.output.slice(-n);
    return `--- ${this.name}: ${BURROW_BIN} ${this.args.join(' ')}\n${tail.join('\n')}\n---`;
  }

  /** Lines (from index `from`) matching `pred`. */
  filter(pred: LinePredicate, from = 0): LogLine[] {
    return this.lines.slice(from).filter(pred);
  }

  count(pred: LinePredicate, from = 0): number {
    return this.filter(pred, from).length;
  }

  /** The first line from `opts.from` on matching `pred`, already logged or still to come. */
  waitFor(pred: LinePredicate, opts: WaitOptions = {}): Promise<LogLine> {
    const from = opts.from ?? 0;
    for (let i = from; i < this.lines.length; i++) {
      if (pred(this.lines[i]!)) return Promise.resolve(this.lines[i]!);
    }
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const w: Waiter & { what?: string } = {
        pred,
        from,
        what: opts.what,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(this.#error(`no match within ${timeoutMs} ms`, w));
      }, timeoutMs);
      if (this.exit) {
        clearTimeout(timer);
        reject(this.#error(`already exited (code ${this.exit.code}, signal ${this.exit.signal})`, w));
        return;
      }
      this.#waiters.add(w);
    });
  }

  /** Waits for a line whose `msg` matches `re`. */
  waitForMsg(re: RegExp, opts: WaitOptions = {}): Promise<LogLine> {
    return this.waitFor((l) => typeof l.msg === 'string' && re.test(l.msg), { what: `msg ~ ${re}`, ...opts });
  }

  /**
   * Address from a service's `listening on <addr>/<net>` line; with `service`, only that
   * service's line (the `service` field), with `network` only that network.
   */
  async listening(opts: { service?: string; network?: 'tcp' | 'udp'; timeoutMs?: number } = {}): Promise<{ host: string; port: number; addr: string }> {
    const re = /^listening on (.*):(\d+)\/(\w+)$/;
    const line = await this.waitFor(
      (l) => {
        if (typeof l.msg !== 'string') return false;
        const m = re.exec(l.msg);
        if (!m) return false;
        if (opts.service && l.service !== opts.service) return false;
        if (opts.network && m[3] !== opts.network) return false;
        return true;
      },
      { timeoutMs: opts.timeoutMs ?? 10_000, what: `"listening on" for ${opts.service ?? 'any service'}` },
    );
    const m = re.exec(line.msg!)!;
    return { host: m[1]!, port: Number(m[2]), addr: `${m[1]}:${m[2]}` };
  }

  async listeningPort(opts: { service?: string; network?: 'tcp' | 'udp'; timeoutMs?: number } = {}): Promise<number> {
    return (await this.listening(opts)).port;
  }

  /** Port from the tunnel server's `entrypoint: <addr>` line (the n-th one, default first). */
  async entrypointPort(nth = 0, timeoutMs = 10_000): Promise<number> {
    const re = /^entrypoint: .*:(\d+)$/;
    let seen = -1;
    const line = await this.waitFor((l) => typeof l.msg === 'string' && re.test(l.msg) && ++seen === nth, {
      timeoutMs,
      what: `entrypoint #${nth}`,
    });
    return Number(re.exec(line.msg!)![1]);
  }

  /** The client's `create tunnel on <endpoint>:<port>/<net> OK ...` line (after `from`). */
  tunnelCreated(opts: { from?: number; network?: 'tcp' | 'udp'; service?: string; timeoutMs?: number } = {}): Promise<LogLine> {
    return this.waitFor(
      (l) =>
        typeof l.msg === 'string' &&
        /^create tunnel on \S+\/(tcp|udp) OK/.test(l.msg) &&
        (!opts.network || l.msg.includes(`/${opts.network} OK`)) &&
        (!opts.service || l.service === opts.service),
      { from: opts.from, timeoutMs: opts.timeoutMs ?? 10_000, what: `"create tunnel ... OK"${opts.network ? ` (${opts.network})` : ''}` },
    );
  }

  /** Sends a signal; resolves when the process has exited. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.proc.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 2_000): Promise<ExitInfo> {
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  /** Number of open file descriptors of the process (Linux /proc). */
  fdCount(): number {
    return countFds(this.pid);
  }

  /** Number of open sockets of the process (Linux /proc). */
  socketCount(): number {
    return countFds(this.pid, 'socket:');
  }
}

function countFds(pid: number, prefix?: string): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    if (!prefix) {
      n++;
      continue;
    }
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(prefix)) n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

/** Starts `./bin/burrow` with `args`. */
export function burrow(args: readonly string[], opts: { name?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): BurrowProcess {
  return new BurrowProcess(args, opts);
}

/** Stops every process started by this test file (SIGTERM, SIGKILL after 2 s) and removes temp files. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes `content` to a new temp file named `name`; removed by `stopAll()`. */
export function tempFile(name: string, content: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-'));
  tempDirs.push(dir);
  const file = path.join(dir, name);
  writeFileSync(file, content);
  return file;
}

/**
 * A config fixture from test/fixtures/config with text replacements applied (each `from` must
 * occur in the file, so a changed fixture fails loudly), written to a temp file.
 */
export function fixture(name: string, replacements: ReadonlyArray<readonly [string | RegExp, string]>): string {
  const src = path.join(REPO_ROOT, 'test', 'fixtures', 'config', name);
  let text = readFileSync(src, 'utf8');
  for (const [from, to] of replacements) {
    const before = text;
    text = typeof from === 'string' ? text.split(from).join(to) : text.replace(from, to);
    if (text === before) throw new Error(`fixture ${name}: "${String(from)}" not found`);
  }
  return tempFile(name, text);
}

/** True when dist/ is older than some file in src/ (a reminder that the CLI under test is stale). */
export function distIsStale(): boolean {
  try {
    const built = statSync(DIST_MAIN).mtimeMs;
    const walk = (dir: string): boolean =>
      readdirSync(dir, { withFileTypes: true }).some((e) =>
        e.isDirectory() ? walk(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs > built,
      );
    return walk(path.join(REPO_ROOT, 'src'));
  } catch {
    return true;
  }
}
