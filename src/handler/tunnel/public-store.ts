/**
 * A shared store for public names (`tunnel.publicStore=redis://…`): the names that BINDs claim
 * are kept in Redis as well as in memory, so they survive a server restart and several servers
 * (HA, every client bound to each) agree on who owns a custom name. The layout is the one of
 * gost-plugins' Redis-backed ingress (protocol.md §4): key = the bare name (the first DNS label
 * of `<name>.<domain>`, after an optional prefix), value = the tunnel ID text, written with
 * `SET NX` and an expiry that later binds do not refresh. A server of each kind can use the
 * same database.
 *
 * Only BIND consults Redis; routing reads the in-memory copy that claims fill, so the entry
 * point never waits for Redis. When Redis does not answer (within `timeoutMs`), a claim is
 * decided in memory alone and a warning says so.
 */
import type { Redis as RedisClient } from 'ioredis';
import { RedisLink, SourceHealth } from '../../io/sources';

export interface NameClaim {
  /** True when the name is (now) the tunnel's. */
  ok: boolean;
  /** When the name expires, ms since the epoch (for a claim that is ok). */
  expiresAt: number;
}

export interface NameStore {
  /** Claims `name` for `tunnelId` for `ttlMs` unless another tunnel holds it; undefined = no answer. */
  claim(name: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined>;
  close(): void;
}

interface Logger {
  warn(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
}

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(bad URL)';
  }
}

export class RedisNameStore implements NameStore {
  readonly #link: RedisLink;
  readonly #prefix: string;
  readonly #health: SourceHealth;

  /** `timeoutMs`: how long a claim waits for Redis (`tunnel.publicStoreTimeout`). */
  constructor(url: string, opts: { prefix?: string; timeoutMs: number; logger: Logger }) {
    this.#link = new RedisLink(url, opts.timeoutMs, 'burrow-public-names');
    this.#prefix = opts.prefix ?? '';
    this.#health = new SourceHealth(opts.logger, `public names: ${redactUrl(url)}`);
  }

  async #claimOnce(c: RedisClient, key: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined> {
    const now = Date.now();
    if ((await c.set(key, tunnelId, 'PX', ttlMs, 'NX')) === 'OK') return { ok: true, expiresAt: now + ttlMs };
    const [owner, pttl] = await Promise.all([c.get(key), c.pttl(key)]);
    if (owner === null) return undefined; // expired in between: try again
    if (owner !== tunnelId) return { ok: false, expiresAt: 0 };
    // The tunnel's own name: keep its first expiry (a key without one lives as long as ours would).
    return { ok: true, expiresAt: now + (pttl > 0 ? pttl : ttlMs) };
  }

  async claim(name: string, tunnelId: string, ttlMs: number): Promise<NameClaim | undefined> {
    const key = this.#prefix + name;
    try {
      const r = await this.#link.run(async (c) => {
        for (let i = 0; i < 3; i++) {
          const got = await this.#claimOnce(c, key, tunnelId, ttlMs);
          if (got) return got;
        }
        throw new Error(`the key ${key} keeps expiring while it is read`);
      });
      this.#health.ok('Redis');
      return r;
    } catch (err) {
      this.#health.failed(new Error(`${(err as Error).message}; names are claimed in memory only until it answers`));
      return undefined;
    }
  }

  close(): void {
    this.#link.close();
  }
}
