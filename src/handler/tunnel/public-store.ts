/**
 * A shared store for public names (`tunnel.publicStore=redis://…`): the names that BINDs claim
 * are kept in Redis as well as in memory, so they survive a server restart and several servers
 * (HA, every client bound to each) agree on who owns a custom name. The layout is the one of
 * gost-plugins' Redis-backed ingress (protocol.md §4): key = the bare name (the first DNS label
 * of `<name>.<domain>`, after an optional prefix), value = the tunnel ID text, with an expiry.
 * A server of each kind can use the same database.
 *
 * A claim is one atomic script: the key is written (with the TTL as expiry) when it is absent,
 * already the tunnel's, or `reserved` (an endpoint label, which belongs to the tunnel it derives
 * from whatever the key says). Servers write the names their connectors hold again every quarter
 * TTL and once more when the last one goes, so a held name never expires and a free one expires
 * a TTL after its last holder left (or its server died).
 *
 * Only BIND consults Redis; routing reads the in-memory copy that claims fill, so the entry
 * point never waits for Redis. When Redis does not answer (within `timeoutMs`), a claim is
 * decided in memory alone and a warning says so.
 */
import { RedisLink, SourceHealth } from '../../loader/sources';

export interface NameStore {
  /**
   * Claims (or refreshes) `name` for `tunnelId` for `ttlMs` from now, unless another tunnel holds
   * it and the name is not `reserved` for this one: true = the tunnel's, false = another's,
   * undefined = no answer.
   */
  claim(name: string, tunnelId: string, ttlMs: number, reserved: boolean): Promise<boolean | undefined>;
  /** Forgets `name` if it is still `tunnelId`'s (an operator released or blocked it). */
  release?(name: string, tunnelId: string): Promise<void>;
  close(): void;
}

const CLAIM_SCRIPT = `local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] or ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0`;

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
  #closed = false;

  /** `timeoutMs`: how long a claim waits for Redis (`tunnel.publicStoreTimeout`). */
  constructor(url: string, opts: { prefix?: string; timeoutMs: number; logger: Logger }) {
    this.#link = new RedisLink(url, opts.timeoutMs, 'burrow-public-names');
    this.#prefix = opts.prefix ?? '';
    this.#health = new SourceHealth(opts.logger, `public names: ${redactUrl(url)}`, true);
  }

  async claim(name: string, tunnelId: string, ttlMs: number, reserved: boolean): Promise<boolean | undefined> {
    if (this.#closed) return undefined;
    const key = this.#prefix + name;
    try {
      const r = await this.#link.run((c) => c.eval(CLAIM_SCRIPT, 1, key, tunnelId, String(ttlMs), reserved ? '1' : '0'));
      this.#health.ok('Redis');
      return r === 1;
    } catch (err) {
      if (this.#closed) return undefined;
      this.#health.failed(new Error(`${(err as Error).message}; names are claimed in memory only until it answers`));
      return undefined;
    }
  }

  async release(name: string, tunnelId: string): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#link.run((c) => c.eval(RELEASE_SCRIPT, 1, this.#prefix + name, tunnelId));
      this.#health.ok('Redis');
    } catch (err) {
      if (this.#closed) return;
      this.#health.failed(new Error(`${(err as Error).message}; the released name ${name} is kept there until it expires`));
    }
  }

  close(): void {
    this.#closed = true;
    this.#link.close();
  }
}
