/**
 * How busy the machine was with work that is not the bench's: CPU time of the whole system
 * (/proc/stat) minus that of the bench's own process tree (itself, its reaped children and its
 * live descendants). Figures measured next to other load are low and noisy; the results say so.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

let clkTck = 100;
try {
  const n = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim());
  if (Number.isFinite(n) && n > 0) clkTck = n;
} catch {
  /* keep 100 */
}

/** user + nice + system of all CPUs, seconds (interrupt time left out: it is not attributable). */
function systemCpuSeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]!) / clkTck;
}

function statFields(pid: string): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process, its reaped children and its live descendants. */
function ownCpuSeconds(): number {
  const parent = new Map<string, string>();
  const cpu = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const f = statFields(pid);
    if (!f) continue;
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    parent.set(pid, f[1]!);
    cpu.set(pid, (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck);
  }
  const self = String(process.pid);
  let sum = 0;
  for (const [pid, secs] of cpu) {
    let p: string | undefined = pid;
    for (let depth = 0; p && p !== '0' && depth < 64; depth++) {
      if (p === self) {
        sum += secs;
        break;
      }
      p = parent.get(p);
    }
  }
  return sum;
}

export interface LoadSample {
  at: number;
  system: number;
  own: number;
}

export function loadSample(): LoadSample | undefined {
  try {
    return { at: Date.now(), system: systemCpuSeconds(), own: ownCpuSeconds() };
  } catch {
    return undefined;
  }
}

/** Average number of cores used by other processes between two samples. */
export function otherCores(a: LoadSample | undefined, b: LoadSample | undefined): number | undefined {
  if (!a || !b || b.at <= a.at) return undefined;
  const other = b.system - a.system - (b.own - a.own);
  return Math.max(0, other) / ((b.at - a.at) / 1000);
}
