/**
 * Small utilities shared by the bench: ports from the OS, statistics, formatting, timeouts.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export const HOST = '127.0.0.1';

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A free TCP port on 127.0.0.1, chosen by the OS. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const u = dgram.createSocket('udp4');
    u.once('error', () => {
      u.close();
      resolve(false);
    });
    u.bind(port, HOST, () => u.close(() => resolve(true)));
  });
}

/** A port free for both TCP and UDP (iperf3 -u uses one port number for both). */
export async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freeTcpPort();
    if (await udpPortFree(p)) return p;
  }
  throw new Error('no port free for both TCP and UDP');
}

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
  values: number[];
}

export function stat(values: number[]): Stat | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return undefined;
  const s = [...v].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length, values: v };
}

/** Rounds to a sensible number of significant digits for tables and JSON. */
export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const mag = Math.floor(Math.log10(Math.abs(x)));
  const f = Math.pow(10, Math.max(0, digits - 1 - mag));
  return Math.round(x * f) / f;
}

export function fmtNum(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '—';
  const r = round(x, 3);
  if (Math.abs(r) >= 10000) return Math.round(r).toLocaleString('en-US');
  return String(r);
}

export function fmtStat(s: Stat | undefined, unit = ''): string {
  if (!s) return '—';
  const u = unit ? ` ${unit}` : '';
  if (s.n === 1 || s.min === s.max) return `${fmtNum(s.median)}${u}`;
  return `${fmtNum(s.median)}${u} (${fmtNum(s.min)}–${fmtNum(s.max)})`;
}

export function errMsg(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Rejects with `what` if `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** A programming error in the bench itself, as opposed to a failure of what it measures. */
export function isBenchBug(err: unknown): boolean {
  return err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof RangeError;
}

/**
 * The baseline and the burrow measurement of one run, in alternating order (baseline first on
 * even runs): neither always gets the machine in the state the other left it.
 */
export async function inTurn(run: number, baseline: () => Promise<void>, burrow: () => Promise<void>): Promise<void> {
  if (run % 2 === 0) {
    await baseline();
    await burrow();
  } else {
    await burrow();
    await baseline();
  }
}
