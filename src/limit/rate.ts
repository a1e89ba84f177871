import type { Logger } from 'pino';

/**
 * Per-key token buckets (e.g. connections per client IP). `take(key)` answers whether one
 * more event is allowed now. Idle buckets are forgotten, so the map stays bounded by the
 * number of keys active within `idleMs`; `maxKeys` caps it outright by forgetting the least
 * recently used keys first, so a flood of fresh addresses (an IPv6 /64 has plenty) pushes
 * out other idle keys, never the limits of an address that keeps coming.
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
      evictOldest(this.#buckets, this.#o.maxKeys - 1, (old) => now - old.at > this.#o.idleMs);
      b = { tokens: this.#o.burst, at: now, warnedAt: 0 };
    } else {
      b.tokens = Math.min(this.#o.burst, b.tokens + ((now - b.at) / 1000) * this.#o.ratePerSec);
      b.at = now;
      this.#buckets.delete(key); // to the end: the map is in order of last use
    }
    this.#buckets.set(key, b);
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

  /** Keys held (at most `maxKeys`). */
  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * Drops entries from the front of `map` (kept in order of last use) while they are `stale`,
 * and beyond that while it holds more than `keep`: the oldest first, one step per entry.
 */
function evictOldest<V>(map: Map<string, V>, keep: number, stale: (v: V) => boolean): void {
  for (const [k, v] of map) {
    if (map.size <= keep && !stale(v)) return;
    map.delete(k);
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
    this.#seen.delete(key);
    evictOldest(this.#seen, this.maxKeys - 1, (t) => now - t >= this.periodMs);
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
