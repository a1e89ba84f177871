/**
 * Summaries of V8 CPU profiles (`node --cpu-prof`): the functions with the most self time, and
 * burrow's own functions by inclusive time, with positions mapped from dist/ back to src/
 * through the compiler's source maps.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

// --- source maps (VLQ "mappings", version 3) --------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));

/** Per generated line: segments [genCol, sourceIndex, srcLine, srcCol]. */
type Mapping = Array<Array<[number, number, number, number]>>;

function decodeMappings(mappings: string): Mapping {
  const lines: Mapping = [];
  let src = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs: Array<[number, number, number, number]> = [];
    let genCol = 0;
    for (const segText of lineText.split(',')) {
      if (!segText) continue;
      const vals: number[] = [];
      let shift = 0;
      let value = 0;
      for (const ch of segText) {
        const d = B64_INDEX.get(ch) ?? 0;
        value += (d & 31) << shift;
        if (d & 32) shift += 5;
        else {
          vals.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += vals[0] ?? 0;
      if (vals.length >= 4) {
        src += vals[1]!;
        srcLine += vals[2]!;
        srcCol += vals[3]!;
        segs.push([genCol, src, srcLine, srcCol]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

const maps = new Map<string, { sources: string[]; lines: Mapping } | null>();

/** "src/x.ts:line" for a position in a compiled file, when it has a source map. */
function mapPosition(file: string, line0: number, col0: number, root: string): string | undefined {
  let m = maps.get(file);
  if (m === undefined) {
    m = null;
    const mapFile = `${file}.map`;
    if (existsSync(mapFile)) {
      try {
        const j = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; mappings: string };
        m = { sources: j.sources.map((s) => path.resolve(path.dirname(file), s)), lines: decodeMappings(j.mappings) };
      } catch {
        m = null;
      }
    }
    maps.set(file, m);
  }
  if (!m) return undefined;
  const segs = m.lines[line0];
  if (!segs?.length) return undefined;
  let best = segs[0]!;
  for (const s of segs) {
    if (s[0] <= col0) best = s;
    else break;
  }
  return `${path.relative(root, m.sources[best[1]]!)}:${best[2] + 1}`;
}

function location(cf: CallFrame, root: string): string {
  if (!cf.url) return '';
  let file = cf.url;
  if (file.startsWith('file://')) file = fileURLToPath(file);
  if (!file.startsWith('/')) return `${file}:${cf.lineNumber + 1}`;
  const mapped = file.startsWith(path.join(root, 'dist')) ? mapPosition(file, cf.lineNumber, cf.columnNumber, root) : undefined;
  return mapped ?? `${path.relative(root, file)}:${cf.lineNumber + 1}`;
}

export interface HotFunction {
  function: string;
  location: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled wall time, ms. */
  totalMs: number;
  idleMs: number;
  /** Non-idle time by category, percent of non-idle. */
  categories: Record<string, number>;
  topSelf: HotFunction[];
  /** burrow's own functions (src/) by inclusive time. */
  topInclusiveBurrow: HotFunction[];
  /** Read-like / write-like syscalls while profiled (from /proc/<pid>/io), when known. */
  syscalls?: { readsPerSec: number; readKiB: number; writesPerSec: number; writeKiB: number };
}

function category(cf: CallFrame, root: string): string {
  const n = cf.functionName;
  if (n === '(garbage collector)') return 'GC';
  if (n === '(program)') return 'program (native, outside JS)';
  if (n === '(idle)') return 'idle';
  if (!cf.url) return 'native / builtins';
  if (cf.url.startsWith('node:')) return 'node internals';
  const file = cf.url.startsWith('file://') ? fileURLToPath(cf.url) : cf.url;
  if (file.includes('/node_modules/')) return 'dependencies (node_modules)';
  if (file.startsWith(path.join(root, 'dist'))) return 'burrow (dist/)';
  return 'other';
}

/**
 * `window` (ms since the profile started) limits the summary to the samples taken in it, e.g.
 * the measurement without start-up and warm-up.
 */
export function summarizeProfile(
  file: string,
  root: string,
  top = 15,
  window?: { fromMs: number; toMs: number },
): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i] ?? 0;
    if (window && (t / 1000 < window.fromMs || t / 1000 > window.toMs)) continue;
    const dt = prof.timeDeltas[i + 1] ?? 0;
    self.set(prof.samples[i]!, (self.get(prof.samples[i]!) ?? 0) + dt);
  }
  const key = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'}\u0000${location(cf, root)}`;
  const selfByKey = new Map<string, number>();
  const cats = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    total += us;
    if (n.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const k = key(n.callFrame);
    selfByKey.set(k, (selfByKey.get(k) ?? 0) + us);
    const c = category(n.callFrame, root);
    cats.set(c, (cats.get(c) ?? 0) + us);
  }
  const busy = Math.max(1, total - idle);
  // Inclusive time of burrow functions, each counted once per stack (recursion).
  const incl = new Map<string, number>();
  const root0 = prof.nodes[0]!;
  const active = new Map<string, number>();
  const visit = (n: ProfileNode): number => {
    const isBurrow = category(n.callFrame, root) === 'burrow (dist/)';
    const k = isBurrow ? key(n.callFrame) : '';
    if (isBurrow) active.set(k, (active.get(k) ?? 0) + 1);
    let sum = n.callFrame.functionName === '(idle)' ? 0 : (self.get(n.id) ?? 0);
    for (const c of n.children ?? []) sum += visit(byId.get(c)!);
    if (isBurrow) {
      const depth = active.get(k)! - 1;
      active.set(k, depth);
      if (depth === 0) incl.set(k, (incl.get(k) ?? 0) + sum);
    }
    return sum;
  };
  visit(root0);
  const rows = (m: Map<string, number>): HotFunction[] =>
    [...m.entries()]
      .filter(([, us]) => us >= 100)
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => {
        const [fn, loc] = k.split('\u0000');
        return { function: fn!, location: loc!, ms: round(us / 1000, 4), percent: round((100 * us) / busy, 3) };
      });
  return {
    file,
    totalMs: round(total / 1000, 4),
    idleMs: round(idle / 1000, 4),
    categories: Object.fromEntries(
      [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([c, us]) => [c, round((100 * us) / busy, 3)]),
    ),
    topSelf: rows(selfByKey),
    topInclusiveBurrow: rows(incl),
  };
}
