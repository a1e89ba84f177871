/**
 * How busy the machine was with work that is not the bench's: the CPU time of every process
 * outside the bench's own process tree, from /proc. Figures measured next to other load are low
 * and noisy; the results say so.
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

function statFields(pid: string): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (own + reaped children) of every user-space process that is not the bench or one
 * of its descendants (the sum is conserved when a process ends and its parent reaps it). Kernel threads are left out: loopback traffic is partly processed by
 * ksoftirqd, on the bench's behalf.
 */
function othersCpu(): Map<string, number> {
  const parent = new Map<string, string>();
  const cpu = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const f = statFields(pid);
    if (!f) continue;
    // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    parent.set(pid, f[1]!);
    if (pid === '2' || f[1] === '2') continue;
    cpu.set(pid, (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck);
  }
  const self = String(process.pid);
  for (const pid of [...cpu.keys()]) {
    let p: string | undefined = pid;
    for (let depth = 0; p && p !== '0' && depth < 64; depth++) {
      if (p === self) {
        cpu.delete(pid);
        break;
      }
      p = parent.get(p);
    }
  }
  return cpu;
}

export interface LoadSample {
  at: number;
  others: Map<string, number>;
  /** The machine's CPU time so far (/proc/stat "cpu" line, ticks): all of it, and steal. */
  cpuTotal?: number;
  cpuSteal?: number;
}

/** Total and steal ticks of all CPUs: steal is time the hypervisor gave to other guests. */
function cpuTicks(): { total: number; steal: number } | undefined {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  if (!line.startsWith('cpu ')) return undefined;
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is in user).
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined;
  return { total: f.reduce((x, y) => x + y, 0), steal: f[7]! };
}

export function loadSample(): LoadSample | undefined {
  try {
    const t = cpuTicks();
    return { at: Date.now(), others: othersCpu(), cpuTotal: t?.total, cpuSteal: t?.steal };
  } catch {
    return undefined;
  }
}

/**
 * Share of the machine's CPU time (0–1) the hypervisor took for other guests between two
 * samples (steal): a virtual machine's cores are then slower than they look, for the bench and
 * its baselines alike.
 */
export function stealShare(a: LoadSample | undefined, b: LoadSample | undefined): number | undefined {
  if (a?.cpuTotal === undefined || b?.cpuTotal === undefined || a.cpuSteal === undefined || b.cpuSteal === undefined) return undefined;
  const total = b.cpuTotal - a.cpuTotal;
  return total > 0 ? Math.max(0, b.cpuSteal - a.cpuSteal) / total : undefined;
}

/**
 * Average number of cores used by other processes between two samples. Totals, not per-process
 * differences: a process that ended moved its time into its parent's reaped-children time, and
 * one that started in between counts from zero.
 */
export function otherCores(a: LoadSample | undefined, b: LoadSample | undefined): number | undefined {
  if (!a || !b || b.at <= a.at) return undefined;
  const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
  return Math.max(0, total(b.others) - total(a.others)) / ((b.at - a.at) / 1000);
}
