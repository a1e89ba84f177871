import type { Logger } from 'pino';

/**
 * Per-key token buckets (e.g. connections per client IP). `take(key)` answers whether one
 * more event is allowed now. Idle buckets are forgotten, so the map stays bounded by the
 * number of keys active within `idleMs`; `maxKeys` caps it outright.
 */
export interface RateLimiterOptions {
  /** Events per second refilled. */
  ratePerSec: number;
  /** Bucket size (events allowed in a burst). */
  burst: number;
  idleMs?: number;
  maxKeys?: number;
  now?: () => number;
}

export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number; warnedAt: number }>();
  readonly #o: Required<RateLimiterOptions>;

  constructor(o: RateLimiterOptions) {
    this.#o = { idleMs: 60_000, maxKeys: 100_000, now: Date.now, ...o };
  }

  /** True when allowed; false when over the limit. */
  take(key: string): boolean {
    const now = this.#o.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#o.maxKeys) this.#sweep(now);
      b = { tokens: this.#o.burst, at: now, warnedAt: 0 };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#o.burst, b.tokens + ((now - b.at) / 1000) * this.#o.ratePerSec);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    return false;
  }

  /** True at most once a minute per key: for "logged once per peer" warnings. */
  shouldWarn(key: string): boolean {
    const b = this.#buckets.get(key);
    const now = this.#o.now();
    if (!b || now - b.warnedAt < 60_000) return false;
    b.warnedAt = now;
    return true;
  }

  #sweep(now: number): void {
    for (const [k, b] of this.#buckets) if (now - b.at > this.#o.idleMs) this.#buckets.delete(k);
    if (this.#buckets.size >= this.#o.maxKeys) this.#buckets.clear();
  }
}

/**
 * "Logged once per peer": true the first time a key is seen in each `periodMs` window, so a
 * peer that opens thousands of bad connections costs one warning a minute, not thousands.
 */
export class OncePerKey {
  readonly #seen = new Map<string, number>();
  constructor(
    readonly periodMs = 60_000,
    readonly maxKeys = 10_000,
  ) {}

  take(key: string, now = Date.now()): boolean {
    const last = this.#seen.get(key);
    if (last !== undefined && now - last < this.periodMs) return false;
    if (this.#seen.size >= this.maxKeys) {
      for (const [k, t] of this.#seen) if (now - t >= this.periodMs) this.#seen.delete(k);
      if (this.#seen.size >= this.maxKeys) this.#seen.clear();
    }
    this.#seen.set(key, now);
    return true;
  }
}

/**
 * "Logged once per peer": a peer that hits a limit is warned about once a minute per limit
 * (naming the limit), and every further hit goes to debug, so a flood of bad connections from
 * one address costs one line per limit, while a second attack on another limit is still seen.
 */
export class PeerWarnings {
  readonly #once = new OncePerKey();

  /**
   * @param peer the attacking address (host, no port)
   * @param limit the limit's name as users configure it (e.g. `readTimeout`)
   * @param msg what happened, with the limit's value
   */
  warn(log: Pick<Logger, 'warn' | 'debug'>, peer: string, limit: string, msg: string): void {
    if (this.#once.take(`${limit}|${peer}`)) log.warn(`${msg} (limit: ${limit}; further ones from ${peer} at debug for a minute)`);
    else log.debug(`${msg} (limit: ${limit})`);
  }
}
