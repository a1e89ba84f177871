/**
 * Round-robin with failure marking, as gost's default selector: a node that failed `maxFails`
 * times is skipped for `failTimeoutMs`, unless every candidate is marked. Used for forwarder
 * nodes and for the nodes of a chain hop.
 */
export interface Failable {
  fails: number;
  failedAt: number;
}

export class RoundRobin {
  #next = 0;
  constructor(
    readonly maxFails: number,
    readonly failTimeoutMs: number,
  ) {}

  pick<T extends Failable>(list: readonly T[]): T | undefined {
    if (list.length === 0) return undefined;
    const now = Date.now();
    const alive = list.filter((n) => n.fails < this.maxFails || now - n.failedAt >= this.failTimeoutMs);
    const from = alive.length > 0 ? alive : list;
    const n = from[this.#next % from.length];
    this.#next = (this.#next + 1) >>> 0;
    return n;
  }

  failed(n: Failable): void {
    n.fails++;
    n.failedAt = Date.now();
  }

  ok(n: Failable): void {
    n.fails = 0;
  }
}
