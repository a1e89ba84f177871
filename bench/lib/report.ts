/**
 * The results: JSON (everything, including raw per-run figures) and a Markdown summary.
 */
import type { CaseResult, Mode, Params } from './types';
import type { ProfileSummary } from './profile';
import { fmtNum, fmtStat } from './util';

export interface Results {
  tool: 'burrow-bench';
  schema: 1;
  mode: Mode;
  params: Params;
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  machine: Record<string, unknown>;
  tools: { iperf3?: string; wrk?: string; notes: string[] };
  cases: CaseResult[];
  profile?: ProfileRun;
}

export interface ProfileRun {
  direction: string;
  gbps?: number;
  seconds: number;
  summaries: Record<string, ProfileSummary>;
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

const STATUS: Record<string, string> = { ok: 'ok', partial: 'partial', error: 'ERROR', skipped: 'skipped' };

export function renderMarkdown(r: Results): string {
  const L: string[] = [];
  const m = r.machine;
  L.push(`# burrow bench (${r.mode})`);
  L.push('');
  L.push(
    `${r.startedAt} · ${r.durationSec} s · ${m.cpus} × ${m.cpuModel} · ${m.memGiB} GiB · Linux ${m.kernel} · Node ${m.node}` +
      ` · iperf3 ${r.tools.iperf3 ?? 'missing'} · ${r.tools.wrk ?? 'wrk missing'}` +
      (m.commit ? ` · burrow ${m.commit}${m.dirty ? ' (modified)' : ''}` : ''),
  );
  const cpus = Number(m.cpus) || 1;
  const busy = r.cases.filter((c) => (c.otherCpuCores ?? 0) >= 0.2);
  if (busy.length) {
    L.push('');
    L.push(
      `**The machine was not idle**: processes outside the bench used on average ${fmtNum(Number(m.otherCpuCores))} of the ` +
        `${cpus} cores during the suite (${busy.map((c) => `${c.id} ${fmtNum(c.otherCpuCores)}`).join(', ')}), so absolute ` +
        `figures may be low and noisy; ratios to the same-run baselines suffer less.`,
    );
  }
  const stolen = r.cases.filter((c) => (c.stealPercent ?? 0) >= 2);
  if (stolen.length) {
    L.push('');
    L.push(
      `**The virtual machine's cores were shared**: the hypervisor took ${fmtNum(Number(m.stealPercent))} % of the CPU time ` +
        `during the suite for other guests (steal; ${stolen.map((c) => `${c.id} ${fmtNum(c.stealPercent)} %`).join(', ')}), ` +
        `so absolute figures are lower than on idle cores; ratios to the same-run baselines suffer less.`,
    );
  }
  L.push('');
  L.push(
    `Medians over ${r.params.runs} runs (min–max in parentheses); each burrow measurement runs next to its baseline ` +
      `in the same run. Ratio = burrow / baseline per run. "gost 3.2.6" figures are the reference values from the ` +
      `issue, not measured here. A benchmark, not a test: no number fails anything.`,
  );
  L.push('');
  L.push('| case | metric | baseline | burrow | ratio | target | met | gost 3.2.6 |');
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const c of r.cases) {
    const title = `${esc(c.title)}${c.status === 'ok' ? '' : ` **(${STATUS[c.status]})**`}`;
    if (!c.metrics.length) {
      const why = c.status === 'skipped' ? c.notes.find((n) => n.startsWith('skipped')) : c.errors[0];
      L.push(`| ${title} | — | — | — | — | — | — | ${esc((why ?? '').slice(0, 200))} |`);
      continue;
    }
    c.metrics.forEach((x, i) => {
      const ratio = x.ratio ? `${fmtNum(x.ratio.median * 100)}%${x.ratio.n > 1 && x.ratio.min !== x.ratio.max ? ` (${fmtNum(x.ratio.min * 100)}–${fmtNum(x.ratio.max * 100)}%)` : ''}` : '—';
      const met = x.met === undefined ? '' : x.met ? 'yes' : '**no**';
      L.push(
        `| ${i === 0 ? title : ''} | ${esc(x.name)}${x.unit ? ` (${esc(x.unit)})` : ''} | ${fmtStat(x.baseline)} | ${fmtStat(x.burrow)} | ${ratio} | ${esc(x.target ?? '')} | ${met} | ${esc(x.gost ?? '')} |`,
      );
    });
  }
  L.push('');
  L.push('## burrow processes (from /proc)');
  L.push('');
  L.push(
    'CPU seconds are user+system; "measured" counts only the windows in which burrow was under load. KiB per read / ' +
      'write (TCP stream cases): average bytes per read / write syscall while measured, from /proc/<pid>/io.',
  );
  L.push('');
  L.push('| case | process | CPU s measured | CPU s total | peak RSS MiB | RSS at end MiB | KiB/read | KiB/write |');
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const c of r.cases) {
    c.processes.forEach((p, i) => {
      L.push(
        `| ${i === 0 ? esc(c.id) : ''} | ${esc(p.role)} | ${fmtNum(p.cpuSecondsMeasured)} | ${fmtNum(p.cpuSecondsTotal)} | ${fmtNum(p.peakRssMiB)} | ${fmtNum(p.finalRssMiB)} | ${fmtNum(p.readKiBPerSyscall)} | ${fmtNum(p.writeKiBPerSyscall)} |`,
      );
    });
  }
  const notes = r.cases.filter((c) => c.notes.length || c.errors.length);
  if (notes.length || r.tools.notes.length) {
    L.push('');
    L.push('## Notes and errors');
    L.push('');
    for (const n of r.tools.notes) L.push(`- tools: ${esc(n)}`);
    for (const c of notes) {
      for (const n of c.notes) L.push(`- ${c.id}: ${esc(n)}`);
      for (const e of c.errors.slice(0, 5)) L.push(`- ${c.id}: **error**: ${esc(e.slice(0, 600))}`);
      if (c.errors.length > 5) L.push(`- ${c.id}: … ${c.errors.length - 5} more errors in latest.json`);
    }
  }
  if (r.profile) {
    L.push('');
    L.push(renderProfile(r.profile));
  }
  L.push('');
  return L.join('\n');
}

export function renderProfile(p: ProfileRun): string {
  const L: string[] = [];
  L.push(`## CPU profile: one TCP stream, ${p.direction}, ${p.seconds} s${p.gbps ? ` (${fmtNum(p.gbps)} Gbit/s under the profiler)` : ''}`);
  for (const [role, s] of Object.entries(p.summaries)) {
    L.push('');
    L.push(`### ${role} — busy ${fmtNum(s.totalMs - s.idleMs)} ms of ${fmtNum(s.totalMs)} ms sampled`);
    L.push('');
    if (s.syscalls) {
      const k = s.syscalls;
      L.push(
        `Syscalls: ${fmtNum(k.readsPerSec)} reads/s of ${fmtNum(k.readKiB)} KiB on average, ` +
          `${fmtNum(k.writesPerSec)} writes/s of ${fmtNum(k.writeKiB)} KiB on average.`,
      );
      L.push('');
    }
    L.push(
      `Busy time by kind: ${Object.entries(s.categories)
        .map(([k, v]) => `${k} ${fmtNum(v)}%`)
        .join(', ')}`,
    );
    L.push('');
    L.push('| self % | self ms | function | where |');
    L.push('| --- | --- | --- | --- |');
    for (const f of s.topSelf) L.push(`| ${fmtNum(f.percent)} | ${fmtNum(f.ms)} | ${esc(f.function)} | ${esc(f.location)} |`);
    L.push('');
    L.push('burrow functions by inclusive time:');
    L.push('');
    L.push('| incl. % | function | where |');
    L.push('| --- | --- | --- |');
    for (const f of s.topInclusiveBurrow.slice(0, 10)) L.push(`| ${fmtNum(f.percent)} | ${esc(f.function)} | ${esc(f.location)} |`);
  }
  return L.join('\n');
}
