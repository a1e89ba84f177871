/**
 * The shapes of the bench: modes and their parameters, what a case gets, what it returns.
 */
import type { BurrowEnv, ProcReport } from './burrow';
import type { ToolInfo } from './tools';
import { round, stat, type Stat } from './util';

export type Mode = 'full' | 'quick' | 'smoke';

export interface Params {
  /** Measured runs per case (each run: baseline and burrow, next to each other). */
  runs: number;
  /** iperf3 seconds per TCP/UDP measurement. */
  streamSeconds: number;
  /** wrk seconds per HTTP measurement. */
  httpSeconds: number;
  /** Un-recorded warm-up before a case's first burrow measurement (seconds, 0 = none). */
  warmupSeconds: number;
  /** Idle connections to hold open, and how many fresh topologies to measure that on. */
  idleConnections: number;
  idleRuns: number;
  startupRuns: number;
  /** Both directions for the single-stream and the MTU-sized UDP cases (smoke does forward only). */
  bothDirections: boolean;
  /** UDP offered rate (iperf3 -b) and datagram size. */
  udpRate: string;
  udpLen: number;
  /** iperf3 seconds per UDP measurement (at least 5 outside --smoke: queues that overflow after a second or two must show). */
  udpSeconds: number;
  /** Total offered rates of the UDP sweep, Mbit/s, ascending. */
  udpSweepMbps: number[];
  rttMs: number;
  rttSeconds: number;
}

export const MODES: Record<Mode, Params> = {
  full: {
    runs: 5,
    streamSeconds: 4,
    httpSeconds: 5,
    warmupSeconds: 1,
    idleConnections: 10_000,
    idleRuns: 3,
    startupRuns: 10,
    bothDirections: true,
    udpRate: '1G',
    udpLen: 1400,
    udpSeconds: 5,
    udpSweepMbps: [600, 800, 1000, 1200, 1400, 1600],
    rttMs: 50,
    rttSeconds: 5,
  },
  quick: {
    runs: 3,
    streamSeconds: 1,
    httpSeconds: 2,
    warmupSeconds: 0,
    idleConnections: 10_000,
    idleRuns: 1,
    startupRuns: 5,
    bothDirections: true,
    udpRate: '1G',
    udpLen: 1400,
    udpSeconds: 5,
    udpSweepMbps: [800, 1200, 1600],
    rttMs: 50,
    rttSeconds: 3,
  },
  smoke: {
    runs: 1,
    streamSeconds: 1,
    httpSeconds: 1,
    warmupSeconds: 0,
    idleConnections: 300,
    idleRuns: 1,
    startupRuns: 1,
    bothDirections: false,
    udpRate: '200M',
    udpLen: 1400,
    udpSeconds: 1,
    udpSweepMbps: [200],
    rttMs: 50,
    rttSeconds: 2,
  },
};

export interface CaseContext {
  mode: Mode;
  params: Params;
  env: BurrowEnv;
  tools: ToolInfo;
  log: (msg: string) => void;
}

export interface Metric {
  name: string;
  unit: string;
  baseline?: Stat;
  burrow?: Stat;
  /** burrow / baseline, per run (paired), so the spread is the ratio's own spread. */
  ratio?: Stat;
  /** The target, as text, and whether the median meets it. */
  target?: string;
  met?: boolean;
  /** What gost 3.2.6 does here (reference figure from the issue; not measured in this run). */
  gost?: string;
}

export type CaseStatus = 'ok' | 'partial' | 'error' | 'skipped';

export interface CaseResult {
  id: string;
  title: string;
  baselineLabel: string;
  status: CaseStatus;
  /** "bench" when the harness itself threw (a bug here), "run" for failures of what it measured. */
  errorKind?: 'bench' | 'run';
  errors: string[];
  notes: string[];
  metrics: Metric[];
  processes: ProcReport[];
  commands?: Record<string, string>;
  /** Raw per-run figures. */
  runs: Array<Record<string, unknown>>;
  durationSec: number;
  /** Cores used on average by processes outside the bench while the case ran (they skew figures). */
  otherCpuCores?: number;
  /** Percent of the machine's CPU time taken by the hypervisor for other guests (steal) while it ran. */
  stealPercent?: number;
}

export interface CaseDef {
  id: string;
  title: string;
  baselineLabel: string;
  /** Included in --smoke. */
  smoke: boolean;
  /** Left out of --quick (to keep it under two minutes); in the full suite. */
  fullOnly?: boolean;
  needs: Array<'iperf3' | 'wrk' | 'nginx' | 'h2load' | 'openssl'>;
  run(ctx: CaseContext, out: CaseResult): Promise<void>;
}

/** Builds a metric from raw per-run values; `pairs` gives the per-run ratio. */
export function metric(
  name: string,
  unit: string,
  burrow: number[],
  baseline?: number[],
  extra: { target?: string; check?: (m: Metric) => boolean | undefined; gost?: string; ratio?: boolean } = {},
): Metric {
  const m: Metric = { name, unit };
  const r = (xs: number[]): number[] => xs.map((x) => round(x, 4));
  if (baseline) m.baseline = stat(r(baseline));
  m.burrow = stat(r(burrow));
  if (baseline && extra.ratio !== false) {
    const pairs: number[] = [];
    for (let i = 0; i < Math.min(baseline.length, burrow.length); i++) {
      if (baseline[i]! > 0 && Number.isFinite(burrow[i]!)) pairs.push(round(burrow[i]! / baseline[i]!, 4));
    }
    m.ratio = stat(pairs);
  }
  if (extra.target) m.target = extra.target;
  if (extra.gost) m.gost = extra.gost;
  if (extra.check && m.burrow) m.met = extra.check(m);
  return m;
}
